import Foundation
import Testing
@testable import PlanRunCore

/// `JSONText` is the ordered JSON writer behind `plan --format json`,
/// `build --json` and `status --json`.
@Suite struct ReportingJSONTextTests {
    @Test(arguments: ["plain", "quote \" and \\ backslash", "tab\tnew\nline\rcr", "\u{01}\u{1f} control", "ünïcødé ✓ 𝄞", ""])
    func stringsRoundTrip(_ text: String) throws {
        let rendered = JSONText.array([.string(text)]).rendered()
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(rendered.utf8)) as? [String])
        #expect(parsed == [text])
    }

    @Test func objectsKeepTheirKeyOrder() {
        let doc = JSONText.object([("z", .int(1)), ("a", .bool(true)), ("m", .null), ("d", .double(2.5)), ("e", .double(3))])
        #expect(doc.rendered() == #"{"z": 1, "a": true, "m": null, "d": 2.5, "e": 3}"#)
    }

    @Test func controlCharactersAreEscaped() {
        #expect(JSONText.string("a\u{01}b").rendered() == #""a\u0001b""#)
    }
}

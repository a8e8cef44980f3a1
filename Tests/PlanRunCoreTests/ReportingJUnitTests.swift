import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import PlanRunCore

/// A parsed XML element (from Foundation's libxml2-based `XMLParser`, a
/// real parser: a malformed report fails to parse).
final class XMLNode {
    let name: String
    let attributes: [String: String]
    var children: [XMLNode] = []
    var text = ""

    init(name: String, attributes: [String: String]) {
        self.name = name
        self.attributes = attributes
    }

    func all(_ name: String) -> [XMLNode] {
        children.flatMap { ($0.name == name ? [$0] : []) + $0.all(name) }
    }

    func child(_ name: String) -> XMLNode? { children.first { $0.name == name } }

    /// Parses `text`; nil (with the parser's error recorded) when it is not well-formed.
    static func parse(_ text: String) -> XMLNode? {
        final class Delegate: NSObject, XMLParserDelegate {
            var stack: [XMLNode] = [XMLNode(name: "#document", attributes: [:])]
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?,
                        qualifiedName: String?, attributes: [String: String]) {
                let node = XMLNode(name: name, attributes: attributes)
                stack.last?.children.append(node)
                stack.append(node)
            }
            func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
                stack.removeLast()
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) { stack.last?.text += string }
        }
        let parser = XMLParser(data: Data(text.utf8))
        let delegate = Delegate()
        parser.delegate = delegate
        guard parser.parse() else {
            Issue.record("not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "unknown error")")
            return nil
        }
        return delegate.stack.first?.children.first
    }
}

@Suite struct ReportingJUnitTests {
    static let start = Date(timeIntervalSince1970: 1_700_000_000)

    static func report(_ id: String, _ status: SubtaskStatus, error: String? = nil, output: String = "",
                       reason: RunReason? = nil, seconds: Double = 0.5) -> SubtaskReport {
        SubtaskReport(id: id, agent: "shell", status: status, attempts: status == .done || status == .failed ? 1 : 0,
                      startedAt: start, completedAt: start.addingTimeInterval(seconds), error: error,
                      reason: reason, output: Array(output.utf8))
    }

    static func summary(_ reports: [SubtaskReport], status: RunStatus = .failed, reason: String? = nil) -> RunSummary {
        RunSummary(plan: "release", runID: "20240101-000000-abcdef", status: status, reason: reason, reports: reports,
                   startedAt: start, completedAt: start.addingTimeInterval(2.25))
    }

    @Test func countsAndStatusesOfEveryKind() throws {
        let summary = Self.summary([
            Self.report("ok", .done, output: "built it\n"),
            Self.report("bad", .failed, error: "exit status 2", output: "cc: error: x.c\n"),
            Self.report("dep", .blocked, error: "dependency `bad` failed"),
            Self.report("hit", .cached, reason: .cached, seconds: 0),
            Self.report("back", .cached, reason: .restored, seconds: 0),
            Self.report("stop", .cancelled, error: "not started: the run was cancelled"),
        ])
        let root = try #require(XMLNode.parse(JUnitReport(summary: summary).xml()))
        #expect(root.name == "testsuites")
        let suite = try #require(root.child("testsuite"))
        #expect(suite.attributes["name"] == "release")
        #expect(suite.attributes["tests"] == "6")
        #expect(suite.attributes["failures"] == "1")
        #expect(suite.attributes["errors"] == "0")
        #expect(suite.attributes["skipped"] == "2")
        #expect(suite.attributes["time"] == "2.250")
        #expect(suite.attributes["timestamp"] == "2023-11-14T22:13:20Z")
        #expect(root.attributes["tests"] == "6")

        let cases = suite.all("testcase")
        #expect(cases.map { $0.attributes["name"] } == ["ok", "bad", "dep", "hit", "back", "stop"])
        #expect(cases.allSatisfy { $0.attributes["classname"] == "release" })
        #expect(cases[0].attributes["time"] == "0.500")
        #expect(cases[0].child("system-out")?.text == "built it\n")
        #expect(cases[0].child("failure") == nil && cases[0].child("skipped") == nil)

        let failure = try #require(cases[1].child("failure"))
        #expect(failure.attributes["message"] == "exit status 2")
        #expect(failure.text == "cc: error: x.c\n")

        #expect(cases[2].child("skipped")?.attributes["message"] == "blocked: dependency `bad` failed")
        #expect(cases[5].child("skipped")?.attributes["message"] == "cancelled: not started: the run was cancelled")

        for cached in [cases[3], cases[4]] {
            let property = try #require(cached.child("properties")?.child("property"))
            #expect(property.attributes["name"] == "planrun.status")
            #expect(property.attributes["value"] == "cached")
            #expect(cached.child("failure") == nil && cached.child("skipped") == nil)
        }
        #expect(cases[3].child("system-out")?.text == "cached")
        #expect(cases[4].child("system-out")?.text == "cached (restored from cache)")

        let runProperties = suite.child("properties")?.children.map { $0.attributes["name"] ?? "" }
        #expect(runProperties == ["planrun.run_id", "planrun.run_status"])
    }

    @Test func cancelledRunRecordsItsReason() throws {
        let summary = Self.summary([Self.report("a", .cancelled, error: "cancelled")], status: .cancelled, reason: "interrupted (SIGINT)")
        let suite = try #require(XMLNode.parse(JUnitReport(summary: summary).xml())?.child("testsuite"))
        let values = Dictionary(uniqueKeysWithValues: (suite.child("properties")?.children ?? []).map {
            ($0.attributes["name"] ?? "", $0.attributes["value"] ?? "")
        })
        #expect(values["planrun.run_status"] == "cancelled")
        #expect(values["planrun.reason"] == "interrupted (SIGINT)")
        // A status equal to the error is not repeated.
        #expect(suite.child("testcase")?.child("skipped")?.attributes["message"] == "cancelled")
    }

    /// Every byte value, invalid UTF-8 included: the report stays well-formed.
    @Test func binaryOutputGivesWellFormedXML() throws {
        var bytes = [UInt8](0...255)
        bytes += [0xC3, 0x28, 0xED, 0xA0, 0x80, 0xEF, 0xBF, 0xBF] // invalid sequence, a surrogate, U+FFFF
        var failed = Self.report("bin", .failed, error: "exit \u{1}status <1> & \"x\"\n\ttab")
        failed.output = bytes
        var done = Self.report("name&<>\"'", .done)
        done.output = bytes
        let xml = JUnitReport(summary: Self.summary([failed, done])).xml()
        let root = try #require(XMLNode.parse(xml))
        let cases = root.all("testcase")
        #expect(cases.map { $0.attributes["name"] } == ["bin", "name&<>\"'"])
        // Attribute values keep newline and tab (as character references); the control character is replaced.
        #expect(cases[0].child("failure")?.attributes["message"] == "exit \u{FFFD}status <1> & \"x\"\n\ttab")
        let body = try #require(cases[0].child("failure")?.text)
        #expect(body.contains("\t\n"))
        #expect(body.contains("\r")) // kept as &#13;, not normalized away
        #expect(body.contains(" !\"#$%&'()*+,-./0123456789:;<=>?@ABC"))
        #expect(!body.unicodeScalars.contains { $0.value < 0x09 || $0.value == 0x1B || $0.value == 0xFFFF })
    }

    struct SanitizeCase: Sendable, CustomTestStringConvertible {
        var name: String
        var input: [UInt8]
        var expected: String
        var testDescription: String { name }
    }

    static let sanitizeCases: [SanitizeCase] = [
        .init(name: "plain text", input: Array("a b\tc\r\n".utf8), expected: "a b\tc\r\n"),
        .init(name: "colour sequences removed", input: Array("\u{1B}[1;31mred\u{1B}[0m done".utf8), expected: "red done"),
        .init(name: "cursor and erase sequences removed", input: Array("\r\u{1B}[2K[1/2]\u{1B}[?25l".utf8), expected: "\r[1/2]"),
        .init(name: "OSC title removed", input: Array("\u{1B}]0;title\u{07}after".utf8), expected: "after"),
        .init(name: "lone escape replaced", input: [0x61, 0x1B], expected: "a\u{FFFD}"),
        .init(name: "NUL and BEL replaced", input: [0x61, 0x00, 0x07, 0x62], expected: "a\u{FFFD}\u{FFFD}b"),
        .init(name: "C1 control replaced", input: [0xC2, 0x85], expected: "\u{FFFD}"),
        .init(name: "invalid UTF-8 replaced", input: [0x61, 0xFF, 0x62], expected: "a\u{FFFD}b"),
        .init(name: "non-ASCII kept", input: Array("größe ✓ 𝄞".utf8), expected: "größe ✓ 𝄞"),
    ]

    @Test(arguments: sanitizeCases)
    func sanitizing(_ c: SanitizeCase) {
        #expect(JUnitReport.sanitized(c.input) == c.expected)
    }

    @Test func escapingMarkup() {
        #expect(JUnitReport.escape("a<b>&\"c\"'d'\n\t\r\u{0}") == "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;&#10;&#9;&#13;\u{FFFD}")
        #expect(JUnitReport.escape("a\nb<", attribute: false) == "a\nb&lt;")
    }

    @Test func failureBodyComesFromTheLogAndKeepsItsEnd() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("planrun-junit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = "first attempt output\n--- attempt 2 ---\n" + String(repeating: "x", count: 100) + "\nlast line\n"
        try log.write(to: dir.appendingPathComponent("bad.log"), atomically: true, encoding: .utf8)

        let summary = Self.summary([
            Self.report("bad", .failed, error: "exit status 1", output: "captured only\n"),
            Self.report("nolog", .failed, error: "exit status 1", output: "captured only\n"),
        ])
        let whole = try #require(XMLNode.parse(JUnitReport(summary: summary, logDirectory: dir.path).xml()))
        let bodies = whole.all("failure").map(\.text)
        #expect(bodies == [log, "captured only\n"])

        let short = try #require(XMLNode.parse(JUnitReport(summary: summary, logDirectory: dir.path, maxOutputBytes: 20).xml()))
        let body = try #require(short.all("failure").first?.text)
        let omitted = log.utf8.count - 20
        #expect(body == "[... \(omitted) bytes omitted; full log: \(dir.path)/bad.log]\n" + String(log.suffix(20)))
    }

    @Test func writeIsAtomicAndCreatesFolders() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("planrun-junit-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("reports/ci/junit.xml").path
        let report = JUnitReport(summary: Self.summary([Self.report("a", .done)], status: .completed))
        try report.write(to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == report.xml())

        // Rewriting replaces the file whole and leaves no temporary file behind.
        let second = JUnitReport(summary: Self.summary([Self.report("a", .failed, error: "boom")]))
        try second.write(to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == second.xml())
        #expect(try FileManager.default.contentsOfDirectory(atPath: (path as NSString).deletingLastPathComponent) == ["junit.xml"])
    }

    @Test func writeErrorNamesThePath() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("planrun-junit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // The target is an existing folder: rename cannot replace it.
        let target = dir.appendingPathComponent("report.xml")
        try FileManager.default.createDirectory(at: target.appendingPathComponent("inside"), withIntermediateDirectories: true)
        let report = JUnitReport(summary: Self.summary([Self.report("a", .done)]))
        #expect {
            try report.write(to: target.path)
        } throws: { error in
            "\(error)".hasPrefix("cannot write the report `\(target.path)`: ")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["report.xml"])
    }
}

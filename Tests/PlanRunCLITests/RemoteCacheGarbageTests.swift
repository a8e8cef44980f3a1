import Foundation
import PlanRunCore
import Testing

/// A remote `ac` entry that is garbage, end to end (the real binary, a real
/// nginx): a miss with a warning, the subtask runs and uploads a good
/// entry over it; the others are restored; never a crash.
@Suite(.enabled(if: NginxServer.isInstalled, "nginx is not installed (apt-get install nginx; .ci/run installs it)"),
       .timeLimit(.minutes(2)))
struct RemoteCacheGarbageTests {
    struct Garbage: Sendable, CustomTestStringConvertible {
        var testDescription: String
        /// The served entry of `solo` from the good one.
        var make: @Sendable (String) -> String
        var reason: String
    }

    static let malformed = "it is not a valid action result"

    static let shapes: [Garbage] = [
        Garbage(testDescription: "not JSON", make: { _ in "\u{0}\u{FF}garbage{" }, reason: malformed),
        Garbage(testDescription: "empty", make: { _ in "" }, reason: malformed),
        Garbage(testDescription: "JSON of another shape", make: { _ in #"[{"format":2},1,"x",null]"# }, reason: malformed),
        Garbage(testDescription: "truncated", make: { String($0.prefix($0.count / 2)) }, reason: malformed),
        Garbage(testDescription: "a huge number",
                make: { $0.replacingOccurrences(of: "\"format\":2", with: "\"format\":99999999999999999999999999") },
                reason: malformed),
        Garbage(testDescription: "a huge size",
                make: { $0.replacingOccurrences(of: #""sizes":\{"[0-9a-f]{64}":"#, with: "$0" + "184467440737095516160000",
                                                options: .regularExpression) },
                reason: malformed),
        Garbage(testDescription: "the right shape with a digest that is not one",
                make: { $0.replacingOccurrences(of: #""result_digest":"[0-9a-f]{64}""#, with: #""result_digest":"../../x""#,
                                                options: .regularExpression) },
                reason: "it names a digest that is not 64 lowercase hex digits"),
        Garbage(testDescription: "the right shape with another result digest",
                make: { $0.replacingOccurrences(of: #""result_digest":"[0-9a-f]{64}""#,
                                                with: "\"result_digest\":\"\(String(repeating: "0", count: 64))\"",
                                                options: .regularExpression) },
                reason: "its result and outputs do not match its result digest"),
    ]

    @Test(arguments: shapes)
    func garbageEntryIsAMissWithAWarning(_ garbage: Garbage) throws {
        let (server, source, entry, text) = try RemoteCacheTests.warmedServer()
        defer { server.stop() }
        let served = garbage.make(text)
        #expect(served != text)
        try Data(served.utf8).write(to: entry)

        let clone = try RemoteCacheTests.freshCopy(of: source)
        let result = try RemoteCacheTests.build(clone, remote: server.url)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stderr.contains("Fatal error"), "\(result.stderr)")
        let summary = try parseJSON(result.stdout)
        #expect(summary["completed"] as? Int == 1)
        #expect(summary["cached"] as? Int == 2)
        #expect(RemoteCacheTests.ran(in: clone) == ["solo"])
        #expect(result.stderr.contains("warning: remote cache entry for `solo` refused: \(garbage.reason); running it"),
                "\(result.stderr)")
        try RemoteCacheTests.expectSameOutputs(source, clone)
        // The clone ran it and uploaded a good entry over the garbage.
        #expect(try String(contentsOf: entry, encoding: .utf8) == text)
    }
}

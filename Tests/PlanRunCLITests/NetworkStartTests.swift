import Foundation
import Testing

/// What the HTTP client costs a build that does not use it (issue 14):
/// planrun loads no FoundationNetworking or libcurl at all, and the event
/// loop threads of its HTTP client (SwiftNIO's, named `NIO-ELT-…`) start
/// only once a remote cache or an `http` agent is asked something. A
/// subtask reads its parent's (planrun's) threads and mapped files from
/// `/proc`.
@Suite struct NetworkStartTests {
    static let plan = """
        version: 1
        subtasks:
          - id: look
            run: cat /proc/$PPID/task/*/comm > threads.txt && cat /proc/$PPID/maps > maps.txt
        """

    static func lines(_ name: String, in dir: URL) throws -> [String] {
        try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            .split(separator: "\n").map(String.init)
    }

    @Test func aLocalBuildStartsNoNetworkThreadAndLoadsNoCurl() throws {
        let dir = try makeProject(Self.plan)
        let result = try PlanRunBinary.run(["build", "plan.yaml"], in: dir, environment: ["PLANRUN_REMOTE_CACHE": ""])
        #expect(result.status == 0, "\(result.stderr)")
        let threads = try Self.lines("threads.txt", in: dir)
        #expect(!threads.isEmpty)
        #expect(!threads.contains { $0.hasPrefix("NIO-ELT") }, "\(threads)")
        let maps = try Self.lines("maps.txt", in: dir)
        #expect(maps.contains { $0.contains("planrun") }, "the maps read are not planrun's")
        #expect(!maps.contains { $0.contains("FoundationNetworking") || $0.contains("libcurl") },
                "\(maps.filter { $0.contains(".so") })")
    }

    /// The control: once the remote cache was asked (here one that does
    /// not answer), the client's threads run.
    @Test func askingARemoteCacheStartsTheClient() throws {
        let dir = try makeProject(Self.plan)
        let port = try NginxServer.freePort()  // nothing listens there
        let result = try PlanRunBinary.run(["build", "plan.yaml", "--remote-cache", "http://127.0.0.1:\(port)"], in: dir,
                                           environment: ["PLANRUN_REMOTE_CACHE": ""])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try Self.lines("threads.txt", in: dir).contains { $0.hasPrefix("NIO-ELT") })
    }
}

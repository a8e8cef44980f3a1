#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

@Suite(.serialized) struct CancelCommandTests {
    @Test func cancelFromAnotherProcessStopsTheBuild() async throws {
        let dir = try makeProject("""
            version: 1
            name: cancel-me
            subtasks:
              - id: quick
                run: echo done-early
              - id: long
                run: echo $$ >> long.pid; sleep 60 & echo $! >> long.pid; wait
            """)
        let build = try BackgroundPlanRun(["build", "--json"], in: dir)
        #expect(try await eventually { try recordedPids(in: dir).count >= 2 })
        let cancel = try PlanRunBinary.run(["cancel", "--reason", "release postponed"], in: dir)
        #expect(cancel.status == 0, "\(cancel.stderr)")
        #expect(cancel.stdout.contains("release postponed"))
        let r = try await build.wait()
        #expect(r.status == 130)
        let json = try parseJSON(r.stdout)
        #expect(json["status"] as? String == "cancelled")
        let results = try #require(json["results"] as? [String: [String: Any]])
        #expect(results["quick"]?["status"] as? String == "done") // nothing completed is lost
        #expect(results["long"]?["status"] as? String == "cancelled")
        for pid in try recordedPids(in: dir) { #expect(!isAlive(pid), "pid \(pid) survived") }
        let status = try parseJSON(try PlanRunBinary.run(["status", "--json"], in: dir).stdout)
        #expect(status["reason"] as? String == "release postponed")
        #expect(status["status"] as? String == "cancelled")
    }

    @Test func cancelWithoutARunningBuildFails() throws {
        let dir = try makeProject("version: 1\nsubtasks:\n  - id: a\n    run: true\n")
        let r = try PlanRunBinary.run(["cancel"], in: dir)
        #expect(r.status == 1)
        #expect(r.stderr == "error: no build of `plan.yaml` is running\n")
    }
}

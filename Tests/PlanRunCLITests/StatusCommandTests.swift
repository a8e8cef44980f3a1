#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

@Suite(.serialized) struct StatusCommandTests {
    @Test func statusFromASecondProcessShowsLiveProgress() async throws {
        let dir = try makeProject("""
            version: 1
            name: live
            subtasks:
              - id: first
                run: echo one
              - id: waiting
                depends_on: [first]
                run: echo $$ > waiting.pid; while [ ! -f go ]; do sleep 0.05; done
              - id: last
                depends_on: [waiting]
                run: echo end
            """)
        let build = try BackgroundPlanRun(["build"], in: dir)
        #expect(try await eventually { try !recordedPids(in: dir).isEmpty })
        // The build commits its rows in the background, at its next
        // periodic commit: status shows them from then on.
        var live: [String: Any] = [:]
        #expect(try await eventually(.seconds(10)) {
            live = try parseJSON(try PlanRunBinary.run(["status", "--json"], in: dir).stdout)
            return live["current"] as? [String] == ["waiting"]
        })
        #expect(live["status"] as? String == "in_progress")
        #expect(live["current"] as? [String] == ["waiting"])
        let progress = try #require(live["progress"] as? [String: Any])
        #expect(progress["total"] as? Int == 3)
        #expect(progress["done"] as? Int == 1)
        #expect(progress["running"] as? Int == 1)
        #expect(progress["pending"] as? Int == 1)
        let one = try parseJSON(try PlanRunBinary.run(["status", "waiting", "--json"], in: dir).stdout)
        #expect(one["status"] as? String == "running")
        #expect(one["dependencies"] as? [String] == ["first"])

        #expect(FileManager.default.createFile(atPath: dir.appendingPathComponent("go").path, contents: nil))
        let r = try await build.wait()
        #expect(r.status == 0)
        let final = try parseJSON(try PlanRunBinary.run(["status", "--json"], in: dir).stdout)
        #expect(final["status"] as? String == "completed")
        #expect((final["progress"] as? [String: Any])?["percentage"] as? Int == 100)
        let last = try PlanRunBinary.run(["status", "last"], in: dir)
        #expect(last.stdout.hasPrefix("last: done (ran)\n"))
    }

    @Test func aBuildKilledWithSIGKILLIsReadAsInterrupted() async throws {
        let dir = try makeProject("version: 1\nname: k\nsubtasks:\n  - id: hang\n    run: echo $$ > hang.pid; exec sleep 30\n")
        let build = try BackgroundPlanRun(["build"], in: dir)
        #expect(try await eventually { try !recordedPids(in: dir).isEmpty })
        kill(build.pid, SIGKILL)
        _ = try await build.wait()
        for pid in try recordedPids(in: dir) { kill(pid, SIGKILL) } // orphans of a SIGKILLed planrun
        let status = try parseJSON(try PlanRunBinary.run(["status", "--json"], in: dir).stdout)
        #expect(status["status"] as? String == "failed")
        #expect((status["reason"] as? String)?.hasPrefix("interrupted: process \(build.pid)") == true)
        // The next build runs normally and leaves the old run closed.
        try "version: 1\nname: k\nsubtasks:\n  - id: hang\n    run: echo ok\n"
            .write(to: dir.appendingPathComponent("plan.yaml"), atomically: true, encoding: .utf8)
        let next = try PlanRunBinary.run(["build"], in: dir)
        #expect(next.status == 0, "\(next.stderr)")
    }

    @Test func noRunsYet() throws {
        let dir = try makeProject("version: 1\nsubtasks:\n  - id: a\n    run: true\n")
        let r = try PlanRunBinary.run(["status"], in: dir)
        #expect(r.status == 1)
        #expect(r.stderr == "error: no runs recorded for `plan.yaml` yet; run `planrun build` first\n")
    }
}

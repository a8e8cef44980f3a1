#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// `planrun build` end to end, on real processes.
@Suite(.serialized) struct BuildCommandTests {
    @Test func successPrintsTheJSONSummaryAndExitsZero() throws {
        let dir = try makeProject("""
            version: 1
            name: ok
            subtasks:
              - id: a
                run: echo alpha
              - id: b
                depends_on: [a]
                run: printf 'from b' > "$PLANRUN_RESULT"
            """)
        let r = try PlanRunBinary.run(["build", "--json"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let json = try parseJSON(r.stdout)
        #expect(json["status"] as? String == "completed")
        #expect(json["completed"] as? Int == 2)
        #expect(json["total"] as? Int == 2)
        let results = try #require(json["results"] as? [String: [String: Any]])
        #expect(results["a"]?["result"] as? String == "alpha\n")
        #expect(results["b"]?["result"] as? String == "from b")
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent(".planrun/state.db").path))
        let runID = try #require(json["run_id"] as? String)
        let log = try String(contentsOf: dir.appendingPathComponent(".planrun/logs/\(runID)/a.log"), encoding: .utf8)
        #expect(log == "$ echo alpha\nalpha\n")
    }

    @Test func peakConcurrencyFromTimestampsMatchesJobs() throws {
        var yaml = "version: 1\nname: par\nsubtasks:\n"
        for i in 0..<8 {
            yaml += "  - id: t\(i)\n    run: date +%s%N > t\(i).start; sleep 0.3; date +%s%N > t\(i).end\n"
        }
        let dir = try makeProject(yaml)
        let r = try PlanRunBinary.run(["build", "-j", "3"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        var events: [(Int, Int)] = []
        for i in 0..<8 {
            let start = Int(try String(contentsOf: dir.appendingPathComponent("t\(i).start"), encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines))!
            let end = Int(try String(contentsOf: dir.appendingPathComponent("t\(i).end"), encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines))!
            events += [(start, 1), (end, -1)]
        }
        var running = 0, peak = 0
        for (_, delta) in events.sorted(by: { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }) {
            running += delta
            peak = max(peak, running)
        }
        #expect(peak == 3)
    }

    @Test func retriesAreCountedAndTimeoutsFail() throws {
        let dir = try makeProject("""
            version: 1
            name: retry
            subtasks:
              - id: flaky
                retries: 3
                retry_backoff: 50ms
                run: echo x >> count; test $(wc -l < count) -ge 3
              - id: slow
                timeout: 300ms
                run: sleep 20
            """)
        let start = ContinuousClock.now
        let r = try PlanRunBinary.run(["build", "--json", "-k"], in: dir)
        #expect(ContinuousClock.now - start < .seconds(15)) // `slow` would take 20 s without its timeout
        #expect(r.status == 1)
        let json = try parseJSON(r.stdout)
        let results = try #require(json["results"] as? [String: [String: Any]])
        #expect(results["flaky"]?["status"] as? String == "done")
        #expect(results["flaky"]?["attempts"] as? Int == 3)
        let count = try String(contentsOf: dir.appendingPathComponent("count"), encoding: .utf8)
        #expect(count.split(separator: "\n").count == 3)
        #expect(results["slow"]?["status"] as? String == "failed")
        let errors = try #require(json["errors"] as? [String: String])
        #expect(errors["slow"] == "timed out after 300ms")
    }

    @Test func failFastAndKeepGoing() throws {
        let yaml = """
            version: 1
            name: ff
            max_parallel: 1
            subtasks:
              - id: bad
                run: exit 1
              - id: dependent
                depends_on: [bad]
                run: touch dependent.ran
              - id: independent
                run: touch independent.ran
            """
        let dir = try makeProject(yaml)
        let r = try PlanRunBinary.run(["build", "--json"], in: dir)
        #expect(r.status == 1)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("independent.ran").path))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("dependent.ran").path))

        let k = try PlanRunBinary.run(["build", "--json", "--keep-going"], in: dir)
        #expect(k.status == 1)
        let json = try parseJSON(k.stdout)
        #expect(json["blocked"] as? Int == 1)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("independent.ran").path))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("dependent.ran").path))
        let errors = try #require(json["errors"] as? [String: String])
        #expect(errors["dependent"] == "dependency `bad` failed")
    }

    @Test func badInputFailsOnlyThatSubtask() throws {
        let dir = try makeProject("""
            version: 1
            name: bad
            agents:
              ghost:
                kind: command
                command: [no-such-agent-program-xyz]
              liar:
                kind: command
                command: [/bin/sh, -c, "echo '{not json'"]
            subtasks:
              - id: missing-command
                run: no-such-command-xyz
              - id: missing-program
                agent: ghost
              - id: not-json
                agent: liar
              - id: garbage
                run: head -c 3000000 /dev/urandom
              - id: fine
                run: echo fine
            """)
        let r = try PlanRunBinary.run(["build", "--json", "-k"], in: dir)
        #expect(r.status == 1)
        let json = try parseJSON(r.stdout)
        let errors = try #require(json["errors"] as? [String: String])
        #expect(errors["missing-command"] == "command not found (exit status 127)")
        #expect(errors["missing-program"] == "agent `ghost`: program `no-such-agent-program-xyz` not found")
        #expect(errors["not-json"] == "agent `liar`: output starts with `{` but is not valid JSON")
        let results = try #require(json["results"] as? [String: [String: Any]])
        #expect(results["garbage"]?["status"] as? String == "done")
        #expect(results["fine"]?["status"] as? String == "done")
        let status = try PlanRunBinary.run(["status", "--json"], in: dir)
        let progress = try #require(try parseJSON(status.stdout)["progress"] as? [String: Any])
        #expect(progress["done"] as? Int == 2)
        #expect(progress["failed"] as? Int == 3)
    }

    @Test func unknownTargetIsAnError() throws {
        let dir = try makeProject("version: 1\nsubtasks:\n  - id: build\n    run: true\n")
        let r = try PlanRunBinary.run(["build", "biuld"], in: dir)
        #expect(r.status == 2)
        #expect(r.stderr.contains("no subtask named `biuld`; did you mean `build`?"))
    }

    @Test func sigintCancelsAndNoChildSurvives() async throws {
        let dir = try makeProject("""
            version: 1
            name: sig
            subtasks:
              - id: one
                run: (trap '' TERM; echo $BASHPID >> one.pid 2>/dev/null; sh -c 'echo $$ >> one.pid; exec sleep 60') & echo $$ >> one.pid; sleep 60
              - id: two
                run: echo $$ >> two.pid; sleep 60
              - id: after
                depends_on: [one]
                run: touch after.ran
            """)
        let build = try BackgroundPlanRun(["build", "--json"], in: dir)
        #expect(try await eventually { try recordedPids(in: dir).count >= 3 })
        kill(build.pid, SIGINT)
        let r = try await build.wait()
        #expect(r.status == 130, "\(r.stderr)")
        let json = try parseJSON(r.stdout)
        #expect(json["status"] as? String == "cancelled")
        #expect(json["cancelled"] as? Int == 3)
        try await Task.sleep(for: .milliseconds(200))
        for pid in try recordedPids(in: dir) { #expect(!isAlive(pid), "pid \(pid) survived") }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("after.ran").path))
        let status = try parseJSON(try PlanRunBinary.run(["status", "--json"], in: dir).stdout)
        #expect(status["status"] as? String == "cancelled")
        #expect(status["reason"] as? String == "interrupted (SIGINT)")
    }

    @Test func secondBuildIsRefusedWithThePid() async throws {
        let dir = try makeProject("version: 1\nname: lock\nsubtasks:\n  - id: wait\n    run: echo $$ > wait.pid; sleep 30\n")
        let first = try BackgroundPlanRun(["build"], in: dir)
        #expect(try await eventually { try !recordedPids(in: dir).isEmpty })
        let second = try PlanRunBinary.run(["build"], in: dir)
        #expect(second.status == 1)
        #expect(second.stderr.contains("another build of `plan.yaml` is running (pid \(first.pid))"))
        kill(first.pid, SIGTERM)
        let r = try await first.wait()
        #expect(r.status == 130)
    }
}

@Suite(.serialized) struct BuildApprovalTests {
    @Test func unapprovedPlanIsRefusedUntilApproved() throws {
        let dir = try makeProject("version: 1\nname: gated\napproval: required\nsubtasks:\n  - id: a\n    run: touch ran\n")
        let refused = try PlanRunBinary.run(["build"], in: dir)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("plan is not approved"))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("ran").path))
        #expect(try PlanRunBinary.run(["approve"], in: dir).status == 0)
        let built = try PlanRunBinary.run(["build"], in: dir)
        #expect(built.status == 0, "\(built.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("ran").path))
    }

    @Test func sighupCancelsLikeSIGTERM() async throws {
        let dir = try makeProject("version: 1\nname: hup\nsubtasks:\n  - id: w\n    run: echo $$ > w.pid; sleep 30\n")
        let build = try BackgroundPlanRun(["build", "--json"], in: dir)
        #expect(try await eventually { try !recordedPids(in: dir).isEmpty })
        kill(build.pid, SIGHUP)
        let r = try await build.wait()
        #expect(r.status == 130)
        for pid in try recordedPids(in: dir) { #expect(!isAlive(pid)) }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import PlanRunCore

/// Bounded waits and fast stopping, and the leftovers of a build that died
/// (see docs/DESIGN.md, Trust rules), on real processes.
@Suite struct ExecutionProcessHygieneTests {
    /// Removed with the suite's value, when the test ends.
    let temp = CachingTempDir()
    var dir: String { temp.path }

    func request(_ run: String, timeout: Duration? = nil, env: [String: String] = [:]) -> AttemptRequest {
        var environment = ProcessInfo.processInfo.environment
        environment.merge(env) { _, n in n }
        return AttemptRequest(
            subtask: Subtask(id: "t", agent: "shell", run: run), agent: .builtinShell, attempt: 1, runID: "r1",
            workingDirectory: dir, environment: environment, context: .object([:]),
            contextPath: dir + "/t.context.json", resultPath: dir + "/t.result", logPath: dir + "/t.log",
            timeout: timeout)
    }

    /// The pid written to `name` in the test's folder, once it is there.
    func pid(in name: String) async throws -> pid_t {
        let path = dir + "/" + name
        // Generous: under a parallel suite the pool that runs this loop
        // can be held for many seconds; the attempts are timed by their
        // own start and end, not by this wait.
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), text.hasSuffix("\n"),
               let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return pid
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw CancellationError()
    }

    /// Runs `run` as an attempt; when it has not ended after `limit`,
    /// kills the process recorded in `holder` (so that the attempt can
    /// end) and records a failure. Returns the outcome and how long it
    /// took, as the attempt's own times say: it waits on the monitor's
    /// thread, as the executor does, so that a parallel suite keeping the
    /// shared threads busy does not lengthen it.
    func runBounded(_ run: String, runner: ProcessCommandRunner = ProcessCommandRunner(killGrace: .milliseconds(300)),
                    timeout: Duration? = nil, holder: String,
                    limit: Duration = .seconds(30)) async throws -> (AttemptOutcome, Duration) {
        let req = request(run, timeout: timeout)
        let attempt = Task { await withTaskExecutorPreference(ProcessMonitor.shared) { await runner.run(req) } }
        let holderPID = try await pid(in: holder)
        let watchdog = Task {
            try await Task.sleep(for: limit)
            Issue.record("the attempt did not end within \(limit)")
            kill(holderPID, SIGKILL)
        }
        let outcome = await attempt.value
        watchdog.cancel()
        if processIsAlive(holderPID) { kill(holderPID, SIGKILL) }
        return (outcome, .seconds(outcome.completedAt.timeIntervalSince(outcome.startedAt)))
    }

    /// issue 10 item 5: a daemon that left the process group (`setsid`)
    /// and holds the output pipes does not hang the attempt; it is no longer
    /// waited for 1 s after the main process exited.
    @Test func issue10DetachedGrandchildDoesNotHangTheAttempt() async throws {
        let script = "(setsid sh -c 'echo $$ > daemon.pid; exec sleep 1000' &) ; sleep 0.1; echo launched"
        let (outcome, took) = try await runBounded(script, holder: "daemon.pid")
        #expect(outcome.status == .succeeded)
        #expect(String(decoding: outcome.result, as: UTF8.self) == "launched\n")
        #expect(String(decoding: outcome.output, as: UTF8.self).hasSuffix(ProcessMonitor.leftBehindNote))
        #expect(took < .seconds(5), "took \(took)")
    }

    /// issue 10 item 5: a background child in the subtask's group that
    /// keeps the pipes open is stopped 1 s after the main process exited.
    @Test func issue10BackgroundChildInTheGroupIsStopped() async throws {
        let (outcome, took) = try await runBounded("sleep 1001 & echo $! > bg.pid; exit 0", holder: "bg.pid")
        #expect(outcome.status == .succeeded)
        #expect(String(decoding: outcome.output, as: UTF8.self).hasSuffix(ProcessMonitor.leftBehindNote))
        #expect(took < .seconds(5), "took \(took)")
        let bg = try await pid(in: "bg.pid")
        #expect(!processIsAlive(bg), "background child \(bg) survived its subtask")
    }

    /// A background child that closed its output does not outlive the
    /// attempt either (before, the attempt ended at once and left it running).
    @Test func backgroundChildWithoutOutputIsStopped() async throws {
        let (outcome, took) = try await runBounded("sleep 1002 >/dev/null 2>&1 & echo $! > bg.pid", holder: "bg.pid")
        #expect(outcome.status == .succeeded)
        #expect(String(decoding: outcome.output, as: UTF8.self).hasSuffix(ProcessMonitor.leftBehindNote))
        #expect(took < .seconds(5), "took \(took)")
        let bg = try await pid(in: "bg.pid")
        #expect(!processIsAlive(bg), "background child \(bg) survived its subtask")
    }

    /// One that ignores SIGTERM gets SIGKILL after the grace period.
    @Test func backgroundChildIgnoringTermIsKilledAfterTheGrace() async throws {
        let script = "sh -c 'trap \"\" TERM; echo $$ > bg.pid; exec sleep 1003' >/dev/null 2>&1 & sleep 0.2"
        let (outcome, _) = try await runBounded(script, holder: "bg.pid")
        #expect(outcome.status == .succeeded)
        let bg = try await pid(in: "bg.pid")
        #expect(!processIsAlive(bg), "background child \(bg) survived its subtask")
    }

    /// issue 10 item 6: `timeout: 1s` on `sleep 100` ends soon after the
    /// timeout when the processes exit on SIGTERM, not after the grace
    /// period (long here, so that a loaded machine cannot blur the two;
    /// where the first process reaps nothing, the exited sleeps stay
    /// zombies in the group).
    @Test func issue10TimeoutEndsWhenTheGroupExits() async throws {
        let runner = ProcessCommandRunner(killGrace: .seconds(10))
        let req = request("sleep 100 & echo $! > bg.pid; sleep 100", timeout: .seconds(1))
        let outcome = await withTaskExecutorPreference(ProcessMonitor.shared) { await runner.run(req) }
        let took = outcome.completedAt.timeIntervalSince(outcome.startedAt)
        #expect(outcome.status == .timedOut)
        #expect(took < 3, "took \(took)s")
        let bg = try await pid(in: "bg.pid")
        #expect(!processIsAlive(bg))
    }

    /// Cancelling ends the attempt soon (within 0.5 s) when its
    /// processes exit on SIGTERM, not after the grace period: a zombie
    /// member (a child its parent never reaps) does not keep it waiting.
    @Test func issue10CancelEndsQuicklyDespiteAZombieInTheGroup() async throws {
        let runner = ProcessCommandRunner(killGrace: .seconds(10))
        // `exec sleep` keeps the pid; its exited child `true` stays a
        // zombie (sleep never waits) until the group is gone.
        let req = request("true & exec sh -c 'echo $$ > main.pid; exec sleep 100'")
        let attempt = Task { await withTaskExecutorPreference(ProcessMonitor.shared) { await runner.run(req) } }
        _ = try await pid(in: "main.pid")
        try await Task.sleep(for: .milliseconds(100))
        let cancelled = Date()
        attempt.cancel()
        let outcome = await attempt.value
        let took = outcome.completedAt.timeIntervalSince(cancelled)
        #expect(outcome.status == .cancelled)
        #expect(took < 2, "took \(took)s")
    }
}

/// The next build kills what a dead build left running (no orphans).
@Suite struct OrphanGuardLeftoverTests {
    /// Removed with the suite's value, when the test ends.
    let temp = CachingTempDir()
    var dir: String { temp.path }

    /// Starts `sleep 1000` as the leader of a new process group with
    /// `environment`; returns its pid (reaped by `reap`).
    func startGroup(environment: [String: String]) throws -> pid_t {
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { _, n in n }
        let spawned = try ProcessSpawner.spawn(path: "/bin/sleep", arguments: ["sleep", "1000"], environment: env,
                                               workingDirectory: dir, standardInput: nil).get()
        close(spawned.stdout)
        close(spawned.stderr)
        return spawned.pid
    }

    func reap(_ pid: pid_t) {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    /// A group recorded by a run that did not finish is killed when a
    /// member has that run's id; a recorded number now used by a process
    /// of another run (or none) is left alone; the record is removed.
    @Test func killsOnlyGroupsOfTheRecordedRun() async throws {
        let leftover = try startGroup(environment: ["PLANRUN_RUN_ID": "run-old"])
        let stranger = try startGroup(environment: ["PLANRUN_RUN_ID": "run-other"])
        defer { reap(leftover); reap(stranger) }
        let record = "run-old \(leftover)\nrun-old \(stranger)\n"
        try record.write(toFile: dir + "/" + OrphanGuard.fileName, atomically: true, encoding: .utf8)
        let killed = OrphanGuard.killLeftovers(stateDirectory: dir)
        #expect(killed == [leftover])
        #expect(try await eventually { !processIsAlive(leftover) })
        #expect(processIsAlive(stranger))
        #expect(!FileManager.default.fileExists(atPath: dir + "/" + OrphanGuard.fileName))
    }

    /// A build records its run before any subtask starts (one line, not
    /// one per subtask) and removes the record when it ends in order.
    @Test func buildRecordsItsRunWhileRunning() async throws {
        let plan = makePlan([task("a", run: "sleep 0.3; cat .planrun/\(OrphanGuard.fileName) > seen.txt")], directory: dir)
        let summary = try await BuildSession.run(
            plan: plan, configuration: RunConfiguration(jobs: 1, killGrace: .milliseconds(200)),
            canceller: RunCanceller(), reporter: RecordingReporter())
        #expect(summary.status == .completed, "\(summary.reports.map { "\($0.error ?? "")" })")
        let seen = try String(contentsOfFile: dir + "/seen.txt", encoding: .utf8)
        #expect(seen == summary.runID + "\n")
        #expect(!FileManager.default.fileExists(atPath: dir + "/.planrun/" + OrphanGuard.fileName))
    }
}

/// Waits until `condition` holds (polling), at most `limit`.
private func eventually(_ limit: Duration = .seconds(10), _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if (try? condition()) == true { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return try condition()
}

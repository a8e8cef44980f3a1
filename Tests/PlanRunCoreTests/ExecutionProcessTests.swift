#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import PlanRunCore

/// `ProcessCommandRunner` on real processes.
@Suite struct ExecutionProcessTests {
    /// Removed with the suite's value, when the test ends.
    let temp = CachingTempDir()
    var dir: String { temp.path }

    func request(_ run: String, id: String = "t", agent: AgentDefinition = .builtinShell, timeout: Duration? = nil,
                 env: [String: String] = [:]) -> AttemptRequest {
        var environment = ProcessInfo.processInfo.environment
        environment.merge(env) { _, n in n }
        environment["PLANRUN_RESULT"] = dir + "/\(id).result"
        environment["PLANRUN_CONTEXT"] = dir + "/\(id).context.json"
        return AttemptRequest(
            subtask: Subtask(id: id, agent: agent.name, run: run), agent: agent, attempt: 1, runID: "r1",
            workingDirectory: dir, environment: environment,
            context: .object(["subtask_id": .string(id), "plan": .string("p")]),
            contextPath: dir + "/\(id).context.json", resultPath: dir + "/\(id).result", logPath: dir + "/\(id).log",
            timeout: timeout)
    }

    /// Runs a request whose program is a script this test process has just
    /// written. A child that another test spawns at that moment holds a
    /// copy of the script's write descriptor until its exec (the window of
    /// any fork/exec), and executing the script then fails with ETXTBSY:
    /// like Go's os/exec tests, try again a few times for that error only.
    func runFreshScript(_ req: AttemptRequest) async -> AttemptOutcome {
        var outcome = await ProcessCommandRunner().run(req)
        for _ in 0..<5 where outcome.error?.hasSuffix("Text file busy") == true {
            try? await Task.sleep(for: .milliseconds(20))
            outcome = await ProcessCommandRunner().run(req)
        }
        return outcome
    }

    /// The monitor's thread (where the executor's loop spawns children)
    /// does not block SIGCHLD, so a child's exit signal is dropped when it
    /// is sent instead of waking another thread to discard it.
    @Test func monitorThreadDoesNotBlockChildSignals() async {
        let blocked = await withTaskExecutorPreference(ProcessMonitor.shared) { () -> Bool in
            var mask = sigset_t()
            pthread_sigmask(SIG_BLOCK, nil, &mask)
            return sigismember(&mask, SIGCHLD) == 1
        }
        #expect(!blocked)
        // Children are still reaped with their status.
        let outcome = await ProcessCommandRunner().run(request("exit 3"))
        #expect(outcome.exitCode == 3)
    }

    @Test func capturesStdoutAsResultAndBothStreamsInTheLog() async throws {
        let outcome = await ProcessCommandRunner().run(request("echo out; echo err >&2; pwd"))
        #expect(outcome.status == .succeeded)
        #expect(String(decoding: outcome.result, as: UTF8.self) == "out\n\(dir)\n")
        let log = try String(contentsOfFile: dir + "/t.log", encoding: .utf8)
        #expect(log.contains("out\n") && log.contains("err\n"))
        #expect(String(decoding: outcome.output, as: UTF8.self).contains("err"))
    }

    @Test func resultFileWinsOverStdout() async {
        let outcome = await ProcessCommandRunner().run(request("echo noise; printf 'the result' > \"$PLANRUN_RESULT\""))
        #expect(String(decoding: outcome.result, as: UTF8.self) == "the result")
    }

    @Test func contextFileIsWritten() async throws {
        let outcome = await ProcessCommandRunner().run(request("cat \"$PLANRUN_CONTEXT\""))
        let context = try #require(JSONValue.parse(Data(outcome.result)))
        #expect(context == .object(["subtask_id": .string("t"), "plan": .string("p")]))
    }

    @Test func nonZeroExitFails() async {
        let outcome = await ProcessCommandRunner().run(request("exit 7"))
        #expect(outcome.status == .failed)
        #expect(outcome.error == "exit status 7")
        #expect(outcome.exitCode == 7)
    }

    @Test func missingShellCommandIsReported() async {
        let outcome = await ProcessCommandRunner().run(request("no-such-command-planrun-xyz"))
        #expect(outcome.status == .failed)
        #expect(outcome.error == "command not found (exit status 127)")
    }

    @Test func missingAgentProgramIsReported() async {
        let agent = AgentDefinition(name: "ghost", kind: .command, command: ["no-such-program-planrun-xyz"])
        let outcome = await ProcessCommandRunner().run(request("", agent: agent))
        #expect(outcome.status == .failed)
        #expect(outcome.error == "agent `ghost`: program `no-such-program-planrun-xyz` not found")
    }

    @Test func commandAgentGetsContextOnStdinAndReturnsContent() async {
        let agent = AgentDefinition(name: "py", kind: .command, command: [
            "python3", "-c",
            "import sys, json; c = json.load(sys.stdin); print(json.dumps({'content': 'did ' + c['subtask_id'], 'metadata': {'x': 1}}))",
        ])
        let outcome = await ProcessCommandRunner().run(request("", id: "job", agent: agent))
        #expect(outcome.status == .succeeded)
        #expect(String(decoding: outcome.result, as: UTF8.self) == "did job")
    }

    @Test func commandAgentPlainTextIsTheResult() async {
        let agent = AgentDefinition(name: "sh", kind: .command, command: ["/bin/sh", "-c", "echo plain"])
        let outcome = await ProcessCommandRunner().run(request("", agent: agent))
        #expect(String(decoding: outcome.result, as: UTF8.self) == "plain\n")
    }

    @Test func commandAgentBrokenJSONFails() async {
        let agent = AgentDefinition(name: "bad", kind: .command, command: ["/bin/sh", "-c", "echo '{\"content\": oops'"])
        let outcome = await ProcessCommandRunner().run(request("", agent: agent))
        #expect(outcome.status == .failed)
        #expect(outcome.error == "agent `bad`: output starts with `{` but is not valid JSON")
    }

    @Test func megabytesOfOutputAreCappedNotFatal() async throws {
        let outcome = await ProcessCommandRunner(displayLimit: 4096).run(request("head -c 3000000 /dev/zero | tr '\\0' 'x'"))
        #expect(outcome.status == .succeeded)
        #expect(outcome.result.count == AttemptOutcome.resultLimit)
        #expect(outcome.output.count < 5000)
        let size = try FileManager.default.attributesOfItem(atPath: dir + "/t.log")[.size] as? Int
        #expect((size ?? 0) >= 3_000_000)
    }

    @Test func binaryGarbageIsKeptAndDisplayedSafely() async {
        let outcome = await ProcessCommandRunner().run(request("printf '\\000\\001\\377\\376ok'"))
        #expect(outcome.status == .succeeded)
        #expect(outcome.result == [0, 1, 0xff, 0xfe, 0x6f, 0x6b])
        let shown = TextReporter.block(outcome.output)
        #expect(!shown.unicodeScalars.contains { $0.value < 0x09 })
        #expect(shown.hasSuffix("ok\n"))
    }

    @Test func timeoutKillsTheWholeProcessGroup() async throws {
        // The shell starts a grandchild that ignores SIGTERM and records its pid.
        let script = "sh -c 'trap \"\" TERM; echo $$ > grandchild.pid; exec sleep 120' & sleep 120; wait"
        let start = ContinuousClock.now
        let outcome = await ProcessCommandRunner(killGrace: .milliseconds(300)).run(request(script, timeout: .milliseconds(400)))
        #expect(outcome.status == .timedOut)
        #expect(outcome.error == "timed out after 400ms")
        // Far below the 120 s the script would take if the timeout did not
        // act; generous because the parallel suite can delay this task's
        // resumption on a loaded 2-core machine.
        #expect(ContinuousClock.now - start < .seconds(90))
        let pidText = try String(contentsOfFile: dir + "/grandchild.pid", encoding: .utf8)
        let pid = try #require(pid_t(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        try await Task.sleep(for: .milliseconds(100))
        #expect(!processIsAlive(pid), "grandchild \(pid) survived the timeout")
    }

    @Test func cancellationTerminatesTheProcessGroup() async throws {
        let runner = ProcessCommandRunner(killGrace: .milliseconds(300))
        let req = request("sleep 30 & echo $! > child.pid; sleep 30")
        let run = Task { await runner.run(req) }
        // Cancel once the background child exists (a fixed pause raced the
        // spawn when the suite kept this task waiting).
        let pidFile = dir + "/child.pid"
        let deadline = ContinuousClock.now + .seconds(60)
        while !FileManager.default.fileExists(atPath: pidFile) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(50))
        run.cancel()
        let outcome = await run.value
        #expect(outcome.status == .cancelled)
        let pid = try #require(pid_t(try String(contentsOfFile: dir + "/child.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        try await Task.sleep(for: .milliseconds(100))
        #expect(!processIsAlive(pid))
    }

    // The child's setup (posix_spawn in ProcessSpawner).

    @Test func childGetsDefaultSignalsAndNoExtraDescriptors() async throws {
        // planrun ignores SIGPIPE; a subtask must not inherit that.
        let previous = signal(SIGPIPE, SIG_IGN)
        defer { signal(SIGPIPE, previous) }
        let outcome = await ProcessCommandRunner().run(request(
            "grep -E '^(SigIgn|SigBlk)' /proc/self/status; ls /proc/self/fd | sort -n | tr '\\n' ' '"))
        #expect(outcome.status == .succeeded)
        let text = String(decoding: outcome.result, as: UTF8.self)
        // Standard signals (1-31: bits 0-30) are not ignored; glibc keeps its
        // internal signals (32, 33) ignored.
        let ignored = text.split(separator: "\n").first { $0.hasPrefix("SigIgn:") }
            .flatMap { UInt64($0.dropFirst("SigIgn:".count).trimmingCharacters(in: .whitespaces), radix: 16) }
        #expect(ignored.map { $0 & 0x7fff_ffff } == 0, "\(text)")
        #expect(text.contains("SigBlk:\t0000000000000000"), "\(text)")
        // 0, 1, 2 and the folder `ls` itself opened.
        #expect(text.hasSuffix("0 1 2 3 "), "\(text)")
    }

    @Test func shellStandardInputIsEmpty() async {
        let outcome = await ProcessCommandRunner().run(request("cat; echo end"))
        #expect(outcome.status == .succeeded)
        #expect(String(decoding: outcome.result, as: UTF8.self) == "end\n")
    }

    @Test func runsInItsOwnProcessGroup() async {
        let outcome = await ProcessCommandRunner().run(request("ps -o pid= -o pgid= -p $$"))
        let fields = String(decoding: outcome.result, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: true)
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(fields.count == 2 && fields[0] == fields[1], "\(fields)")
    }

    @Test func outputOfABackgroundChildHoldingThePipeIsKept() async {
        let outcome = await ProcessCommandRunner().run(request("(sleep 0.2; echo late) & echo early"))
        #expect(outcome.status == .succeeded)
        #expect(String(decoding: outcome.result, as: UTF8.self) == "early\nlate\n")
    }

    /// The monitor reaps a child when its output closes; one that closes
    /// its output and runs on is watched through a pidfd opened then: its
    /// later exit status is still seen, and its timeout still fires.
    @Test func childThatClosesItsOutputIsStillWaitedFor() async {
        let clock = ContinuousClock()
        let start = clock.now
        let outcome = await ProcessCommandRunner().run(request("echo before; exec >&- 2>&-; sleep 0.3; exit 4"))
        #expect(clock.now - start >= .milliseconds(280))
        #expect(outcome.status == .failed)
        #expect(outcome.exitCode == 4)
        #expect(String(decoding: outcome.output, as: UTF8.self) == "before\n")

        let timed = await ProcessCommandRunner(killGrace: .milliseconds(200))
            .run(request("exec >&- 2>&-; sleep 120", id: "u", timeout: .milliseconds(200)))
        #expect(timed.status == .timedOut)
        // Killed, not waited for. (The bound is loose on purpose: in the
        // whole suite, tests that block on a planrun child can hold the
        // pool's threads for many seconds before this task resumes.)
        #expect(clock.now - start < .seconds(90))
    }

    @Test func commandAgentProgramIsFoundOnTheSubtasksPath() async throws {
        let bin = dir + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try "#!/bin/sh\necho from-tool\n".write(toFile: bin + "/planrun-test-tool", atomically: true, encoding: .utf8)
        chmod(bin + "/planrun-test-tool", 0o755)
        let agent = AgentDefinition(name: "tool", kind: .command, command: ["planrun-test-tool"])
        let outcome = await runFreshScript(request("", agent: agent, env: ["PATH": bin + ":/usr/bin:/bin"]))
        #expect(outcome.status == .succeeded, "\(outcome.error ?? "")")
        #expect(String(decoding: outcome.result, as: UTF8.self) == "from-tool\n")
    }

    @Test func missingWorkingDirectoryIsReported() async {
        var req = request("true")
        req.workingDirectory = dir + "/gone"
        let outcome = await ProcessCommandRunner().run(req)
        #expect(outcome.status == .failed)
        #expect(outcome.error == "cannot enter the plan's folder")
    }

    /// A program given as a path is checked only after its spawn failed;
    /// the message is the one the check before the spawn gave.
    @Test(arguments: ["./no-such-tool-planrun", "/no/such/dir/tool", "./not-executable.sh"])
    func agentProgramPathThatCannotRunIsReported(program: String) async throws {
        try "#!/bin/sh\necho hi\n".write(toFile: dir + "/not-executable.sh", atomically: true, encoding: .utf8)
        let agent = AgentDefinition(name: "tool", kind: .command, command: [program])
        let outcome = await ProcessCommandRunner().run(request("", agent: agent))
        #expect(outcome.status == .failed)
        #expect(outcome.error == "agent `tool`: program `\(program)` not found or not executable")
    }

    @Test func agentProgramPathRelativeToThePlanFolderRuns() async throws {
        try "#!/bin/sh\necho from-tool\n".write(toFile: dir + "/tool.sh", atomically: true, encoding: .utf8)
        chmod(dir + "/tool.sh", 0o755)
        let agent = AgentDefinition(name: "tool", kind: .command, command: ["./tool.sh"])
        let outcome = await runFreshScript(request("", agent: agent))
        #expect(outcome.status == .succeeded, "\(outcome.error ?? "")")
        #expect(String(decoding: outcome.result, as: UTF8.self) == "from-tool\n")
    }

    /// A result file left from before is removed before the attempt
    /// starts, unless the request says none can be there (a first attempt
    /// in a new work folder): then the runner does not look.
    @Test(arguments: [false, true])
    func staleResultFileIsRemovedUnlessTheRequestSaysItIsAbsent(absent: Bool) async throws {
        try "stale".write(toFile: dir + "/t.result", atomically: true, encoding: .utf8)
        var req = request("echo fresh")
        req.resultFileIsAbsent = absent
        let outcome = await ProcessCommandRunner().run(req)
        #expect(outcome.status == .succeeded)
        #expect(String(decoding: outcome.result, as: UTF8.self) == (absent ? "stale" : "fresh\n"))
    }

    @Test func signalledChildIsReported() async {
        let outcome = await ProcessCommandRunner().run(request("kill -KILL $$"))
        #expect(outcome.status == .failed)
        #expect(outcome.error == "killed by signal 9 (SIGKILL)")
        #expect(outcome.exitCode == 137)
    }

    @Test func manyConcurrentAttemptsAllFinishWithTheirOwnOutput() async {
        let runner = ProcessCommandRunner()
        let results = await withTaskGroup(of: (Int, String).self) { group in
            for i in 0..<64 {
                let req = request("echo \(i); echo err\(i) >&2", id: "t\(i)")
                group.addTask { (i, String(decoding: await runner.run(req).result, as: UTF8.self)) }
            }
            var out: [Int: String] = [:]
            for await (i, text) in group { out[i] = text }
            return out
        }
        #expect(results.count == 64)
        for (i, text) in results { #expect(text == "\(i)\n") }
    }
}

/// True when `pid` exists and is not a zombie.
func processIsAlive(_ pid: pid_t) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
    // Field 3 (after the command in parentheses) is the state; Z = zombie.
    guard let close = stat.lastIndex(of: ")") else { return true }
    let state = stat[stat.index(close, offsetBy: 2)]
    return state != "Z"
}

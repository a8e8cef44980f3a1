#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// Runs attempts as real processes (`ProcessSpawner`: `posix_spawn`, and
/// `ProcessMonitor`: one thread watching every child's output and exit).
///
/// Each attempt starts in its own process group (`POSIX_SPAWN_SETPGROUP`,
/// see `ProcessSpawner`), so the subtask and everything it starts can be
/// stopped together.
/// On timeout or cancellation the group gets SIGTERM, then SIGKILL after
/// `killGrace`. An attempt ends when its main process has exited, its
/// output is closed (waited for at most `ProcessMonitor.pipeWait` after the
/// exit) and nothing is left of its group: what is left after the main
/// process exited gets SIGTERM, then SIGKILL, and a note in the output.
/// `orphanGuard` learns every group, so that none outlives planrun.
///
/// Standard output and standard error are read through pipes into the
/// attempt's log (created on the first byte, so a silent subtask costs no
/// file); standard output is also kept (up to 1 MiB) as the result. A
/// `command` agent reads the context JSON from standard input (the context
/// file itself, not a pipe).
package struct ProcessCommandRunner: CommandRunner {
    package var killGrace: Duration
    /// At most this much of an attempt's output is shown on the console;
    /// the log keeps up to `logLimit`.
    package var displayLimit: Int

    /// The most output of one attempt its log keeps (`BoundedLogFile`).
    package var logLimit: Int

    /// Told about every process group (nil: none, as in tests of one attempt).
    package var orphanGuard: OrphanGuard?

    package init(killGrace: Duration = .seconds(2), displayLimit: Int = 256 * 1024,
                 logLimit: Int = BoundedLogFile.defaultLimit, orphanGuard: OrphanGuard? = nil) {
        self.killGrace = killGrace
        self.displayLimit = displayLimit
        self.logLimit = logLimit
        self.orphanGuard = orphanGuard
    }

    /// The executor's loop runs on the `ProcessMonitor`'s thread: a child's
    /// exit, its handling and the next spawn without a thread hand-off.
    package var taskExecutor: (any TaskExecutor)? { ProcessMonitor.shared }

    package func run(_ request: AttemptRequest) async -> AttemptOutcome {
        if Task.isCancelled {
            let now = Date()
            return AttemptOutcome(status: .cancelled, error: "cancelled before it started", startedAt: now, completedAt: now)
        }
        switch begin(request) {
        case .ended(let outcome): return outcome
        case .running(let process): return await process.wait()
        case .http: return await HTTPAgentRunner().run(request)
        }
    }

    /// Starts the process at once, on the caller's thread (the executor's
    /// loop), so that no thread hand-off sits between a slot freeing up and
    /// the next child starting; the executor's child task only waits.
    /// `http` agents are not processes: nil, and `run` does the work.
    package func start(_ request: AttemptRequest) -> (any RunningAttempt)? {
        guard request.agent.kind != .http else { return nil }
        switch begin(request) {
        case .ended(let outcome): return EndedAttempt(outcome: outcome)
        case .running(let process): return process
        case .http: return nil
        }
    }

    private enum Begun {
        case ended(AttemptOutcome)
        case running(RunningProcess)
        case http
    }

    /// Everything up to the spawn: the context file, the program, standard
    /// input, the child started and watched by the `ProcessMonitor`.
    private func begin(_ request: AttemptRequest) -> Begun {
        let startedAt = Date()
        func fail(_ message: String, status: AttemptOutcome.Status = .failed) -> Begun {
            .ended(AttemptOutcome(status: status, error: message, startedAt: startedAt, completedAt: Date()))
        }

        var contextBytes = request.contextJSON
        contextBytes.append(UInt8(ascii: "\n"))
        if let contextPath = request.contextPath {
            guard Self.writeFile(contextPath, contextBytes) else {
                return fail("cannot write context \(contextPath): \(String(cString: strerror(errno)))")
            }
        }
        if let resultPath = request.resultPath, !request.resultFileIsAbsent { unlink(resultPath) }

        // The program and its arguments.
        var argv: [String]
        switch request.agent.kind {
        case .shell:
            guard let run = request.subtask.run else { return fail("subtask has no `run` for shell agent `\(request.agent.name)`") }
            argv = request.agent.shell + [run]
        case .command:
            argv = request.agent.command
        case .http:
            return .http
        }
        guard let program = argv.first, !program.isEmpty else {
            return fail("agent `\(request.agent.name)` has no program to run")
        }
        // A path is checked only when the spawn fails (one `access` less
        // per start; the message is the same).
        let executable: String
        let isPath = program.utf8.contains(UInt8(ascii: "/"))
        if isPath {
            executable = program.hasPrefix("/") ? program : (request.workingDirectory as NSString).appendingPathComponent(program)
        } else {
            guard let found = ProcessSpawner.resolve(program, path: request.environmentValue("PATH")) else {
                return fail("agent `\(request.agent.name)`: program `\(program)` not found")
            }
            executable = found
        }

        // Standard input: the context for command agents, else /dev/null.
        var inputFD: Int32 = -1
        if request.agent.kind == .command {
            if let contextPath = request.contextPath {
                inputFD = open(contextPath, O_RDONLY | O_CLOEXEC)
            } else {
                // No file: hand the JSON over through a temporary file.
                let tmp = NSTemporaryDirectory() + "planrun-context-\(UUID().uuidString).json"
                if Self.writeFile(tmp, contextBytes) {
                    inputFD = open(tmp, O_RDONLY | O_CLOEXEC)
                    unlink(tmp)
                }
            }
            guard inputFD >= 0 else { return fail("cannot open the context file for agent `\(request.agent.name)`") }
        }
        defer { if inputFD >= 0 { close(inputFD) } }

        let spawned: ProcessSpawner.Spawned
        let spawnResult = if let base = request.baseEnvironment {
            ProcessSpawner.spawn(path: executable, arguments: argv, environment: base,
                                 overrides: request.environmentOverrides,
                                 workingDirectory: request.workingDirectory,
                                 standardInput: inputFD >= 0 ? inputFD : nil)
        } else {
            ProcessSpawner.spawn(path: executable, arguments: argv, environment: request.environmentOverrides,
                                 workingDirectory: request.workingDirectory,
                                 standardInput: inputFD >= 0 ? inputFD : nil)
        }
        switch spawnResult {
        case .success(let value):
            spawned = value
        case .failure(.pipe(let code)):
            return fail("cannot create a pipe: \(String(cString: strerror(code)))")
        case .failure(.spawn(let code)):
            if isPath, access(executable, X_OK) != 0 {
                return fail("agent `\(request.agent.name)`: program `\(program)` not found or not executable")
            }
            var st = stat()
            if stat(request.workingDirectory, &st) != 0 || (st.st_mode & S_IFMT) != S_IFDIR
                || access(request.workingDirectory, X_OK) != 0 {
                return fail("cannot enter the plan's folder")
            }
            if code == ENOENT { return fail("agent `\(request.agent.name)`: program `\(program)` not found") }
            return fail("agent `\(request.agent.name)`: cannot start `\(program)`: \(String(cString: strerror(code)))")
        }

        // The log (appended across attempts) is created on the first output:
        // a subtask that prints nothing costs no file. Each attempt's part
        // starts with the command line, so the log shows what ran.
        let command = "$ " + SubtaskCommandLine.text(of: request.subtask, agent: request.agent) + "\n"
        let log = LogSink(path: request.logPath, displayLimit: displayLimit,
                          header: request.attempt > 1 ? "--- attempt \(request.attempt) ---\n" + command : command,
                          logLimit: logLimit)
        ProcessMonitor.shared.add(spawned, log: log, timeout: request.timeout, grace: killGrace, orphanGuard: orphanGuard)
        return .running(RunningProcess(request: RunningProcess.Facts(request), pid: spawned.pid, log: log,
                                       startedAt: startedAt))
    }
    /// A `command` agent's standard output: plain text, or a JSON object
    /// `{"content": ..., "metadata": {...}}` whose `content` is the result
    /// (a string as is, anything else as JSON text). Output that starts
    /// like a JSON object but does not parse is an error.
    package static func agentResult(_ raw: [UInt8]) -> Result<[UInt8], AgentResultError> {
        let trimmed = raw.drop(while: { $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 })
        guard trimmed.first == UInt8(ascii: "{") else { return .success(raw) }
        guard let value = JSONValue.parse(Data(trimmed)), case .object(let object) = value else {
            return .failure(AgentResultError(message: "output starts with `{` but is not valid JSON"))
        }
        guard let content = object["content"] else {
            return .failure(AgentResultError(message: "JSON result has no `content` key"))
        }
        if case .string(let text) = content { return .success(Array(text.utf8)) }
        return .success(Array(content.canonicalJSON.utf8))
    }

    package struct AgentResultError: Error, Sendable, Equatable {
        package var message: String
    }

    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: " (SIGTERM)"
        case SIGKILL: " (SIGKILL)"
        case SIGINT: " (SIGINT)"
        case SIGSEGV: " (SIGSEGV)"
        case SIGABRT: " (SIGABRT)"
        default: ""
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }

    /// At most `limit` bytes of the file at `path`; nil if it cannot be
    /// opened (an absent result file is the common case: one failed `open`).
    static func readFile(_ path: String, limit: Int) -> [UInt8]? {
        FileBytes.read(path, limit: limit)
    }

    /// Writes `bytes` to a new (or truncated) file; false on failure.
    static func writeFile(_ path: String, _ bytes: [UInt8]) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        writeAll(fd, bytes)
        return close(fd) == 0
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { writeAll(fd, $0) }
    }
}

/// A started child of `ProcessCommandRunner`: `wait` returns when it has
/// exited, its output is drained and its process group is gone (a timeout
/// or cancellation stops the group: TERM, then KILL), with the attempt's
/// outcome.
struct RunningProcess: RunningAttempt {
    /// What `wait` needs of the request (not the whole request: a copy of
    /// it retains every field of the subtask and the agent).
    struct Facts: Sendable {
        var agentKind: AgentKind
        var agentName: String
        var timeout: Duration?
        var resultPath: String?

        init(_ request: AttemptRequest) {
            agentKind = request.agent.kind
            agentName = request.agent.name
            timeout = request.timeout
            resultPath = request.resultPath
        }
    }

    let request: Facts
    let pid: pid_t
    let log: LogSink
    let startedAt: Date

    func wait() async -> AttemptOutcome {
        defer { log.close() }
        let monitor = ProcessMonitor.shared
        let pid = pid
        let exit = await withTaskCancellationHandler {
            await monitor.wait(pid)
        } onCancel: {
            monitor.terminate(pid)
        }

        let wasTimedOut = exit.timedOut
        let wasCancelled = Task.isCancelled
        let completedAt = Date()
        let output = log.displayed
        let startedAt = startedAt

        func finish(_ status: AttemptOutcome.Status, _ error: String?, exitCode: Int? = nil, result: [UInt8] = []) -> AttemptOutcome {
            AttemptOutcome(status: status, error: error, result: result, output: output, exitCode: exitCode,
                           startedAt: startedAt, completedAt: completedAt)
        }
        if wasTimedOut {
            return finish(.timedOut, "timed out after \(DurationText.format(request.timeout ?? .zero))")
        }
        if wasCancelled { return finish(.cancelled, "cancelled") }

        let stdout = exit.stdout
        switch exit.termination {
        case .exited(0):
            break
        case .exited(127) where request.agentKind == .shell:
            return finish(.failed, "command not found (exit status 127)", exitCode: 127)
        case .exited(let code):
            return finish(.failed, "exit status \(code)", exitCode: Int(code))
        case .signaled(let signal):
            return finish(.failed, "killed by signal \(signal)" + ProcessCommandRunner.signalName(signal),
                          exitCode: 128 + Int(signal))
        }

        // The result: the PLANRUN_RESULT file, else standard output.
        let resultLimit = AttemptOutcome.resultLimit
        var raw = stdout
        if let resultPath = request.resultPath, let fromFile = ProcessCommandRunner.readFile(resultPath, limit: resultLimit + 1) {
            raw = fromFile
        }
        if raw.count > resultLimit {
            raw = Array(raw.prefix(resultLimit))
            Array("planrun: result truncated to 1 MiB\n".utf8).withUnsafeBytes { log.append($0) }
        }
        if request.agentKind == .command {
            switch ProcessCommandRunner.agentResult(raw) {
            case .success(let content): raw = content
            case .failure(let message):
                return finish(.failed, "agent `\(request.agentName)`: \(message.message)", exitCode: 0)
            }
        }
        return finish(.succeeded, nil, exitCode: 0, result: raw)
    }
}

/// An attempt that ended before it started (it could not be spawned).
struct EndedAttempt: RunningAttempt {
    let outcome: AttemptOutcome
    func wait() async -> AttemptOutcome { outcome }
}

/// Where an attempt's output goes: the log file, opened on the first byte
/// (appending), and an in-memory copy of at most `displayLimit` bytes for
/// the console. The `ProcessMonitor` thread appends both streams; the
/// attempt's waiter reads `displayed` and closes the file from its own
/// task once the child is done, so the state is behind a mutex.
final class LogSink: Sendable {
    private struct State {
        var file: BoundedLogFile?
        var header: [UInt8]?
        var displayed: [UInt8] = []
        var shortened = false
    }
    private let path: String?
    private let displayLimit: Int
    private let state: Mutex<State>

    /// `logLimit`: the most output the log keeps (`BoundedLogFile`).
    init(path: String?, displayLimit: Int, header: String?, logLimit: Int = BoundedLogFile.defaultLimit) {
        self.path = path
        self.displayLimit = displayLimit
        state = Mutex(State(file: path.map { BoundedLogFile(path: $0, limit: logLimit) }, header: header.map { Array($0.utf8) }))
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        state.withLock { s in
            if s.displayed.count < displayLimit {
                s.displayed.append(contentsOf: bytes.prefix(displayLimit - s.displayed.count))
                if s.displayed.count == displayLimit, bytes.count > 0 { s.shortened = true }
            } else {
                s.shortened = true
            }
            s.file?.append(bytes, header: s.header)
        }
    }

    /// The output for the console, with a note when it was shortened.
    var displayed: [UInt8] {
        state.withLock { s in
            s.shortened ? s.displayed + Array("\n... output shortened; full log: \(path ?? "none")\n".utf8) : s.displayed
        }
    }

    func close() {
        state.withLock { s in
            s.file?.close()
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Subprocess
import Synchronization
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Runs attempts as real processes through swift-subprocess.
///
/// Each attempt starts in its own process group (`setpgid(0, 0)`), so the
/// subtask and everything it starts can be stopped together. On timeout or
/// cancellation the group gets SIGTERM, then SIGKILL after `killGrace`;
/// afterwards any member of the group still alive (a child that ignored
/// SIGTERM after its parent exited) gets the same treatment, so no process
/// of a stopped subtask survives.
///
/// Standard error goes straight to the attempt's log file; standard output
/// is read here, appended to the same log and kept (up to 1 MiB) as the
/// result. A `command` agent reads the context JSON from standard input
/// (the context file itself, not a pipe).
package struct ProcessCommandRunner: CommandRunner {
    package var killGrace: Duration
    /// At most this much of an attempt's output is shown on the console;
    /// the log keeps everything.
    package var displayLimit: Int

    package init(killGrace: Duration = .seconds(2), displayLimit: Int = 256 * 1024) {
        self.killGrace = killGrace
        self.displayLimit = displayLimit
    }

    package func run(_ request: AttemptRequest) async -> AttemptOutcome {
        let startedAt = Date()
        func fail(_ message: String, status: AttemptOutcome.Status = .failed) -> AttemptOutcome {
            AttemptOutcome(status: status, error: message, startedAt: startedAt, completedAt: Date())
        }
        if Task.isCancelled { return fail("cancelled before it started", status: .cancelled) }

        // The log (appended across attempts) is created on the first output:
        // a subtask that prints nothing costs no file.
        let log = LogSink(path: request.logPath, displayLimit: displayLimit,
                          header: request.attempt > 1 ? "--- attempt \(request.attempt) ---\n" : nil)
        defer { log.close() }

        var contextBytes = Array(request.context.canonicalJSON.utf8)
        contextBytes.append(UInt8(ascii: "\n"))
        if let contextPath = request.contextPath {
            do { try Data(contextBytes).write(to: URL(fileURLWithPath: contextPath)) } catch {
                return fail("cannot write context \(contextPath): \(error.localizedDescription)")
            }
        }
        if let resultPath = request.resultPath { unlink(resultPath) }

        // The program and its arguments.
        var argv: [String]
        switch request.agent.kind {
        case .shell:
            guard let run = request.subtask.run else { return fail("subtask has no `run` for shell agent `\(request.agent.name)`") }
            argv = request.agent.shell + [run]
        case .command:
            argv = request.agent.command
        case .http:
            return await HTTPAgentRunner().run(request)
        }
        guard let program = argv.first, !program.isEmpty else {
            return fail("agent `\(request.agent.name)` has no program to run")
        }
        let executable: Executable
        if program.contains("/") {
            let absolute = program.hasPrefix("/") ? program : (request.workingDirectory as NSString).appendingPathComponent(program)
            guard access(absolute, X_OK) == 0 else {
                return fail("agent `\(request.agent.name)`: program `\(program)` not found or not executable")
            }
            executable = .path(FilePath(absolute))
        } else {
            executable = .name(program)
        }
        var environment: [Environment.Key: String] = [:]
        for (key, value) in request.environment {
            if let k = Environment.Key(rawValue: key) { environment[k] = value }
        }

        // Standard input: the context for command agents, else nothing.
        var inputFD: Int32 = -1
        if request.agent.kind == .command {
            if let contextPath = request.contextPath {
                inputFD = open(contextPath, O_RDONLY | O_CLOEXEC)
            } else {
                // No file: hand the JSON over through a temporary file.
                let tmp = NSTemporaryDirectory() + "planrun-context-\(UUID().uuidString).json"
                if (try? Data(contextBytes).write(to: URL(fileURLWithPath: tmp))) != nil {
                    inputFD = open(tmp, O_RDONLY | O_CLOEXEC)
                    unlink(tmp)
                }
            }
            guard inputFD >= 0 else { return fail("cannot open the context file for agent `\(request.agent.name)`") }
        } else {
            inputFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        }
        defer { if inputFD >= 0 { close(inputFD) } }

        var options = PlatformOptions()
        options.processGroupID = 0
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: killGrace)]
        let configuration = Configuration(
            executable: executable,
            arguments: Arguments(Array(argv.dropFirst())),
            environment: .custom(environment),
            workingDirectory: FilePath(request.workingDirectory),
            platformOptions: options
        )

        let control = AttemptControl()
        let resultLimit = AttemptOutcome.resultLimit
        let stdinFD = inputFD

        // The process and, when there is a timeout, a timer racing it.
        let outcome: Result<(TerminationStatus, [UInt8]), any Error> = await withTaskGroup(
            of: Result<(TerminationStatus, [UInt8]), any Error>?.self
        ) { group in
            group.addTask {
                do {
                    let result = try await Subprocess.run(
                        configuration,
                        input: .fileDescriptor(FileDescriptor(rawValue: stdinFD), closeAfterSpawningProcess: false),
                        output: .sequence,
                        error: .sequence
                    ) { execution in
                        control.pid.withLock { $0 = execution.processIdentifier.value }
                        // Both streams go to the log in arrival order; standard output is also the result.
                        return try await withThrowingTaskGroup(of: [UInt8].self) { streams in
                            streams.addTask {
                                for try await buffer in execution.standardError {
                                    buffer.withUnsafeBytes { log.append($0) }
                                }
                                return []
                            }
                            streams.addTask {
                                var stdout: [UInt8] = []
                                for try await buffer in execution.standardOutput {
                                    buffer.withUnsafeBytes { raw in
                                        log.append(raw)
                                        if stdout.count <= resultLimit {
                                            stdout.append(contentsOf: raw.prefix(resultLimit + 1 - stdout.count))
                                        }
                                    }
                                }
                                return stdout
                            }
                            var stdout: [UInt8] = []
                            for try await part in streams where !part.isEmpty { stdout = part }
                            return stdout
                        }
                    }
                    return .success((result.terminationStatus, result.closureResult))
                } catch {
                    return .failure(error)
                }
            }
            if let timeout = request.timeout {
                group.addTask {
                    do { try await Task.sleep(for: timeout) } catch { return nil }
                    control.timedOut.withLock { $0 = true }
                    return nil
                }
            }
            var first: Result<(TerminationStatus, [UInt8]), any Error>?
            while let next = await group.next() {
                if let next {
                    first = next
                    group.cancelAll() // stop the timer
                } else if control.timedOut.withLock({ $0 }) {
                    group.cancelAll() // stop the process (teardown: TERM, then KILL)
                }
            }
            return first ?? .failure(CancellationError())
        }

        let wasTimedOut = control.timedOut.withLock { $0 }
        let wasCancelled = Task.isCancelled
        if wasTimedOut || wasCancelled, let pid = control.pid.withLock({ $0 }) {
            await Self.terminateGroup(pid, grace: killGrace)
        }
        let completedAt = Date()
        let output = log.displayed

        func finish(_ status: AttemptOutcome.Status, _ error: String?, exitCode: Int? = nil, result: [UInt8] = []) -> AttemptOutcome {
            AttemptOutcome(status: status, error: error, result: result, output: output, exitCode: exitCode,
                           startedAt: startedAt, completedAt: completedAt)
        }
        if wasTimedOut {
            return finish(.timedOut, "timed out after \(DurationText.format(request.timeout ?? .zero))")
        }
        if wasCancelled { return finish(.cancelled, "cancelled") }

        let status: TerminationStatus
        let stdout: [UInt8]
        switch outcome {
        case .failure(let error):
            return finish(.failed, Self.describe(error, program: program, agent: request.agent))
        case .success(let value):
            (status, stdout) = value
        }
        switch status {
        case .exited(0):
            break
        case .exited(127) where request.agent.kind == .shell:
            return finish(.failed, "command not found (exit status 127)", exitCode: 127)
        case .exited(let code):
            return finish(.failed, "exit status \(code)", exitCode: Int(code))
        case .signaled(let signal):
            return finish(.failed, "killed by signal \(signal)" + Self.signalName(signal), exitCode: 128 + Int(signal))
        }

        // The result: the PLANRUN_RESULT file, else standard output.
        var raw = stdout
        if let resultPath = request.resultPath, let handle = FileHandle(forReadingAtPath: resultPath) {
            raw = Array((try? handle.read(upToCount: resultLimit + 1)) ?? Data())
            try? handle.close()
        }
        if raw.count > resultLimit {
            raw = Array(raw.prefix(resultLimit))
            Array("planrun: result truncated to 1 MiB\n".utf8).withUnsafeBytes { log.append($0) }
        }
        if request.agent.kind == .command {
            switch Self.agentResult(raw) {
            case .success(let content): raw = content
            case .failure(let message):
                return finish(.failed, "agent `\(request.agent.name)`: \(message.message)", exitCode: 0)
            }
        }
        return finish(.succeeded, nil, exitCode: 0, result: raw)
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

    private static func describe(_ error: any Error, program: String, agent: AgentDefinition) -> String {
        if let error = error as? SubprocessError {
            switch error.code {
            case .executableNotFound: return "agent `\(agent.name)`: program `\(program)` not found"
            case .failedToChangeWorkingDirectory: return "cannot enter the plan's folder"
            case .spawnFailed: return "agent `\(agent.name)`: cannot start `\(program)`"
            default: return "agent `\(agent.name)`: \(error)"
            }
        }
        return "agent `\(agent.name)`: \(error)"
    }

    private static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: " (SIGTERM)"
        case SIGKILL: " (SIGKILL)"
        case SIGINT: " (SIGINT)"
        case SIGSEGV: " (SIGSEGV)"
        case SIGABRT: " (SIGABRT)"
        default: ""
        }
    }

    /// Sends SIGTERM to what is left of process group `pgid`, then SIGKILL
    /// after `grace` if anything is still alive.
    package static func terminateGroup(_ pgid: pid_t, grace: Duration) async {
        guard kill(-pgid, 0) == 0 else { return }
        _ = kill(-pgid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            if kill(-pgid, 0) != 0 { return }
            try? await _Concurrency.Task.sleep(for: .milliseconds(20))
        }
        _ = kill(-pgid, SIGKILL)
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { writeAll(fd, $0) }
    }
}

/// What the process task and the timer of one attempt share: the child's
/// pid (to sweep its group) and whether the timer fired.
private final class AttemptControl: Sendable {
    let pid = Mutex<pid_t?>(nil)
    let timedOut = Mutex(false)
}

/// Where an attempt's output goes: the log file, opened on the first byte
/// (appending), and an in-memory copy of at most `displayLimit` bytes for
/// the console. Standard output and standard error are read by two tasks,
/// so the state is behind a mutex.
private final class LogSink: Sendable {
    private struct State {
        var fd: Int32 = -1
        var failed = false
        var header: [UInt8]?
        var displayed: [UInt8] = []
        var shortened = false
    }
    private let path: String?
    private let displayLimit: Int
    private let state: Mutex<State>

    init(path: String?, displayLimit: Int, header: String?) {
        self.path = path
        self.displayLimit = displayLimit
        state = Mutex(State(header: header.map { Array($0.utf8) }))
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
            guard let path, !s.failed else { return }
            if s.fd < 0 {
                s.fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
                if s.fd < 0 { s.failed = true; return }
                if let header = s.header { ProcessCommandRunner.writeAll(s.fd, header) }
            }
            ProcessCommandRunner.writeAll(s.fd, bytes)
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
            if s.fd >= 0 { _ = Glibc.close(s.fd); s.fd = -1 }
        }
    }
}

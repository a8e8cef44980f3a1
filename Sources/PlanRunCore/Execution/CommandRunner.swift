import Foundation

/// Runs one attempt of one subtask (ninja's `CommandRunner`). The executor
/// calls it from a child task; it must return when the attempt ends, and
/// when its task is cancelled it must stop the work (for processes: the
/// whole process group) and return `.cancelled`.
package protocol CommandRunner: Sendable {
    func run(_ request: AttemptRequest) async -> AttemptOutcome
    /// Begins the attempt synchronously and returns it to wait for, or nil
    /// when this runner only has `run` (the default). The executor calls it
    /// from its loop so that a child process starts without waiting for a
    /// new task to be scheduled; `wait()` must then honour cancellation as
    /// `run` does.
    func start(_ request: AttemptRequest) -> (any RunningAttempt)?
    /// Where the executor's loop and its children should run (a task
    /// executor preference), or nil for the global executor (the default).
    var taskExecutor: (any TaskExecutor)? { get }
}

extension CommandRunner {
    package func start(_ request: AttemptRequest) -> (any RunningAttempt)? { nil }
    package var taskExecutor: (any TaskExecutor)? { nil }
}

/// An attempt begun by `CommandRunner.start`.
package protocol RunningAttempt: Sendable {
    func wait() async -> AttemptOutcome
}

/// What one attempt needs. The executor builds it; runners do not consult
/// the plan or the state.
package struct AttemptRequest: Sendable {
    package var subtask: Subtask
    package var agent: AgentDefinition
    package var attempt: Int
    package var runID: String
    /// Folder the subtask runs in (the plan's folder).
    package var workingDirectory: String
    /// The complete environment: caller, plan, agent, subtask, `PLANRUN_*`
    /// (`baseEnvironment` with `environmentOverrides` applied). Setting it
    /// replaces both.
    package var environment: [String: String] {
        get {
            guard let base = baseEnvironment else { return environmentOverrides }
            return base.values.merging(environmentOverrides) { _, new in new }
        }
        set {
            baseEnvironment = nil
            environmentOverrides = newValue
        }
    }
    /// The variables shared by many attempts, prebuilt once per run.
    package var baseEnvironment: SpawnEnvironment?
    /// This attempt's own variables; they win over `baseEnvironment`.
    package var environmentOverrides: [String: String]
    /// The context JSON given to the subtask (`PLANRUN_CONTEXT`, and a
    /// `command` agent's standard input).
    package var context: JSONValue {
        get {
            switch contextStorage {
            case .value(let value): value
            case .parts(let parts): parts.value
            }
        }
        set { contextStorage = .value(newValue) }
    }
    /// `context` as canonical JSON bytes (rendered directly when the
    /// executor gave its parts).
    package var contextJSON: [UInt8] {
        switch contextStorage {
        case .value(let value): Array(value.canonicalJSON.utf8)
        case .parts(let parts): parts.canonicalJSON
        }
    }
    private enum ContextStorage: Sendable {
        case value(JSONValue)
        case parts(SubtaskContext)
    }
    private var contextStorage: ContextStorage
    /// Where to write the context (`PLANRUN_CONTEXT`), where the subtask may
    /// write its result (`PLANRUN_RESULT`), and the attempt's log; nil when
    /// the runner does not use files.
    package var contextPath: String?
    package var resultPath: String?
    package var logPath: String?
    package var timeout: Duration?
    /// No file can be at `resultPath` yet (a first attempt in a work folder
    /// made for this run): the runner skips removing it before the start.
    package var resultFileIsAbsent = false

    package init(
        subtask: Subtask, agent: AgentDefinition, attempt: Int, runID: String,
        workingDirectory: String, environment: [String: String], context: JSONValue,
        contextPath: String? = nil, resultPath: String? = nil, logPath: String? = nil,
        timeout: Duration? = nil
    ) {
        self.init(subtask: subtask, agent: agent, attempt: attempt, runID: runID, workingDirectory: workingDirectory,
                  baseEnvironment: nil, overrides: environment, context: .value(context), contextPath: contextPath,
                  resultPath: resultPath, logPath: logPath, timeout: timeout)
    }

    /// As above, with the shared part of the environment prebuilt and the
    /// context as parts (what the executor passes).
    package init(
        subtask: Subtask, agent: AgentDefinition, attempt: Int, runID: String,
        workingDirectory: String, baseEnvironment: SpawnEnvironment, environment: [String: String],
        context: SubtaskContext, contextPath: String? = nil, resultPath: String? = nil,
        logPath: String? = nil, timeout: Duration? = nil, resultFileIsAbsent: Bool = false
    ) {
        self.init(subtask: subtask, agent: agent, attempt: attempt, runID: runID, workingDirectory: workingDirectory,
                  baseEnvironment: baseEnvironment, overrides: environment, context: .parts(context),
                  contextPath: contextPath, resultPath: resultPath, logPath: logPath, timeout: timeout)
        self.resultFileIsAbsent = resultFileIsAbsent
    }

    private init(
        subtask: Subtask, agent: AgentDefinition, attempt: Int, runID: String, workingDirectory: String,
        baseEnvironment: SpawnEnvironment?, overrides: [String: String], context: ContextStorage,
        contextPath: String?, resultPath: String?, logPath: String?, timeout: Duration?
    ) {
        self.subtask = subtask
        self.agent = agent
        self.attempt = attempt
        self.runID = runID
        self.workingDirectory = workingDirectory
        self.baseEnvironment = baseEnvironment
        self.environmentOverrides = overrides
        self.contextStorage = context
        self.contextPath = contextPath
        self.resultPath = resultPath
        self.logPath = logPath
        self.timeout = timeout
    }

    /// One variable of `environment`, without merging the whole dictionary.
    package func environmentValue(_ name: String) -> String? {
        environmentOverrides[name] ?? baseEnvironment?.values[name]
    }
}

/// How one attempt ended.
package struct AttemptOutcome: Sendable {
    package enum Status: String, Sendable, Hashable {
        case succeeded = "done"
        case failed
        case timedOut = "timed_out"
        case cancelled
    }

    package var status: Status
    /// Why it did not succeed (lowercase, names in backticks).
    package var error: String?
    /// The result (what the subtask wrote to `PLANRUN_RESULT`, else its
    /// standard output), at most `AttemptOutcome.resultLimit` bytes.
    package var result: [UInt8]
    /// Captured standard output and error, interleaved, for display; may be
    /// shortened (the log file has everything).
    package var output: [UInt8]
    package var exitCode: Int?
    package var startedAt: Date
    package var completedAt: Date
    /// False when trying again cannot help (an `http` agent's 4xx answer):
    /// the executor then does not retry a failed attempt.
    package var retryable = true

    /// A result is capped at 1 MiB.
    package static let resultLimit = 1 << 20

    package init(
        status: Status, error: String? = nil, result: [UInt8] = [], output: [UInt8] = [],
        exitCode: Int? = nil, startedAt: Date, completedAt: Date
    ) {
        self.status = status
        self.error = error
        self.result = result
        self.output = output
        self.exitCode = exitCode
        self.startedAt = startedAt
        self.completedAt = completedAt
    }
}

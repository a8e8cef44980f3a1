import Foundation

/// Everything a run needs from outside Core (ninja's `BuildConfig`): the CLI
/// passes what the command line, the environment and the terminal say;
/// Core never reads those itself.
package struct RunConfiguration: Sendable {
    /// The plan-wide limit: at most this many subtasks at once (at least
    /// 1). `init(plan:jobs:...)` resolves it; the scheduler enforces it.
    package var jobs: Int
    /// `--keep-going`: after a failure, keep running what does not depend on it.
    package var keepGoing: Bool
    /// Subtasks named on the command line; empty = all.
    package var targets: [String]
    /// The caller's environment; subtasks inherit it.
    package var environment: [String: String]
    /// Whether progress goes to a terminal (live status line).
    package var isTerminal: Bool
    /// Where state, logs and the lock live; nil = `.planrun` beside the plan.
    package var stateDirectory: String?
    /// Run every subtask even when up to date: the `Force.all` the build's
    /// cache is made with (`BuildSession.runCached`, `Executor`'s default).
    package var forced: Bool
    /// Time between SIGTERM and SIGKILL when a subtask is stopped.
    package var killGrace: Duration
    /// Random factor for retry backoff jitter in [0, 1); tests pin it.
    package var jitter: @Sendable () -> Double
    /// The planrun binary, started as the build's watchdog (`OrphanGuard`);
    /// nil: no watchdog (Core running inside another program, such as tests).
    package var watchdogExecutable: String?
    /// When the build began (the command's start, before the plan is read
    /// and the remote cache consulted): the summary's duration is the
    /// whole wall time from here, not only the executor's share.
    package var startedAt: Date = Date()

    /// A configuration whose plan-wide limit `jobs` is already resolved
    /// (tests, and Core callers that fix it themselves).
    package init(
        jobs: Int, keepGoing: Bool = false, targets: [String] = [],
        environment: [String: String] = [:], isTerminal: Bool = false,
        stateDirectory: String? = nil, forced: Bool = false,
        killGrace: Duration = .seconds(2),
        jitter: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        watchdogExecutable: String? = nil
    ) {
        self.jobs = max(1, jobs)
        self.keepGoing = keepGoing
        self.targets = targets
        self.environment = environment
        self.isTerminal = isTerminal
        self.stateDirectory = stateDirectory
        self.forced = forced
        self.killGrace = killGrace
        self.jitter = jitter
        self.watchdogExecutable = watchdogExecutable
    }

    /// A run of `plan`: `jobs` is `-j` (nil when not given), resolved
    /// against the plan by `limit(jobs:plan:processorCount:)`.
    package init(
        plan: Plan, jobs: Int?, keepGoing: Bool = false, targets: [String] = [],
        environment: [String: String] = [:], isTerminal: Bool = false,
        stateDirectory: String? = nil, forced: Bool = false,
        processorCount: Int = ProcessInfo.processInfo.activeProcessorCount,
        watchdogExecutable: String? = nil
    ) {
        self.init(jobs: Self.limit(jobs: jobs, plan: plan, processorCount: processorCount), keepGoing: keepGoing,
                  targets: targets, environment: environment, isTerminal: isTerminal,
                  stateDirectory: stateDirectory, forced: forced, watchdogExecutable: watchdogExecutable)
    }

    /// The plan-wide limit: `-j`, else the plan's `max_parallel`, else the
    /// number of CPUs; at least 1.
    package static func limit(jobs: Int?, plan: Plan, processorCount: Int) -> Int {
        max(1, jobs ?? plan.maxParallel ?? processorCount)
    }

    /// The delay before attempt `attempt + 1` after attempt `attempt`
    /// failed: `backoff` doubled per earlier retry, then "equal jitter"
    /// (half fixed, half random), so retries of many subtasks spread out.
    package func retryDelay(backoff: Duration, afterAttempt attempt: Int) -> Duration {
        let exponent = min(max(attempt - 1, 0), 20)
        let base = backoff * (1 << exponent)
        return base / 2 + base * (jitter() / 2)
    }
}

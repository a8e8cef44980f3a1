import Collections
import Foundation

// Threads of a build, and what each may touch.
//
// - The loop (`ExecutorLoop`, one task) owns the run: the scheduler, the
//   reports, the recorder (every state write) and the request builder. It
//   alone calls the reporter and the cache (`BuildCache`), so events and
//   rows come in order and none of that state needs a lock. Its child
//   tasks run one attempt each and only return what happened.
// - With real processes (`ProcessCommandRunner`) the loop and its children
//   run on the `ProcessMonitor` thread: the monitor is also a
//   `TaskExecutor`, and between two looks at its children (`poll`) it runs
//   the jobs of the tasks that prefer it, for at most
//   `ProcessMonitor.jobsBeforeLook` at a time. A child's exit, the loop
//   handling it and the next spawn thus happen on one thread. The loop
//   decides cache verdicts in slices (`Executor.decisionSlice`) so that
//   the monitor gets its turn during a long run of them. Other runners
//   leave the loop on the global executor; it is still one task.
// - The monitor's table of children is shared with the tasks that add and
//   stop them, behind its own lock; only the monitor thread reads the
//   children's pipes.
// - `BuildPreparation` opens the lock, the state and the cache's records on
//   a thread of its own while the plan is parsed; the build takes them
//   (`Pending.wait`) before the loop starts, and that thread touches
//   nothing afterwards.
// - The state database commits on its own serial queue
//   (`StateStore.flushInBackground`); the loop only queues rows.
// - Work that really runs beside the loop keeps its own locks: a remote
//   cache's prefetch and uploads (Caching), and `http` agents' requests,
//   answered on URLSession's threads (`HTTPAgentRunner`).
// - The CLI's signal watcher cancels the loop's task and leaves the reason
//   in the `RunCanceller`, the one value it shares with the loop.

/// Runs the selected subtasks of a plan.
///
/// A subtask starts as soon as its dependencies are done and a slot is
/// free, as the `Scheduler` decides (the plan-wide limit and each agent's
/// `max_parallel`; the longest remaining critical path first, then plan
/// order). A subtask keeps its slot between attempts.
package struct Executor {
    package let graph: TaskGraph
    package let configuration: RunConfiguration
    package let runner: any CommandRunner
    package let cache: any BuildCache
    package let store: StateStore?
    package let runID: String
    /// Where per-subtask logs go; nil = none.
    package let logDirectory: String?
    /// Where the context and result files of attempts go (`PLANRUN_CONTEXT`,
    /// `PLANRUN_RESULT`); nil = `logDirectory`.
    package let workDirectory: String?
    package let canceller: RunCanceller
    /// Seconds each subtask took when it last succeeded (from the state);
    /// empty = schedule in plan order.
    package var expectedDurations: [String: Double] = [:]

    /// Cache verdicts the loop makes before it handles what finished
    /// meanwhile (and looks at cancellation).
    package static let decisionSlice = 16
    /// `workDirectory` was created empty for this run: before a subtask's
    /// first attempt no result file of it can be there (the runner need
    /// not remove one).
    package var workDirectoryIsNew = false

    package init(
        graph: TaskGraph, configuration: RunConfiguration, runner: any CommandRunner,
        cache: (any BuildCache)? = nil, store: StateStore? = nil, runID: String = "run",
        logDirectory: String? = nil, workDirectory: String? = nil, canceller: RunCanceller = RunCanceller()
    ) {
        self.graph = graph
        self.configuration = configuration
        self.runner = runner
        self.cache = cache ?? NoBuildCache(force: Force(all: configuration.forced))
        self.store = store
        self.runID = runID
        self.logDirectory = logDirectory
        self.workDirectory = workDirectory
        self.canceller = canceller
    }

    /// Runs the subtasks marked in `selected` (all when nil) and returns the
    /// summary. Cancelling the calling task cancels the run: nothing new
    /// starts, running attempts are stopped, and the run ends `cancelled`.
    package func run(selected: [Bool]? = nil, reporter: some ProgressReporter) async -> RunSummary {
        // Where the runner wants the loop (ProcessCommandRunner: on the
        // thread that watches its children).
        await withTaskExecutorPreference(runner.taskExecutor) {
            var loop = ExecutorLoop(executor: self, selected: selected ?? [Bool](repeating: true, count: graph.count),
                                    reporter: reporter)
            return await loop.run()
        }
    }
}

/// One attempt to start: the request and how long to wait first.
struct Launch: Sendable {
    var node: Int
    var request: AttemptRequest
    var delay: Duration
}

/// What wakes the loop: its only wait is for the next of these.
enum LoopEvent: Sendable {
    /// An attempt ended.
    case attemptEnded(node: Int, attempt: Int, outcome: AttemptOutcome)
    /// Queued state rows are due for a commit (`RunRecorder.commitIfDue`).
    case commitDue
    /// The loop's turn to decide the next slice of cache verdicts; it comes
    /// after the attempts that ended before it.
    case decideTurn
}

/// The state of one run; lives inside `Executor.run` only.
struct ExecutorLoop {
    let executor: Executor
    let graph: TaskGraph
    let plan: Plan
    let selected: [Bool]
    let reporter: any ProgressReporter
    var startedAt: Date { executor.configuration.startedAt }

    var scheduler: Scheduler
    var recorder: RunRecorder
    var requests: AttemptRequestBuilder
    var reports: [SubtaskReport]
    /// Each subtask's result digest and cache key, once known.
    var digests: [String?]
    var cacheKeys: [ActionKey?]
    /// The ids of the running subtasks, in the order they started (the
    /// progress given with each event).
    var runningIDs: [String] = []
    /// Subtasks whose dependencies are all done, waiting for the cache's
    /// verdict (`decidePending`), in rounds.
    var undecided: Deque<[Int]> = []
    let total: Int
    var finished = 0, cachedCount = 0, failedCount = 0
    var cancelled = false
    var cancelReason: String?
    var firstFailure: String?

    init(executor: Executor, selected: [Bool], reporter: some ProgressReporter) {
        self.executor = executor
        graph = executor.graph
        plan = executor.graph.plan
        self.selected = selected
        self.reporter = reporter
        scheduler = Scheduler(graph: graph, selected: selected, limit: executor.configuration.jobs,
                              durations: executor.expectedDurations)
        recorder = RunRecorder(store: executor.store, history: executor.cache.historyStore, runID: executor.runID)
        requests = AttemptRequestBuilder(executor: executor, selected: selected)
        reports = plan.subtasks.map { SubtaskReport(id: $0.id, agent: $0.agent) }
        digests = [String?](repeating: nil, count: graph.count)
        cacheKeys = [ActionKey?](repeating: nil, count: graph.count)
        total = selected.count { $0 }
    }

    /// Nothing new starts: cancelled, a state write failed, or a subtask
    /// failed without `--keep-going`.
    var stopping: Bool {
        cancelled || recorder.failure != nil || (firstFailure != nil && !executor.configuration.keepGoing)
    }

    var progress: RunProgress {
        RunProgress(total: total, finished: finished, cached: cachedCount, failed: failedCount, running: runningIDs)
    }

    mutating func run() async -> RunSummary {
        reporter.report(.runStarted(runID: executor.runID, total: total), progress: progress)
        undecided.append(scheduler.roots)
        await withTaskGroup(of: LoopEvent.self) { group in
            var decideTurnQueued = false, commitTimerSet = false
            while true {
                checkCancellation()
                let moreToDecide = await decidePending(group: &group)
                checkCancellation()
                if !stopping { announce(launchReady(into: &group)) }
                switch recorder.commitIfDue(idle: runningIDs.isEmpty) {
                case .started: break
                case .due(let delay) where !commitTimerSet:
                    commitTimerSet = true
                    group.addTask {
                        try? await Task.sleep(for: delay) // cancelled when the run is over
                        return .commitDue
                    }
                case .due, .none: break
                }
                if runningIDs.isEmpty {
                    if undecided.isEmpty { break }
                    continue
                }
                if moreToDecide, !decideTurnQueued {
                    decideTurnQueued = true
                    group.addTask { .decideTurn }
                }
                reporter.flush()
                guard let event = await group.next() else { break }
                switch event {
                case .decideTurn: decideTurnQueued = false
                case .commitDue: commitTimerSet = false
                case .attemptEnded(let node, let attempt, let outcome):
                    await attemptEnded(node, attempt: attempt, outcome: outcome, group: &group)
                }
            }
            group.cancelAll() // the commit timer, if set; nothing else is left
        }
        return await finishRun()
    }

    /// Asks the cache about each newly ready subtask (`undecided`, in
    /// rounds: subtasks that became ready together); up-to-date ones finish
    /// at once, and the dependents they release form a later round; the
    /// others join the scheduler. After each round whatever fits starts,
    /// so a long run of up-to-date subtasks does not hold back the first
    /// process. While attempts run it stops after `Executor.decisionSlice`
    /// verdicts and returns true: the loop handles what ended meanwhile,
    /// then decides on.
    mutating func decidePending(group: inout TaskGroup<LoopEvent>) async -> Bool {
        var slice = 0
        while let round = undecided.popFirst() {
            var next: [Int] = []
            var index = 0
            defer { if !next.isEmpty { undecided.append(next) } }
            while index < round.count {
                let node = round[index]
                index += 1
                if stopping { continue } // left pending; labelled at the end
                await decide(node, releasing: &next)
                slice += 1
                guard slice >= Executor.decisionSlice else { continue }
                slice = 0
                // Cancelled (Ctrl-C during thousands of verdicts): what is
                // not decided stays pending.
                if Task.isCancelled { return false }
                if !runningIDs.isEmpty, index < round.count || !next.isEmpty || !undecided.isEmpty {
                    if index < round.count { undecided.prepend(Array(round[index...])) }
                    return true
                }
            }
            if !stopping { announce(launchReady(into: &group)) }
        }
        return false
    }

    /// One subtask's verdict: up to date (finished now; `released` gets the
    /// dependents that became ready) or to run (queued).
    mutating func decide(_ node: Int, releasing released: inout [Int]) async {
        let subtask = plan.subtasks[node]
        let dependencyDigests = KeyWalk.dependencyDigests(of: node, in: graph, missing: "") { digests[$0] } ?? [:]
        let decision: CacheDecision
        do {
            decision = try await executor.cache.decide(subtask, dependencyDigests: dependencyDigests)
        } catch {
            return fail(node, "cannot check the cache: \(error)")
        }
        switch decision {
        case .upToDate(let cached):
            let now = Date()
            reports[node].status = .cached
            reports[node].result = cached.result
            reports[node].reason = cached.reason
            reports[node].startedAt = now
            reports[node].completedAt = now
            digests[node] = cached.resultDigest
            cacheKeys[node] = cached.key
            finished += 1
            cachedCount += 1
            if let entry = cached.history { recorder.historySaved(entry, for: subtask.id) }
            recorder.subtaskFinished(reports[node], resultDigest: cached.resultDigest, cacheKey: cached.key.digest,
                                     reason: cached.reason.description)
            reporter.report(.skipped(reports[node]), progress: progress)
            released.append(contentsOf: scheduler.release(node))
        case .run(let reason, let key):
            reports[node].reason = reason
            cacheKeys[node] = key
            scheduler.ready(node)
        }
    }

    /// Starts the first attempts of the ready subtasks that fit and marks
    /// them running; returns them for `announce`.
    mutating func launchReady(into group: inout TaskGroup<LoopEvent>) -> [Int] {
        var started: [Int] = []
        while let node = scheduler.scheduleNext() {
            runningIDs.append(plan.subtasks[node].id)
            reports[node].status = .running
            reports[node].startedAt = Date()
            reports[node].attempts = 1
            let launch = Launch(node: node, request: requests.request(for: node, attempt: 1, reports: reports),
                                delay: .zero)
            Self.start(launch, runner: executor.runner, in: &group)
            started.append(node)
        }
        return started
    }

    /// Records and reports the start of first attempts.
    mutating func announce(_ started: [Int]) {
        for node in started {
            let report = reports[node]
            recorder.attemptStarted(report.id, attempt: 1, at: report.startedAt ?? Date(),
                                    reason: report.reason?.description)
            reporter.report(.started(id: report.id), progress: progress)
        }
    }

    /// Starts an attempt in a child task. A first attempt starts here, on
    /// the loop's thread, when the runner can (`CommandRunner.start`), and
    /// the child only waits for it; a retry waits its delay in the child.
    static func start(_ launch: Launch, runner: any CommandRunner, in group: inout TaskGroup<LoopEvent>) {
        let (node, attempt) = (launch.node, launch.request.attempt)
        if attempt == 1, let started = runner.start(launch.request) {
            group.addTask { .attemptEnded(node: node, attempt: attempt, outcome: await started.wait()) }
            return
        }
        group.addTask {
            do { try await Task.sleep(for: launch.delay) } catch {
                return .attemptEnded(node: node, attempt: attempt, outcome: AttemptOutcome(
                    status: .cancelled, error: "cancelled", startedAt: Date(), completedAt: Date()))
            }
            return .attemptEnded(node: node, attempt: attempt, outcome: await runner.run(launch.request))
        }
    }

    /// Handles an attempt that ended. Its slot goes to the next ready
    /// subtask before the attempt is recorded (ninja keeps its slots busy
    /// the same way) when that cannot change the choice
    /// (`Scheduler.canPassSlotBeforeRelease`); the new start is reported
    /// after this attempt's end.
    mutating func attemptEnded(_ node: Int, attempt: Int, outcome: AttemptOutcome,
                               group: inout TaskGroup<LoopEvent>) async {
        checkCancellation()
        var early: [Int] = []
        let passSlot = !stopping && outcome.status == .succeeded && scheduler.canPassSlotBeforeRelease(of: node)
        if passSlot {
            endRunning(node)
            early = launchReady(into: &group)
        }
        let retry = await record(node, attempt: attempt, outcome: outcome, slotPassed: passSlot)
        announce(early)
        if let retry { Self.start(retry, runner: executor.runner, in: &group) }
    }

    /// `node`'s attempts are over: its slots are free.
    mutating func endRunning(_ node: Int) {
        scheduler.finished(node)
        if let i = runningIDs.firstIndex(of: plan.subtasks[node].id) { runningIDs.remove(at: i) }
    }

    mutating func checkCancellation() {
        guard Task.isCancelled, !cancelled else { return }
        cancelled = true
        cancelReason = recorder.cancelRequest() ?? executor.canceller.reason ?? "cancelled"
    }
}

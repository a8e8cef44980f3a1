import Collections
import Foundation
import Synchronization

/// Runs the selected subtasks of a plan (DESIGN §4).
///
/// One `withTaskGroup` loop owns all scheduling state: the ready queues,
/// the remaining-dependency counts, statuses and results. A child task runs
/// one attempt of one subtask through the `CommandRunner` (after its retry
/// delay, if any) and returns the outcome; the loop records it, decides on a
/// retry, releases dependents and starts whatever is ready. The reporter and
/// the state store are called only from the loop, so events and rows are
/// written in order, as they happen, without locks.
///
/// Scheduling is eager: a subtask starts as soon as its dependencies are
/// done and a slot is free (at most `jobs` at once, and at most an agent's
/// `max_parallel` for that agent). Among ready subtasks, plan order wins;
/// when earlier runs recorded durations (`expectedDurations`), the subtask
/// with the longest remaining critical path goes first, as ninja does with
/// its build log, and plan order breaks ties. A subtask keeps its slot
/// between attempts.
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

    /// Cache verdicts the loop makes between two looks at finished
    /// attempts (and at cancellation).
    package static let decisionSlice = 16
    /// `workDirectory` was created empty for this run: before a subtask's
    /// first attempt no result file of it can be there (the runner need
    /// not remove one).
    package var workDirectoryIsNew = false

    package init(
        graph: TaskGraph, configuration: RunConfiguration, runner: any CommandRunner,
        cache: any BuildCache = NoBuildCache(), store: StateStore? = nil, runID: String = "run",
        logDirectory: String? = nil, workDirectory: String? = nil, canceller: RunCanceller = RunCanceller()
    ) {
        self.graph = graph
        self.configuration = configuration
        self.runner = runner
        self.cache = cache
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

/// A ready subtask in the queue: longest remaining critical path first,
/// then plan order.
private struct ReadyEntry: Comparable {
    var weight: Double
    var node: Int
    static func < (a: ReadyEntry, b: ReadyEntry) -> Bool {
        a.weight != b.weight ? a.weight > b.weight : a.node < b.node
    }
}

/// One attempt to start: the request and how long to wait first.
private struct Launch: Sendable {
    var node: Int
    var request: AttemptRequest
    var delay: Duration
}

/// How many of the loop's child tasks have finished: the loop, busy
/// deciding a long run of up-to-date subtasks, looks at it between slices
/// and stops to handle a finished attempt (a task group cannot be asked
/// whether `next()` would return at once).
private final class CompletionCounter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .releasing) }
    var value: Int { count.load(ordering: .acquiring) }
}

/// What a child task returns.
private struct AttemptDone: Sendable {
    var node: Int
    var attempt: Int
    var outcome: AttemptOutcome
}

/// The scheduling state of one run; lives inside `Executor.run` only.
private struct ExecutorLoop {
    let executor: Executor
    let graph: TaskGraph
    let plan: Plan
    let selected: [Bool]
    let reporter: any ProgressReporter
    let startedAt = Date()

    var reports: [SubtaskReport]
    var remaining: [Int]
    var digests: [String?]
    var cacheKeys: [ActionKey?]
    /// Ready subtasks per agent, smallest plan position first.
    var ready: [String: Heap<ReadyEntry>] = [:]
    /// Remaining critical path of each subtask (0 everywhere without history).
    var weight: [Double]
    var runningPerAgent: [String: Int] = [:]
    /// Caller + plan + agent environment of each agent in use, built once.
    var baseEnvironments: [String: SpawnEnvironment] = [:]
    var running: [Int] = []
    /// The ids of `running`, in the same order (kept alongside, so that
    /// the progress given with each event is not rebuilt every time).
    var runningIDs: [String] = []
    var total: Int
    var finished = 0
    /// No new subtask starts (a failure without `--keep-going`, or cancellation).
    var stopping = false
    var cancelled = false
    var cancelReason: String?
    var firstFailure: String?
    /// The first state or cache write that failed (`recordState`): nothing
    /// new starts, and the run ends `failed` with it (DESIGN §9.10).
    var writeFailure: String?
    var lastFlush = ContinuousClock.now
    var flushTickPending = false
    /// Context files of the work folder not in use, how many were made,
    /// and the one each running attempt has (`contextFile`).
    var freeContextFiles: [String] = []
    var contextFileCount = 0
    var contextFileOf: [Int: String] = [:]
    /// Subtasks whose dependencies are all done, waiting for the cache's
    /// verdict (`decidePending`), in rounds.
    var undecided: Deque<[Int]> = []
    /// Finished child tasks, and how many of them `group.next()` returned.
    let completions = CompletionCounter()
    var consumed = 0

    init(executor: Executor, selected: [Bool], reporter: some ProgressReporter) {
        self.executor = executor
        graph = executor.graph
        plan = executor.graph.plan
        self.selected = selected
        self.reporter = reporter
        reports = plan.subtasks.map { SubtaskReport(id: $0.id, agent: $0.agent) }
        remaining = graph.dependencies.map(\.count)
        digests = [String?](repeating: nil, count: graph.count)
        cacheKeys = [ActionKey?](repeating: nil, count: graph.count)
        total = selected.count { $0 }
        weight = Self.criticalPaths(graph: graph, selected: selected, durations: executor.expectedDurations)
        var bases: [String: SpawnEnvironment] = [:]
        for node in 0..<graph.count where selected[node] {
            let subtask = plan.subtasks[node]
            if bases[subtask.agent] == nil {
                bases[subtask.agent] = Self.baseEnvironment(executor.configuration.environment, plan,
                                                            plan.agent(for: subtask))
            }
        }
        baseEnvironments = bases
    }

    /// Each subtask's duration plus the longest chain of dependents after
    /// it, using recorded durations (their mean where one is missing).
    static func criticalPaths(graph: TaskGraph, selected: [Bool], durations: [String: Double]) -> [Double] {
        var weight = [Double](repeating: 0, count: graph.count)
        guard !durations.isEmpty else { return weight }
        let mean = durations.values.reduce(0, +) / Double(durations.count)
        for node in graph.topologicalOrder().reversed() where selected[node] {
            let own = durations[graph.id(node)] ?? mean
            weight[node] = own + (graph.dependents[node].filter { selected[$0] }.map { weight[$0] }.max() ?? 0)
        }
        return weight
    }

    var cachedCount = 0
    var failedCount = 0

    var progress: RunProgress {
        RunProgress(total: total, finished: finished, cached: cachedCount, failed: failedCount,
                    running: runningIDs)
    }

    mutating func run() async -> RunSummary {
        let store = executor.store
        let runID = executor.runID
        store?.deferWrites()
        reporter.report(.runStarted(runID: runID, total: total), progress: progress)

        // Subtasks without (selected) dependencies are ready first, in plan order.
        undecided.append((0..<graph.count).filter { selected[$0] && remaining[$0] == 0 })

        await withTaskGroup(of: AttemptDone.self) { group in
            while true {
                checkCancellation()
                await decidePending(group: &group)
                checkCancellation()
                if !stopping {
                    for launch in nextLaunches() { startAttempt(launch, in: &group) }
                }
                flushState(group: &group)
                if running.isEmpty {
                    // Deciding stopped only for a finished tick: go on.
                    if !undecided.isEmpty { continue }
                    break
                }
                reporter.flush()
                guard let done = await group.next() else { break }
                consumed += 1
                if done.node == Self.flushTick {
                    flushTickPending = false
                    continue
                }
                checkCancellation()
                // Start the next child before recording this one (ninja
                // keeps its slots busy the same way): a success that makes
                // nothing newly ready leaves the choice unchanged.
                var early: [Launch] = []
                let relaunch = canRelaunchEarly(done)
                if relaunch {
                    freeSlot(done.node)
                    early = chooseLaunches()
                    for launch in early { startAttempt(launch, in: &group) }
                }
                let retry = await handle(done, slotFreed: relaunch)
                announce(early)
                if let retry {
                    let runner = executor.runner
                    let completions = completions
                    group.addTask {
                        defer { completions.increment() }
                        do { try await Task.sleep(for: retry.delay) } catch {
                            return AttemptDone(node: retry.node, attempt: retry.request.attempt,
                                               outcome: AttemptOutcome(status: .cancelled, error: "cancelled",
                                                                       startedAt: Date(), completedAt: Date()))
                        }
                        let outcome = await runner.run(retry.request)
                        return AttemptDone(node: retry.node, attempt: retry.request.attempt, outcome: outcome)
                    }
                }
            }
            group.cancelAll() // a pending flush tick; nothing else is left
        }

        // Whatever never started.
        let now = Date()
        var leftovers: [(id: String, status: String, error: String?)] = []
        for node in 0..<graph.count where selected[node] && reports[node].status == .pending {
            let status: SubtaskStatus = cancelled ? .cancelled : .blocked
            let error = cancelled
                ? "not started: the run was cancelled"
                : writeFailure.map { "not started: \($0)" }
                ?? "not started: the build stopped after \(firstFailure.map { "`\($0)`" } ?? "a subtask") failed (use --keep-going to continue independent work)"
            reports[node].status = status
            reports[node].error = error
            reports[node].completedAt = now
            finished += 1
            leftovers.append((reports[node].id, status.rawValue, error))
            reporter.report(.skipped(reports[node]), progress: progress)
        }
        recordState { try $0.subtasksEnded(runID: runID, leftovers, at: now) }
        // Uploads finish and the cache's own records are written before
        // the run's end is: a cache write that fails fails the run.
        do { try await executor.cache.finishBuild() } catch {
            noteWriteFailure(error is CacheError ? "\(error)" : "cannot write the cache: \(error)")
        }

        // Everything before the run's end is committed first, so a write
        // that failed in the background is known before the end is written.
        recordState { try $0.flush() }

        let chosen = reports.indices.filter { selected[$0] }.map { reports[$0] }
        func verdict() -> (RunStatus, String?) {
            if cancelled { return (.cancelled, cancelReason) }
            if let writeFailure { return (.failed, writeFailure) }
            return (chosen.contains { !$0.status.isSuccess } ? .failed : .completed, nil)
        }
        var (status, reason) = verdict()
        let completedAt = Date()
        recordState { try $0.finishRun(id: runID, status: status.rawValue, reason: reason, at: completedAt) }
        recordState { try $0.flush() }
        // When the end could not be recorded, the next build finds the run
        // unfinished and closes it; this one says why it failed.
        (status, reason) = verdict()
        let summary = RunSummary(plan: plan.name, runID: runID, status: status, reason: reason, reports: chosen,
                                 startedAt: startedAt, completedAt: completedAt)
        reporter.report(.runFinished(summary), progress: progress)
        reporter.flush()
        return summary
    }

    /// Starts a first attempt: a process starts here, on the loop's thread,
    /// when the runner can (`CommandRunner.start`), and the child task only
    /// waits for it; otherwise the child task runs the attempt.
    /// (`mutating` only so that the call from `run`'s task-group closure
    /// borrows the loop instead of copying it.)
    mutating func startAttempt(_ launch: Launch, in group: inout TaskGroup<AttemptDone>) {
        let runner = executor.runner
        let completions = completions
        if let started = runner.start(launch.request) {
            group.addTask {
                defer { completions.increment() }
                return AttemptDone(node: launch.node, attempt: launch.request.attempt, outcome: await started.wait())
            }
            return
        }
        group.addTask {
            defer { completions.increment() }
            let outcome = await runner.run(launch.request)
            return AttemptDone(node: launch.node, attempt: launch.request.attempt, outcome: outcome)
        }
    }

    /// The `node` of the child that only wakes the loop to flush the state.
    static let flushTick = -1
    /// At most one state transaction per this interval while subtasks run.
    static let flushInterval: Duration = .milliseconds(100)

    /// Commits queued state rows: at once when nothing runs or the last
    /// commit is `flushInterval` old, else after the rest of the interval
    /// (a tick child wakes the loop), so a build of many short subtasks
    /// makes a few transactions a second rather than one per event. The
    /// commit runs on the database's queue (`flushInBackground`); the run
    /// ends with a `flush` that waits for it.
    mutating func flushState(group: inout TaskGroup<AttemptDone>) {
        guard let store = executor.store, store.hasPendingWrites else { return }
        let now = ContinuousClock.now
        if running.isEmpty || now - lastFlush >= Self.flushInterval {
            store.flushInBackground()
            executor.cache.commitPendingWrites()
            lastFlush = now
            if let failure = store.backgroundWriteFailure { noteWriteFailure("cannot write the state database: \(failure)") }
        } else if !flushTickPending {
            flushTickPending = true
            let delay = lastFlush + Self.flushInterval - now
            let completions = completions
            group.addTask {
                defer { completions.increment() }
                try? await Task.sleep(for: delay)
                return AttemptDone(node: Self.flushTick, attempt: 0,
                                   outcome: AttemptOutcome(status: .cancelled, startedAt: Date(), completedAt: Date()))
            }
        }
    }

    mutating func checkCancellation() {
        guard Task.isCancelled, !cancelled else { return }
        cancelled = true
        stopping = true
        let requested = try? executor.store?.cancelRequest(runID: executor.runID)
        cancelReason = requested ?? executor.canceller.reason ?? "cancelled"
    }

    /// Asks the cache about each newly ready subtask (`undecided`, in
    /// rounds: subtasks that became ready together); up-to-date ones finish
    /// at once, and the dependents they release form a later round; the
    /// others join the ready queues. After each round whatever fits starts
    /// (best first: critical path, then plan order), so a long run of
    /// up-to-date subtasks does not hold back the first process. Every
    /// `Executor.decisionSlice` decisions it yields (the process monitor then looks
    /// at its children) and returns when an attempt finished, to be handled
    /// before the rest is decided.
    mutating func decidePending(group: inout TaskGroup<AttemptDone>) async {
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
                // Cancelled (Ctrl-C during thousands of verdicts): the loop
                // records it; what is not decided stays pending.
                if Task.isCancelled { return }
                if !running.isEmpty, index < round.count || !next.isEmpty || !undecided.isEmpty {
                    reporter.flush()
                    await Task.yield()
                    if completions.value > consumed {
                        if index < round.count { undecided.prepend(Array(round[index...])) }
                        return
                    }
                }
            }
            if !stopping, running.count < executor.configuration.jobs {
                for launch in nextLaunches() { startAttempt(launch, in: &group) }
            }
        }
    }

    /// One subtask's verdict: up to date (finished now; `released` gets the
    /// dependents that became ready) or to run (queued).
    mutating func decide(_ node: Int, releasing released: inout [Int]) async {
        let subtask = plan.subtasks[node]
        let depDigests = KeyWalk.dependencyDigests(of: node, in: graph, missing: "") { digests[$0] } ?? [:]
        do {
            switch try await executor.cache.decide(subtask, dependencyDigests: depDigests, forced: executor.configuration.forced) {
            case .upToDate(let cached):
                let now = Date()
                reports[node].status = .cached
                cachedCount += 1
                reports[node].result = cached.result
                reports[node].reason = cached.reason
                reports[node].startedAt = now
                reports[node].completedAt = now
                digests[node] = cached.resultDigest
                cacheKeys[node] = cached.key
                finished += 1
                let runID = executor.runID
                recordState {
                    try $0.subtaskFinished(
                        runID: runID, subtask: subtask.id, status: SubtaskStatus.cached.rawValue, attempts: 0,
                        startedAt: now, completedAt: now, error: nil, result: cached.result,
                        resultDigest: cached.resultDigest, cacheKey: cached.key.digest, reason: cached.reason.description)
                }
                reporter.report(.skipped(reports[node]), progress: progress)
                released.append(contentsOf: release(node))
            case .run(let reason, let key):
                reports[node].reason = reason
                cacheKeys[node] = key
                ready[subtask.agent, default: Heap()].insert(ReadyEntry(weight: weight[node], node: node))
            }
        } catch {
            fail(node, "cannot check the cache: \(error)", attempts: 0)
        }
    }

    /// Dependents of `node` whose last dependency just finished.
    mutating func release(_ node: Int) -> [Int] {
        var out: [Int] = []
        for dependent in graph.dependents[node] where selected[dependent] {
            remaining[dependent] -= 1
            if remaining[dependent] == 0 { out.append(dependent) }
        }
        return out
    }

    /// Ready subtasks that fit in free slots, plan order first.
    mutating func nextLaunches() -> [Launch] {
        let launches = chooseLaunches()
        announce(launches)
        return launches
    }

    /// Takes ready subtasks that fit in free slots (plan order first) and
    /// marks them running, without reporting them yet (`announce`).
    mutating func chooseLaunches() -> [Launch] {
        var launches: [Launch] = []
        while running.count < executor.configuration.jobs {
            guard let choice = bestReady() else { break }
            let best = (agent: choice.agent, node: choice.entry.node)
            _ = ready[best.agent]!.popMin()
            running.append(best.node)
            runningIDs.append(plan.subtasks[best.node].id)
            runningPerAgent[best.agent, default: 0] += 1
            reports[best.node].status = .running
            reports[best.node].startedAt = Date()
            reports[best.node].attempts = 1
            launches.append(Launch(node: best.node, request: makeRequest(best.node, attempt: 1), delay: .zero))
        }
        return launches
    }

    /// Records and reports the start of first attempts chosen by `chooseLaunches`.
    mutating func announce(_ launches: [Launch]) {
        for launch in launches {
            let id = plan.subtasks[launch.node].id
            let runID = executor.runID, startedAt = reports[launch.node].startedAt ?? Date()
            let reason = reports[launch.node].reason?.description
            recordState { try $0.attemptStarted(runID: runID, subtask: id, attempt: 1, at: startedAt, reason: reason) }
            reporter.report(.started(id: id), progress: progress)
        }
    }

    /// Whether the slot of a finished attempt can be given to the next
    /// ready subtask before the attempt is recorded, with the same choice
    /// as afterwards: it succeeded (no retry, no fail-fast stop), and each
    /// dependent it makes ready ranks below the subtask that would start
    /// (so that, had it been decided first, it would not have been chosen
    /// instead). A rebuild whose finished subtasks make dependents ready
    /// one after another no longer leaves the slot empty while the cache
    /// records each result.
    /// (`mutating` only to avoid a copy of the loop, as `startAttempt`.)
    mutating func canRelaunchEarly(_ done: AttemptDone) -> Bool {
        guard !stopping, done.outcome.status == .succeeded, done.node != Self.flushTick else { return false }
        var choice: ReadyEntry??  // computed once, when a dependent becomes ready
        for dependent in graph.dependents[done.node] where selected[dependent] && remaining[dependent] == 1 {
            if choice == nil { choice = nextChoice(afterFreeing: done.node) }
            // Nothing to start, or this dependent (if it must run) would
            // outrank what starts now: record first, then choose.
            guard let best = choice!, !(ReadyEntry(weight: weight[dependent], node: dependent) < best) else {
                return false
            }
        }
        return true
    }

    /// What `chooseLaunches` would start first once `node`'s slot is free
    /// (nil: nothing).
    func nextChoice(afterFreeing node: Int) -> ReadyEntry? {
        guard running.count - 1 < executor.configuration.jobs else { return nil }
        return bestReady(freeing: plan.subtasks[node].agent)?.entry
    }

    /// The best ready subtask whose agent has a free slot (one more for
    /// agent `freeing`, whose slot is about to be freed).
    func bestReady(freeing: String? = nil) -> (agent: String, entry: ReadyEntry)? {
        var choice: (agent: String, entry: ReadyEntry)?
        for (agent, heap) in ready {
            guard let top = heap.min else { continue }
            let used = runningPerAgent[agent, default: 0] - (agent == freeing ? 1 : 0)
            if let limit = plan.agents[agent]?.maxParallel, used >= limit { continue }
            if choice == nil || top < choice!.entry { choice = (agent, top) }
        }
        return choice
    }

    /// Frees the slot of a subtask whose attempts are over.
    mutating func freeSlot(_ node: Int) {
        if let i = running.firstIndex(of: node) {
            running.remove(at: i)
            runningIDs.remove(at: i)
        }
        runningPerAgent[plan.subtasks[node].agent, default: 1] -= 1
    }

    /// Records an attempt; returns the next attempt when it is to be retried.
    /// `slotFreed`: its slot was already given to another subtask
    /// (`canRelaunchEarly`).
    mutating func handle(_ done: AttemptDone, slotFreed: Bool = false) async -> Launch? {
        let node = done.node
        releaseContextFile(node)
        let subtask = plan.subtasks[node]
        let outcome = done.outcome
        let runID = executor.runID

        var resultDigest: String?
        var status = outcome.status
        var error = outcome.error
        if status == .succeeded {
            do {
                resultDigest = try await executor.cache.record(subtask, key: cacheKeys[node], result: outcome.result)
            } catch let recordError {
                status = .failed
                error = "cannot record the result: \(recordError)"
            }
        }
        let (attemptStatus, attemptError, key) = (status, error, cacheKeys[node]?.digest)
        recordState {
            try $0.attemptFinished(
                runID: runID, subtask: subtask.id, attempt: done.attempt, status: attemptStatus.rawValue,
                startedAt: outcome.startedAt, completedAt: outcome.completedAt, exitCode: outcome.exitCode,
                error: attemptError, result: attemptStatus == .succeeded ? outcome.result : nil,
                resultDigest: resultDigest, cacheKey: key)
        }
        reports[node].output = outcome.output
        reports[node].attempts = done.attempt

        // Retry a failed or timed-out attempt while attempts remain.
        let retries = plan.retries(for: subtask)
        if (status == .failed || status == .timedOut), outcome.retryable, done.attempt <= retries, !cancelled, !Task.isCancelled {
            let delay = executor.configuration.retryDelay(backoff: plan.retryBackoff(for: subtask), afterAttempt: done.attempt)
            let next = done.attempt + 1
            reports[node].attempts = next
            recordState {
                try $0.attemptStarted(runID: runID, subtask: subtask.id, attempt: next,
                                      at: Date().addingTimeInterval(delay.inSeconds), reason: nil)
            }
            reporter.report(.retrying(id: subtask.id, attempt: done.attempt, error: error ?? "failed", delay: delay),
                            progress: progress)
            return Launch(node: node, request: makeRequest(node, attempt: next), delay: delay)
        }

        // Final outcome for this subtask: free its slot.
        if !slotFreed { freeSlot(node) }
        finished += 1
        reports[node].completedAt = outcome.completedAt
        reports[node].error = error
        switch status {
        case .succeeded:
            reports[node].status = .done
            reports[node].result = outcome.result
            digests[node] = resultDigest
        case .cancelled:
            reports[node].status = .cancelled
        case .failed, .timedOut:
            reports[node].status = .failed
            failedCount += 1
        }
        let report = reports[node]
        recordState {
            try $0.subtaskFinished(
                runID: runID, subtask: subtask.id, status: report.status.rawValue, attempts: done.attempt,
                startedAt: report.startedAt, completedAt: outcome.completedAt, error: attemptError,
                result: attemptStatus == .succeeded ? outcome.result : nil, resultDigest: resultDigest,
                cacheKey: key, reason: nil)
        }
        reporter.report(.finished(reports[node]), progress: progress)

        switch reports[node].status {
        case .done:
            // Ahead of any backlog: they are on the path this attempt was on.
            let released = release(node)
            if !released.isEmpty { undecided.prepend(released) }
        case .failed:
            afterFailure(node)
        default:
            break
        }
        return nil
    }

    /// Every state write of the loop goes through here: the first that
    /// fails is kept (`writeFailure`) and stops new work; none is ignored.
    mutating func recordState(_ write: (StateStore) throws -> Void) {
        guard let store = executor.store else { return }
        do { try write(store) } catch { noteWriteFailure("cannot write the state database: \(error)") }
    }

    mutating func noteWriteFailure(_ message: String) {
        guard writeFailure == nil else { return }
        writeFailure = message
        stopping = true
    }

    /// A subtask failed without running (cache error): report it like a failure.
    mutating func fail(_ node: Int, _ message: String, attempts: Int) {
        let now = Date()
        reports[node].status = .failed
        failedCount += 1
        reports[node].error = message
        reports[node].attempts = attempts
        reports[node].startedAt = reports[node].startedAt ?? now
        reports[node].completedAt = now
        finished += 1
        let runID = executor.runID, id = plan.subtasks[node].id
        recordState {
            try $0.subtaskFinished(
                runID: runID, subtask: id, status: SubtaskStatus.failed.rawValue,
                attempts: attempts, startedAt: now, completedAt: now, error: message, result: nil,
                resultDigest: nil, cacheKey: nil, reason: nil)
        }
        reporter.report(.skipped(reports[node]), progress: progress)
        afterFailure(node)
    }

    /// Blocks every (transitive) dependent of a failed subtask and, without
    /// `--keep-going`, stops starting new work.
    mutating func afterFailure(_ node: Int) {
        let failedID = plan.subtasks[node].id
        if firstFailure == nil { firstFailure = failedID }
        if !executor.configuration.keepGoing { stopping = true }
        var blocked: [(id: String, status: String, error: String?)] = []
        var work = graph.dependents[node]
        let now = Date()
        while let dependent = work.popLast() {
            guard selected[dependent], reports[dependent].status == .pending else { continue }
            let message = "dependency `\(failedID)` failed"
            reports[dependent].status = .blocked
            reports[dependent].error = message
            reports[dependent].completedAt = now
            finished += 1
            blocked.append((reports[dependent].id, SubtaskStatus.blocked.rawValue, message))
            work.append(contentsOf: graph.dependents[dependent])
        }
        let runID = executor.runID
        recordState { try $0.subtasksEnded(runID: runID, blocked, at: now) }
        for entry in blocked {
            if let i = plan.index[entry.id] { reporter.report(.skipped(reports[i]), progress: progress) }
        }
    }

    /// The request for one attempt: environment and context of DESIGN §4.
    /// The caller's, plan's and agent's variables come prebuilt per agent
    /// (`baseEnvironments`); only the subtask's `env` and `PLANRUN_*` are
    /// added per attempt.
    mutating func makeRequest(_ node: Int, attempt: Int) -> AttemptRequest {
        let subtask = plan.subtasks[node]
        let agent = plan.agent(for: subtask)
        var environment = subtask.env
        environment.reserveCapacity(subtask.env.count + 6) // no regrowth for PLANRUN_*
        environment["PLANRUN_PLAN"] = plan.name
        environment["PLANRUN_SUBTASK"] = subtask.id
        environment["PLANRUN_RUN_ID"] = executor.runID
        environment["PLANRUN_ATTEMPT"] = String(attempt)
        var contextPath: String?, resultPath: String?, logPath: String?
        if let dir = executor.logDirectory {
            logPath = Self.join(dir, subtask.id) + ".log"
        }
        if let dir = executor.workDirectory {
            contextPath = contextFile(for: node, in: dir)
            resultPath = Self.join(dir, subtask.id) + ".result"
        } else if let dir = executor.logDirectory {
            let base = Self.join(dir, subtask.id)
            contextPath = base + ".context.json"
            resultPath = base + ".result"
        }
        if let contextPath, let resultPath {
            environment["PLANRUN_CONTEXT"] = contextPath
            environment["PLANRUN_RESULT"] = resultPath
        }
        var dependencies: [SubtaskContext.Dependency] = []
        for dep in graph.dependencies[node] {
            let report = reports[dep]
            dependencies.append(SubtaskContext.Dependency(
                id: report.id, description: plan.subtasks[dep].description, agent: report.agent,
                status: report.status.rawValue, result: report.resultText))
        }
        let context = SubtaskContext(
            subtaskID: subtask.id, plan: plan.name, planGoal: plan.goal, description: subtask.description,
            dependencies: dependencies, metadata: subtask.with ?? .object([:]), attempt: attempt,
            runID: executor.runID)
        let base = baseEnvironments[subtask.agent] ?? Self.baseEnvironment(executor.configuration.environment, plan, agent)
        return AttemptRequest(
            subtask: subtask, agent: agent, attempt: attempt, runID: executor.runID,
            workingDirectory: plan.directory, baseEnvironment: base, environment: environment,
            context: context, contextPath: contextPath, resultPath: resultPath, logPath: logPath,
            timeout: plan.timeout(for: subtask),
            resultFileIsAbsent: attempt == 1 && executor.workDirectoryIsNew && executor.workDirectory != nil)
    }

    /// The caller's environment with the plan's and the agent's `env` (later wins).
    static func baseEnvironment(_ caller: [String: String], _ plan: Plan, _ agent: AgentDefinition) -> SpawnEnvironment {
        var environment = caller
        environment.merge(plan.env) { _, new in new }
        environment.merge(agent.env) { _, new in new }
        return SpawnEnvironment(environment)
    }

    /// The context file for an attempt of `node` in the run's work folder.
    /// The files of attempts that are over are written again (`context-N.json`,
    /// as many as attempts run at once): creating and then removing a file
    /// per subtask, even in memory (/dev/shm), cost a few percent of a
    /// build of short subtasks.
    mutating func contextFile(for node: Int, in dir: String) -> String {
        let path: String
        if let free = freeContextFiles.popLast() {
            path = free
        } else {
            path = Self.join(dir, "context-\(contextFileCount).json")
            contextFileCount += 1
        }
        contextFileOf[node] = path
        return path
    }

    /// The attempt of `node` is over: its context file can serve another.
    mutating func releaseContextFile(_ node: Int) {
        if let path = contextFileOf.removeValue(forKey: node) { freeContextFiles.append(path) }
    }

    /// `dir/name` (no Foundation path bridging on this per-subtask path).
    static func join(_ dir: String, _ name: String) -> String {
        dir.hasSuffix("/") ? dir + name : dir + "/" + name
    }

}

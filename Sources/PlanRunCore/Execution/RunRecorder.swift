import Foundation

/// Every state write of one run's loop goes through here, in the order the
/// events happen: the run's rows and the cache's history entries (the ones
/// `BuildCache.decide` and `record` return). None is ignored: the first
/// write that fails is kept (`failure`); the loop then starts nothing new
/// and the run ends `failed` with it. Without a store or history (tests)
/// nothing is written there.
///
/// Rows are queued (`StateStore.deferWrites`; a write-behind history
/// queues its own) and committed at most every `commitInterval` while
/// subtasks run, at once when nothing runs, and at the end of the run: run
/// rows in one transaction, history rows in one more. The commits run on
/// the database's queue, so the loop never waits for one.
struct RunRecorder {
    /// At most one state transaction per this interval while subtasks run.
    static let commitInterval: Duration = .milliseconds(100)

    let store: StateStore?
    /// The cache's history (`BuildCache.historyStore`).
    let history: (any SubtaskHistory)?
    let runID: String
    /// The first write that failed, as the run's reason.
    private(set) var failure: String?
    private var lastCommit = ContinuousClock.now

    init(store: StateStore?, history: (any SubtaskHistory)?, runID: String) {
        self.store = store
        self.history = history
        self.runID = runID
        store?.deferWrites()
    }

    /// What `commitIfDue` did.
    enum Commit {
        /// Nothing was queued.
        case none
        /// The queued rows went to the database's queue.
        case started
        /// Rows are queued; the next commit is due after this long.
        case due(after: Duration)
    }

    /// Commits the queued rows when nothing runs (`idle`) or the last
    /// commit is `commitInterval` old.
    mutating func commitIfDue(idle: Bool) -> Commit {
        guard let store, store.hasPendingWrites else { return .none }
        let now = ContinuousClock.now
        guard idle || now - lastCommit >= Self.commitInterval else {
            return .due(after: lastCommit + Self.commitInterval - now)
        }
        store.flushInBackground()
        history?.commitQueued()
        lastCommit = now
        if let background = store.backgroundWriteFailure { noteFailure("cannot write the state database: \(background)") }
        return .started
    }

    /// Keeps `message` as the run's failure unless one came first.
    mutating func noteFailure(_ message: String) {
        if failure == nil { failure = message }
    }

    private mutating func write(_ body: (StateStore) throws -> Void) {
        guard let store else { return }
        do { try body(store) } catch { noteFailure("cannot write the state database: \(error)") }
    }

    /// `id`'s new last successful state (a run recorded, a restore).
    mutating func historySaved(_ entry: HistoryEntry, for id: String) {
        guard let history else { return }
        do { try history.save(entry, for: id) } catch { noteFailure("\(CacheError.stateWrite(reason: "\(error)"))") }
    }

    mutating func attemptStarted(_ id: String, attempt: Int, at time: Date, reason: String?) {
        let runID = runID
        write { try $0.attemptStarted(runID: runID, subtask: id, attempt: attempt, at: time, reason: reason) }
    }

    mutating func attemptFinished(_ id: String, attempt: Int, status: AttemptOutcome.Status, outcome: AttemptOutcome,
                                  error: String?, resultDigest: String?, cacheKey: String?) {
        let runID = runID
        write {
            try $0.attemptFinished(
                runID: runID, subtask: id, attempt: attempt, status: status.rawValue,
                startedAt: outcome.startedAt, completedAt: outcome.completedAt, exitCode: outcome.exitCode,
                error: error, result: status == .succeeded ? outcome.result : nil,
                resultDigest: resultDigest, cacheKey: cacheKey)
        }
    }

    /// A subtask's final row: `report` as it ended, with the result digest
    /// and the cache key it ran (or was skipped) under.
    mutating func subtaskFinished(_ report: SubtaskReport, resultDigest: String?, cacheKey: String?, reason: String?) {
        let runID = runID
        let succeeded = report.status.isSuccess
        write {
            try $0.subtaskFinished(
                runID: runID, subtask: report.id, status: report.status.rawValue, attempts: report.attempts,
                startedAt: report.startedAt, completedAt: report.completedAt ?? Date(), error: report.error,
                result: succeeded ? report.result : nil, resultDigest: resultDigest, cacheKey: cacheKey,
                reason: reason)
        }
    }

    /// Subtasks that end without running (blocked, cancelled), in one write.
    mutating func subtasksEnded(_ reports: [SubtaskReport], at time: Date) {
        guard !reports.isEmpty else { return }
        let runID = runID
        let entries = reports.map { (id: $0.id, status: $0.status.rawValue, error: $0.error) }
        write { try $0.subtasksEnded(runID: runID, entries, at: time) }
    }

    /// Commits everything queued and waits for it, so that a background
    /// commit that failed is known (`failure`) before the run's end is
    /// written.
    mutating func commitNow() {
        if let history {
            do { try history.waitForWrites() } catch {
                noteFailure("\((error as? CacheError) ?? .stateWrite(reason: "\(error)"))")
            }
        }
        write { try $0.flush() }
    }

    /// Writes the run's end and commits it.
    mutating func runFinished(status: RunStatus, reason: String?, at time: Date) {
        let runID = runID
        write { try $0.finishRun(id: runID, status: status.rawValue, reason: reason, at: time) }
        write { try $0.flush() }
    }

    /// The reason `planrun cancel` left for this run, if any. A read: when
    /// it fails, the caller's own reason stands.
    func cancelRequest() -> String? {
        try? store?.cancelRequest(runID: runID)
    }
}

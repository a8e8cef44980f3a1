/// The seam between the scheduler (Execution) and caching (Caching).
///
/// The executor's loop calls `decide` for each subtask once its dependencies
/// are done, and `record` after a successful, complete attempt. Failed,
/// timed-out, cancelled or killed attempts are never recorded.
///
/// The cache writes no state rows while the loop runs: a decision that
/// restored and a record return the history entry to write, and the loop's
/// `RunRecorder` writes it to `historyStore` with the run's other rows.
package protocol BuildCache: Sendable {
    /// Whether `subtask` must run. `dependencyDigests` maps each dependency
    /// id to its result digest (result content plus output files) from this
    /// run, whether the dependency ran or was cached. The cache applies its
    /// own `Force` (made once from the command line).
    func decide(_ subtask: Subtask, dependencyDigests: [String: String]) async throws -> CacheDecision

    /// Records a successful attempt: stores outputs and result under `key`
    /// and returns the subtask's result digest with the history entry to
    /// write. `key` is the one `decide` returned (nil when caching is
    /// disabled for the subtask).
    func record(_ subtask: Subtask, key: ActionKey?, result: [UInt8]) async throws -> CacheRecord

    /// Called once before the first `decide` of a build with the subtasks it
    /// will run: a chance to fetch ahead, or to refuse the build (thrown
    /// errors stop it before anything runs). Default: nothing.
    func prepare(graph: TaskGraph, selected: [Bool]) async throws

    /// Called once when the build is over, before its end is recorded
    /// (background uploads finish, the stat cache is written); a write
    /// that fails is thrown and fails the build. Default: nothing.
    func finishBuild() async throws

    /// Problems met along the build that did not stop it, to report once it
    /// is over; each is returned once. Default: none.
    func takeWarnings() -> [String]

    /// Where the loop's recorder writes the history entries that decisions
    /// and records return; nil when there is none to keep. Default: nil.
    var historyStore: (any SubtaskHistory)? { get }
}

extension BuildCache {
    package func prepare(graph: TaskGraph, selected: [Bool]) async throws {}
    package func finishBuild() async throws {}
    package func takeWarnings() -> [String] { [] }
    package var historyStore: (any SubtaskHistory)? { nil }
}

/// What `BuildCache.record` made of a successful attempt.
package struct CacheRecord: Sendable, Hashable {
    /// What dependents' keys see (`ContentCache.resultDigest`).
    package var resultDigest: String
    /// The subtask's new last successful state, for the recorder to write;
    /// nil when nothing is to be recorded (not cacheable, inputs changed
    /// while it ran, a read-only cache).
    package var history: HistoryEntry?

    package init(resultDigest: String, history: HistoryEntry? = nil) {
        self.resultDigest = resultDigest
        self.history = history
    }
}

/// What the cache says about a subtask that is ready.
package enum CacheDecision: Sendable {
    /// Skip it: its recorded result stands (reason `.cached` or `.restored`).
    case upToDate(CachedOutcome)
    /// Run it, and why. `key` is nil when the subtask is not cacheable.
    case run(reason: RunReason, key: ActionKey?)
}

/// A subtask result taken from history or the cache store instead of running.
package struct CachedOutcome: Sendable, Hashable {
    package var key: ActionKey
    package var resultDigest: String
    /// The result text given to dependents and shown in summaries.
    package var result: [UInt8]
    /// `.cached` (outputs intact) or `.restored` (outputs put back from the store).
    package var reason: RunReason
    /// The history entry the recorder writes for a restore; nil when the
    /// history already holds it.
    package var history: HistoryEntry?

    package init(key: ActionKey, resultDigest: String, result: [UInt8], reason: RunReason, history: HistoryEntry? = nil) {
        self.key = key
        self.resultDigest = resultDigest
        self.result = result
        self.reason = reason
        self.history = history
    }
}

/// A cache that never skips: every subtask runs ("never ran", or "forced" /
/// "cache disabled"). Result digests are SHA-256 of the result bytes.
package struct NoBuildCache: BuildCache {
    package let force: Force

    package init(force: Force = .none) { self.force = force }

    package func decide(_ subtask: Subtask, dependencyDigests: [String: String]) async throws -> CacheDecision {
        if force.covers(subtask.id) { return .run(reason: .forced, key: nil) }
        return .run(reason: subtask.cache ? .neverRan : .cacheDisabled, key: nil)
    }

    package func record(_ subtask: Subtask, key: ActionKey?, result: [UInt8]) async throws -> CacheRecord {
        CacheRecord(resultDigest: Digest.sha256Hex(result))
    }
}

/// Where action results are found: `ac/KEY` entries, each checked for the
/// subtask it is for before anything uses it. Two implementations: the
/// local store in the state folder (`LocalCacheStore`) and a remote speaking
/// Bazel's HTTP cache protocol (`RemoteCacheStore`). A build reads them
/// through `RestoreSource`s, the local one first (`ContentCache.restore`).
package protocol ActionStore: Sendable {
    /// The entry for `key`, checked for `subtask`: well formed, and naming
    /// exactly the subtask's declared outputs at paths inside its folder.
    func action(for key: String, subtask: Subtask) async -> ActionStoreAnswer
}

/// What an `ActionStore` has for a key.
package enum ActionStoreAnswer: Sendable, Equatable {
    case found(ActionResult)
    /// No entry (or the store cannot be reached): the subtask runs.
    case absent
    /// An entry that must not be used; the subtask runs and `warning` is
    /// reported once the build is over.
    case refused(warning: String)
}

/// An `ActionStore` a decision can restore from: `ContentCache` asks its
/// sources in order (the local store's `Restorer`, then the remote's
/// `RemoteRestorer`) and restores from the first whose entry is usable.
package protocol RestoreSource: ActionStore {
    /// Puts back the outputs of `action` (this store's entry for `key`)
    /// that are not as it records them, and returns what to record; nil
    /// when it cannot (the subtask runs; a warning says why where it is
    /// worth knowing). Writes no history: the caller records the restore.
    func restore(_ action: ActionResult, of subtask: Subtask, key: ActionKey) async throws(CacheError) -> RestoredAction?
}

/// A subtask a `RestoreSource` put back: the history entry to record and
/// the outcome the decision returns.
package struct RestoredAction: Sendable {
    package var entry: HistoryEntry
    package var outcome: CachedOutcome
}

extension LocalCacheStore: ActionStore {
    package func action(for key: String, subtask: Subtask) async -> ActionStoreAnswer {
        checkedAction(for: key, subtask: subtask)
    }

    /// `action(for:subtask:)` without suspension (the local restore runs
    /// inside synchronous decisions).
    package func checkedAction(for key: String, subtask: Subtask) -> ActionStoreAnswer {
        let action: ActionResult
        switch lookupAction(key) {
        case .found(let found): action = found
        case .absent: return .absent
        case .refused(let reason): return .refused(warning: "\(reason); running `\(subtask.id)`")
        }
        let declared = Set(subtask.outputs.map(PathSafety.normalized))
        let named = action.outputs.map { PathSafety.normalized($0.path) }
        guard Set(named) == declared, named.count == declared.count,
              action.outputs.allSatisfy({ PathSafety.isSafeRelative($0.path) })
        else {
            return .refused(warning: "cache entry for `\(subtask.id)` names paths the subtask does not declare; ignoring it")
        }
        return .found(action)
    }
}

extension RemoteCacheStore: ActionStore {
    /// A failed request or a remote that is off reads as `absent`.
    package func action(for key: String, subtask: Subtask) async -> ActionStoreAnswer {
        let bytes: [UInt8]
        switch await action(key) {
        case .hit(let found): bytes = found
        case .refused(let reason): return .refused(warning: "remote cache entry for `\(subtask.id)` refused: \(reason); running it")
        case .miss, .unavailable: return .absent
        }
        switch RemoteCacheStore.validateAction(bytes, for: subtask) {
        case .success(let action): return .found(action)
        case .failure(let refusal):
            return .refused(warning: "remote cache entry for `\(subtask.id)` refused: \(refusal); running it")
        }
    }
}

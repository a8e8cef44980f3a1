import Foundation
import GRDB

/// The cache's part of the state database: the history and the stat
/// records, read ahead by `load` (a build prepares it on another thread
/// while the plan is read; see `BuildPreparation`).
package struct CacheState: Sendable {
    package let history: DatabaseSubtaskHistory
    package let digests: any DigestStore

    /// Reads both from `database` now; history saves are written behind
    /// when `writeBehind` (see `DatabaseSubtaskHistory`).
    package static func load(from database: DatabaseQueue, writeBehind: Bool) throws -> CacheState {
        let history = DatabaseSubtaskHistory(reader: database, writer: database, writeBehind: writeBehind)
        try history.preload()
        let base = DatabaseDigestStore(reader: database, writer: database)
        return CacheState(history: history, digests: LoadedDigestStore(records: try base.loadAll(), base: base))
    }
}

extension ContentCache {
    /// The content cache of a plan whose state lives in `stateDirectory`
    /// (`.planrun` beside the plan unless `--state-dir`): history and stat
    /// cache in `state.db`, the store in `cache/`.
    ///
    /// A writable cache is opened by a build holding the build lock, so the
    /// temporary files a killed build left in `cache/tmp/`, beside outputs
    /// it was restoring (`removeLeftovers`) and in the state folder (the
    /// stamp's) are removed.
    ///
    /// Read-only (`explain`, `plan`, `status`): opens the database read-only
    /// and creates nothing; with no database yet, history is empty.
    ///
    /// `writeBehind`: history rows are committed in the background
    /// (`DatabaseSubtaskHistory`); a build's `RunRecorder` waits for them.
    /// `state`: history and stat records already read from this folder's
    /// database (a writable cache only; `writeBehind` is then the one it
    /// was loaded with).
    package static func open(
        plan: Plan, stateDirectory: String, callerEnvironment: [String: String],
        readOnly: Bool = false, force: Force = .none, writeBehind: Bool = false,
        state prepared: CacheState? = nil, statLog: StatLog? = nil,
        remote: RemoteCacheStore? = nil, onlyTargets: Set<String>? = nil
    ) throws(CacheError) -> ContentCache {
        let store = LocalCacheStore(root: (stateDirectory as NSString).appendingPathComponent("cache"), readOnly: readOnly)
        let history: any SubtaskHistory
        let digests: any DigestStore
        do {
            if readOnly {
                if let database = try openReadOnly(stateDirectory: stateDirectory) {
                    history = DatabaseSubtaskHistory(reader: database, writer: nil)
                    digests = DatabaseDigestStore(reader: database, writer: nil)
                } else {
                    history = InMemorySubtaskHistory()
                    digests = InMemoryDigestStore()
                }
            } else if let prepared {
                history = prepared.history
                digests = prepared.digests
            } else {
                let state = try StateStore(directory: stateDirectory)
                history = DatabaseSubtaskHistory(reader: state.database, writer: state.database, writeBehind: writeBehind)
                digests = DatabaseDigestStore(reader: state.database, writer: state.database)
            }
        } catch {
            throw .stateRead(reason: "\((stateDirectory as NSString).appendingPathComponent("state.db")): \(error)")
        }
        if !readOnly {
            store.removeLeftovers(planDirectory: plan.directory)
            // The up-to-date stamp is written through a temporary file too.
            LocalCacheStore.removeTemporaries(at: stateDirectory, followingLink: true)
        }
        return ContentCache(
            plan: plan, callerEnvironment: callerEnvironment, store: store, history: history,
            digests: digests, readOnly: readOnly, force: force, statLog: statLog, remote: remote, onlyTargets: onlyTargets)
    }

    /// Opens `state.db` for reading without creating or changing any file
    /// (`StateStore.openReadOnly`); nil when there is no history yet.
    package static func openReadOnly(stateDirectory: String) throws -> DatabaseQueue? {
        try StateStore.openReadOnly(directory: stateDirectory, requiredTable: "subtask_state")
    }

}

import Foundation
import Synchronization

/// The part of a build's set-up that needs only the state folder, done on
/// its own thread while the plan is read: the build lock, the state
/// database opened with the runs a killed build left closed and runs
/// beyond the newest `BuildSession.keptRuns` deleted (with their logs),
/// the recorded durations, and the cache's history and stat records
/// read. On two cores the other one is idle while the plan's YAML is
/// parsed, so this work does not delay the first subtask.
///
/// It starts only when the folder already has a database: a first build
/// has nothing to read, and creates the folder only once the plan proved
/// valid. When any step fails, `wait` returns nil and the build does each
/// step itself, reporting the error as usual (another build holding the
/// lock, a damaged database).
package final class BuildPreparation: Sendable {
    package let directory: String
    package let lock: BuildLock
    package let store: StateStore
    package let durations: [String: Double]
    package let cacheState: CacheState

    private init(directory: String, lock: BuildLock, store: StateStore, durations: [String: Double],
                 cacheState: CacheState) {
        self.directory = directory
        self.lock = lock
        self.store = store
        self.durations = durations
        self.cacheState = cacheState
    }

    /// A preparation under way.
    package final class Pending: Sendable {
        private let done = DispatchSemaphore(value: 0)
        private let result = Mutex<BuildPreparation?>(nil)

        fileprivate func finish(_ value: BuildPreparation?) {
            result.withLock { $0 = value }
            done.signal()
        }

        /// Waits for it; nil when it failed.
        package func wait() -> BuildPreparation? {
            done.wait()
            done.signal()  // later calls return at once
            return result.withLock { $0 }
        }
    }

    /// Starts preparing the state folder `directory` when it has a
    /// database; nil otherwise. `writeBehind`: how the cache's history
    /// saves (see `ContentCache.open`).
    package static func start(directory: String, writeBehind: Bool) -> Pending? {
        let database = (directory as NSString).appendingPathComponent("state.db")
        guard FileManager.default.fileExists(atPath: database) else { return nil }
        let pending = Pending()
        DispatchQueue.global(qos: .userInitiated).async {
            pending.finish(try? prepare(directory: directory, writeBehind: writeBehind))
        }
        return pending
    }

    private static func prepare(directory: String, writeBehind: Bool) throws -> BuildPreparation {
        let lock = try BuildLock.acquire(directory: directory)
        let store = try StateStore(directory: directory)
        try BuildSession.closeStaleRuns(store, stateDirectory: directory)
        try BuildSession.pruneRuns(store, stateDirectory: directory)
        let durations = try store.lastDurations()
        let cacheState = try CacheState.load(from: store.database, writeBehind: writeBehind)
        return BuildPreparation(directory: directory, lock: lock, store: store, durations: durations,
                                cacheState: cacheState)
    }
}

import Dispatch
import Synchronization

/// New `cas` blobs and `ac` entries written beside the build's loop:
/// `writeInBackground` queues a job and returns; one serial writer runs
/// the queue in order, a batch at a time. Creating files is the costliest
/// step of recording a subtask on ext4, and the loop's thread also
/// notices exits and spawns the next subtasks, so the store's writes for
/// a record happen off that thread (blobs first, then the entry), at a
/// lower priority than it (`writerQoS`).
///
/// Invariants:
/// - A reader of `ac/KEY` in this store (`lookupAction`) waits for the
///   queue first when a queued job writes that key, or a job that named
///   no key is queued (`waitForBackgroundWrites(entry:)`), so a build never
///   reads an entry it queued as absent or half written; a lookup of any
///   other key (a subtask deciding while others' entries are being
///   written) does not wait. `manifest` always waits: a manifest is read
///   and rewritten only after the entry it will lead to is written.
///   Blobs are read only through an entry that names them, so after it.
/// - Nothing depends on an entry being written by a given time: a history
///   row names its outputs and digests itself, so a build killed with
///   entries still queued only loses their restores (the entry reads as a
///   miss; a torn one does not parse and reads as a miss too: `writeEntry`).
/// - `ContentCache.finish` waits for the queue, so every entry of a build
///   that ends is written before the build reports its end.
///
/// Dispatch rather than an actor: the readers that must wait are
/// synchronous (`lookupAction` runs inside synchronous decisions), and a
/// `DispatchGroup` can be waited on there.
final class BackgroundEntries: Sendable {
    private struct Queue {
        var jobs: [@Sendable () -> Void] = []
        /// How many queued or running jobs write each `ac` key.
        var keys: [String: Int] = [:]
        /// How many queued or running jobs named no key.
        var unkeyed = 0
        /// A writer block is scheduled or running; it takes jobs until the
        /// queue is empty, then clears this under the same lock.
        var writing = false
    }

    private let queue = Mutex(Queue())
    /// `.background`: on Linux, Dispatch runs a queue's jobs on threads
    /// whose nice value follows its QoS (background 10, utility 2,
    /// default 0, userInitiated -2; a process that may not lower its nice
    /// value keeps its own where that is higher). The loop's thread (nice 0) notices
    /// exits and spawns the next subtasks while the children use the
    /// cores, so the writer takes the time a core would sit idle instead
    /// of delaying a spawn; `finish` waits for it all the same.
    static let writerQoS = DispatchQoS.background
    private let writer = DispatchQueue(label: "planrun.cache-entries", qos: BackgroundEntries.writerQoS)
    private let group = DispatchGroup()

    /// Queues `job`, which writes the entry `key` (nil: unknown); jobs run
    /// one at a time, in the order queued.
    func add(key: String?, _ job: @escaping @Sendable () -> Void) {
        let start = queue.withLock { q -> Bool in
            if let key { q.keys[key, default: 0] += 1 } else { q.unkeyed += 1 }
            q.jobs.append({ [self] in
                job()
                queue.withLock { q in
                    guard let key else { q.unkeyed -= 1; return }
                    if let n = q.keys[key], n > 1 { q.keys[key] = n - 1 } else { q.keys[key] = nil }
                }
            })
            if q.writing { return false }
            q.writing = true
            return true
        }
        guard start else { return }
        writer.async(group: group) { [self] in
            while true {
                let batch = queue.withLock { q -> [@Sendable () -> Void] in
                    if q.jobs.isEmpty { q.writing = false }
                    defer { q.jobs = [] }
                    return q.jobs
                }
                if batch.isEmpty { return }
                for job in batch { job() }
            }
        }
    }

    /// Returns once every job queued before the call has run.
    func wait() {
        guard queue.withLock({ $0.writing }) else { return }
        group.wait()
    }

    /// `wait()`, when a queued or running job writes `key` or named none.
    func wait(for key: String) {
        guard queue.withLock({ $0.unkeyed > 0 || $0.keys[key] != nil }) else { return }
        group.wait()
    }
}

extension LocalCacheStore {
    /// Runs `job` (writes of blobs, then the `ac` entry naming them) on
    /// the background writer (see `BackgroundEntries`).
    package func writeInBackground(entry key: String? = nil, _ job: @escaping @Sendable () -> Void) {
        background.add(key: key, job)
    }

    /// Waits until the jobs queued by `writeInBackground` have run.
    package func waitForBackgroundWrites() {
        background.wait()
    }

    /// Waits until no queued job writes the entry `key` (see `BackgroundEntries`).
    package func waitForBackgroundWrites(entry key: String) {
        background.wait(for: key)
    }
}

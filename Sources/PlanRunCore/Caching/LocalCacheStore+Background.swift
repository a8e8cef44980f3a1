import Dispatch
import Synchronization

/// New `cas` blobs and `ac` entries written beside the build's loop:
/// `writeInBackground` queues a job and returns; one serial writer runs
/// the queue in order, a batch at a time. Creating files is the costliest
/// step of recording a subtask on ext4, and the loop's thread also
/// notices exits and spawns the next subtasks, so the store's writes for
/// a record happen off that thread (blobs first, then the entry).
///
/// Invariants:
/// - Every reader of `ac/` in this store (`lookupAction`, `manifest`)
///   waits for the queue first (`waitForBackgroundWrites`), so a build
///   never reads an entry it queued as absent or half written; a manifest
///   is read and rewritten only after the entry it will lead to is written.
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
        /// A writer block is scheduled or running; it takes jobs until the
        /// queue is empty, then clears this under the same lock.
        var writing = false
    }

    private let queue = Mutex(Queue())
    private let writer = DispatchQueue(label: "planrun.cache-entries")
    private let group = DispatchGroup()

    /// Queues `job`; jobs run one at a time, in the order queued.
    func add(_ job: @escaping @Sendable () -> Void) {
        let start = queue.withLock { q -> Bool in
            q.jobs.append(job)
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
}

extension LocalCacheStore {
    /// Runs `job` (writes of blobs, then the `ac` entry naming them) on
    /// the background writer (see `BackgroundEntries`).
    package func writeInBackground(_ job: @escaping @Sendable () -> Void) {
        background.add(job)
    }

    /// Waits until the jobs queued by `writeInBackground` have run.
    package func waitForBackgroundWrites() {
        background.wait()
    }
}

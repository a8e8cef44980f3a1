import Dispatch
import Synchronization

/// New `ac` entries written beside the build's loop: `putActionInBackground`
/// queues an entry and returns; one serial writer writes the queue in
/// order, a batch at a time. Creating a file is the costliest step of
/// recording a subtask on ext4, and the loop's thread also notices exits
/// and spawns the next subtasks, so the entry is written off that thread.
///
/// Invariants:
/// - Every reader of `ac/` in this store (`lookupAction`, `manifest`)
///   waits for the queue first (`waitForBackgroundWrites`), so a build
///   never reads an entry it queued as absent or half written; a manifest
///   is read and rewritten only after the entry it will lead to is written.
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
    struct Entry: Sendable {
        var key: String
        var result: ActionResult
        /// Called on the writer's thread when the write fails.
        var failed: @Sendable (CacheError) -> Void
    }

    private struct Queue {
        var entries: [Entry] = []
        /// A writer block is scheduled or running; it takes entries until
        /// the queue is empty, then clears this under the same lock.
        var writing = false
    }

    private let queue = Mutex(Queue())
    private let writer = DispatchQueue(label: "planrun.cache-entries")
    private let group = DispatchGroup()

    /// Queues `entry`; `write` is what the writer does with each.
    func add(_ entry: Entry, write: @escaping @Sendable (Entry) -> Void) {
        let start = queue.withLock { q -> Bool in
            q.entries.append(entry)
            if q.writing { return false }
            q.writing = true
            return true
        }
        guard start else { return }
        writer.async(group: group) { [self] in
            while true {
                let batch = queue.withLock { q -> [Entry] in
                    if q.entries.isEmpty { q.writing = false }
                    defer { q.entries = [] }
                    return q.entries
                }
                if batch.isEmpty { return }
                for entry in batch { write(entry) }
            }
        }
    }

    /// Returns once every entry queued before the call is written (or failed).
    func wait() {
        guard queue.withLock({ $0.writing }) else { return }
        group.wait()
    }
}

extension LocalCacheStore {
    /// `putAction` on the background writer (see `BackgroundEntries`);
    /// `failed` gets the error of a write that fails (a warning: the
    /// subtask is recorded, it only cannot be restored).
    package func putActionInBackground(_ key: String, _ result: ActionResult,
                                       failed: @escaping @Sendable (CacheError) -> Void) {
        guard !readOnly, LocalCacheStore.isDigest(key) else { return }
        background.add(.init(key: key, result: result, failed: failed)) { [self] entry in
            do throws(CacheError) { try putAction(entry.key, entry.result) } catch { entry.failed(error) }
        }
    }

    /// Waits until the entries queued by `putActionInBackground` are written.
    package func waitForBackgroundWrites() {
        background.wait()
    }
}

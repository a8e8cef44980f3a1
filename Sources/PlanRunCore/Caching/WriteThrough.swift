import Collections
import Foundation
import Synchronization

/// Write-through to the remote (mode `readwrite`): after `ContentCache.record`
/// stores an entry locally, its blobs and then its `ac` entry are uploaded
/// in the background (ac last, so a reader never sees an entry whose blobs
/// are missing), at most `maxConcurrentRequests` at a time; `drain` waits
/// for them. A blob uploaded once in a build is not uploaded again.
///
/// Threads: the loop calls `upload(key:)` and `drain`; the uploads run in
/// `UploadQueue`'s tasks, so `uploadedBlobs` is locked.
package final class WriteThrough: Sendable {
    let remote: RemoteCacheStore
    let store: LocalCacheStore
    /// Blobs uploaded (or being uploaded) in this build.
    private let uploadedBlobs = Mutex<Set<String>>([])
    private let queue: UploadQueue

    package init(remote: RemoteCacheStore, store: LocalCacheStore) {
        self.remote = remote
        self.store = store
        queue = UploadQueue(limit: remote.maxConcurrentRequests)
    }

    /// Queues the upload of the local entry for `key`, while the remote is
    /// on; then, once the entry is stored, of the local manifest of
    /// discovered inputs at `ac/MANIFEST` when given (it names that entry).
    func upload(key: String, manifest manifestKey: String? = nil) async {
        guard remote.isAvailable, let action = store.action(key) else { return }
        let blobs = neededBlobs(action)
        let manifest = manifestKey.flatMap(store.manifest)?.jsonBytes(sizeLimit: RemoteCacheStore.actionLimit)
        await queue.add {
            guard await self.upload(key: key, action: action, blobs: blobs), let manifestKey, let manifest else { return }
            _ = await self.remote.putAction(manifestKey, manifest)
        }
    }

    /// Returns once every upload queued so far has finished.
    func drain() async { await queue.drain() }

    /// The blobs an entry names (folder manifests and their files included).
    private func neededBlobs(_ action: ActionResult) -> [String] {
        var out = [action.resultBlob]
        for output in action.outputs {
            out.append(output.digest)
            if output.kind == .folder, let bytes = store.blob(output.digest),
               case .success(let manifest) = RemoteCacheStore.validateManifest(bytes) {
                out += manifest.blobDigests
            }
        }
        return out
    }

    /// Uploads the entry's blobs, then the entry; false when one was not stored.
    private func upload(key: String, action: ActionResult, blobs: [String]) async -> Bool {
        for digest in blobs where uploadedBlobs.withLock({ $0.insert(digest).inserted }) {
            guard let bytes = store.blob(digest) else { return false }
            guard await remote.putBlob(digest, bytes) else { return false }
        }
        var entry = withInlineBlobs(action)
        var sizes: [String: Int] = [:]
        for digest in blobs {
            if let size = FileStat.of(store.blobPath(digest))?.size { sizes[digest] = Int(size) }
        }
        entry.sizes = sizes
        return await remote.putAction(key, entry.jsonBytes)
    }

    /// `action` with its small blobs inline (the result and file outputs
    /// of at most `ActionResult.inlineLimit` bytes each, 64 KiB in all).
    private func withInlineBlobs(_ action: ActionResult) -> ActionResult {
        var entry = action
        var budget = 64 * 1024
        func inline(_ digest: String) -> String? {
            guard let size = FileStat.of(store.blobPath(digest))?.size, size <= ActionResult.inlineLimit,
                  size <= budget, let bytes = store.blob(digest)
            else { return nil }
            budget -= bytes.count
            return Data(bytes).base64EncodedString()
        }
        entry.resultContents = inline(action.resultBlob)
        for i in entry.outputs.indices where entry.outputs[i].kind == .file {
            entry.outputs[i].contents = inline(entry.outputs[i].digest)
        }
        return entry
    }
}

/// Background uploads with at most `limit` running at once. `add` starts a
/// job when a slot is free and queues it otherwise; `drain` returns once
/// every job added so far has finished.
actor UploadQueue {
    private let limit: Int
    private var queued = Deque<@Sendable () async -> Void>()
    private var running = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = max(1, limit) }

    func add(_ job: @escaping @Sendable () async -> Void) {
        queued.append(job)
        pump()
    }

    func drain() async {
        if queued.isEmpty && running == 0 { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    private func pump() {
        while running < limit, let job = queued.popFirst() {
            running += 1
            Task {
                await job()
                self.done()
            }
        }
        if queued.isEmpty && running == 0 {
            let ready = waiters
            waiters = []
            for waiter in ready { waiter.resume() }
        }
    }

    private func done() {
        running -= 1
        pump()
    }
}

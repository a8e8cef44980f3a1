import Collections
import Foundation

extension LayeredBuildCache {
    // MARK: Write-through

    /// The blobs an entry names (folder manifests and their files included).
    func neededBlobs(_ action: ActionResult) -> [String] {
        var out = [action.resultBlob]
        for output in action.outputs {
            out.append(output.digest)
            if output.kind == .folder, let bytes = local.store.blob(output.digest),
               case .success(let manifest) = RemoteCacheStore.validateManifest(bytes) {
                out += manifest.blobDigests
            }
        }
        return out
    }

    /// Uploads the entry's blobs, then the entry; false when one was not stored.
    @discardableResult
    func upload(key: String, action: ActionResult, blobs: [String], to remote: RemoteCacheStore) async -> Bool {
        for digest in blobs where uploadedBlobs.withLock({ $0.insert(digest).inserted }) {
            guard let bytes = local.store.blob(digest) else { return false }
            guard await remote.putBlob(digest, bytes) else { return false }
        }
        var entry = withInlineBlobs(action)
        var sizes: [String: Int] = [:]
        for digest in blobs {
            if let size = FileStat.of(local.store.blobPath(digest))?.size { sizes[digest] = Int(size) }
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
            guard let size = FileStat.of(local.store.blobPath(digest))?.size, size <= ActionResult.inlineLimit,
                  size <= budget, let bytes = local.store.blob(digest)
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

import Collections
import Foundation
import Synchronization

/// The `BuildCache` a build uses: the local `ContentCache`, read through
/// and written through to an optional `RemoteCacheStore`, plus `--only`.
///
/// Read-through: when the local cache would run a subtask and its key is
/// not in the local store, `ac/KEY` is fetched from the remote, validated
/// (`RemoteCacheStore.validateAction`), every blob it names is downloaded
/// and checked against its digest into the local store, and then the normal
/// local restore runs. Before the build starts, `prepare` does the same for
/// every subtask whose key can be computed up front (level by level, using
/// the result digests the remote reports), with bounded concurrency, so a
/// fresh clone against a warm remote does not wait on one request at a time.
///
/// Write-through (mode `readwrite`): after `record`, the entry's blobs and
/// then the `ac` entry are uploaded in the background (ac last, so a reader
/// never sees an entry whose blobs are missing); `finishBuild` waits for
/// them. A blob uploaded once in a build is not uploaded again.
///
/// `--only` (`onlyTargets`): every selected subtask that is not a target is
/// a dependency that must come from the cache; `prepare` restores each one
/// or fails before anything runs.
package final class LayeredBuildCache: BuildCache {
    package let local: ContentCache
    package let remote: RemoteCacheStore?
    /// The subtasks `--only` builds; nil without `--only`.
    package let onlyTargets: Set<String>?
    private let notes = Mutex<[String]>([])
    /// Keys already looked up on the remote in this build (hit or miss).
    private let lookedUp = Mutex<Set<String>>([])
    /// Blobs uploaded (or being uploaded) in this build.
    private let uploadedBlobs = Mutex<Set<String>>([])
    private let uploads: UploadQueue?
    private let remoteWarned = Mutex(false)

    package init(local: ContentCache, remote: RemoteCacheStore? = nil, onlyTargets: Set<String>? = nil) {
        self.local = local
        self.remote = remote
        self.onlyTargets = onlyTargets
        if let remote, remote.mode == .readWrite, !local.readOnly {
            uploads = UploadQueue(limit: remote.maxConcurrentRequests)
        } else {
            uploads = nil
        }
    }

    /// Problems to report once the build is over (the local cache's, then
    /// the remote's: one line when it became unavailable).
    package func takeWarnings() -> [String] {
        var out = local.takeWarnings()
        out += notes.withLock { n in
            defer { n = [] }
            return n
        }
        if let reason = remote?.failureReason, remoteWarned.withLock({ w in defer { w = true }; return !w }) {
            out.append("remote cache `\(remote!.base)` is unavailable (\(reason)); continued with the local cache only")
        }
        return out
    }

    /// Writes the local cache's pending stat records.
    package func finish() throws(CacheError) { try local.finish() }

    private func warn(_ message: String) { notes.withLock { $0.append(message) } }

    // MARK: BuildCache

    package func decide(_ subtask: Subtask, dependencyDigests: [String: String], forced: Bool) async throws -> CacheDecision {
        let first = try await local.decide(subtask, dependencyDigests: dependencyDigests, forced: forced)
        guard let remote, remote.isAvailable, case .run(let reason, let key?) = first else { return first }
        if case .forced = reason { return first }
        guard await fetch(subtask, key: key) != nil else { return first }
        return try await local.decide(subtask, dependencyDigests: dependencyDigests, forced: forced)
    }

    package func record(_ subtask: Subtask, key: String?, result: [UInt8]) async throws -> String {
        let digest = try await local.record(subtask, key: key, result: result)
        if let uploads, let remote, let key, remote.isAvailable, let action = local.store.action(key) {
            let blobs = neededBlobs(action)
            await uploads.add { await self.upload(key: key, action: action, blobs: blobs, to: remote) }
        }
        return digest
    }

    package func prepare(graph: TaskGraph, selected: [Bool]) async throws {
        if let remote, remote.isAvailable { await prefetch(graph: graph, selected: selected, remote: remote) }
        if let onlyTargets { try checkOnly(graph: graph, selected: selected, targets: onlyTargets) }
    }

    package func finishBuild() async {
        await uploads?.drain()
    }

    // MARK: --only

    /// Restores every selected dependency of the targets from the cache, in
    /// dependency order; throws `OnlyFailure` naming the first that is not
    /// in the cache, before anything runs.
    private func checkOnly(graph: TaskGraph, selected: [Bool], targets: Set<String>) throws {
        var digests: [Int: String] = [:]
        for node in graph.topologicalOrder() where selected[node] && !targets.contains(graph.id(node)) {
            let subtask = graph.plan.subtasks[node]
            var deps: [String: String] = [:]
            for dep in graph.dependencies[node] { deps[graph.id(dep)] = digests[dep] ?? "" }
            let decision: CacheDecision
            do {
                decision = try local.decideNow(subtask, dependencyDigests: deps, forced: false)
            } catch {
                throw OnlyFailure(dependency: subtask.id, dependent: dependent(of: node, graph: graph, selected: selected, targets: targets),
                                  detail: error.description)
            }
            guard case .upToDate(let outcome) = decision else {
                throw OnlyFailure(dependency: subtask.id, dependent: dependent(of: node, graph: graph, selected: selected, targets: targets),
                                  detail: nil)
            }
            digests[node] = outcome.resultDigest
        }
    }

    /// The first selected subtask (plan order) that depends on `node`.
    private func dependent(of node: Int, graph: TaskGraph, selected: [Bool], targets: Set<String>) -> String {
        graph.dependents[node].first(where: { selected[$0] }).map(graph.id) ?? targets.sorted().first ?? graph.id(node)
    }

    // MARK: Read-through

    /// Fetches the remote entry for `key` into the local store; its action
    /// result, or nil on a miss, an unavailable remote or a refused entry.
    private func fetch(_ subtask: Subtask, key: String) async -> ActionResult? {
        guard let remote, lookedUp.withLock({ $0.insert(key).inserted }) else { return nil }
        guard case .hit(let bytes) = await remote.action(key) else { return nil }
        let action: ActionResult
        switch RemoteCacheStore.validateAction(bytes, for: subtask) {
        case .success(let valid): action = valid
        case .failure(let refusal):
            warn("remote cache entry for `\(subtask.id)` refused: \(refusal); running it")
            return nil
        }
        do {
            var wanted = [action.resultBlob]
            for output in action.outputs where output.kind == .file { wanted.append(output.digest) }
            guard try await download(wanted, for: subtask, remote: remote) else { return nil }
            for output in action.outputs where output.kind == .folder {
                guard try await download([output.digest], for: subtask, remote: remote),
                      let bytes = local.store.blob(output.digest)
                else { return nil }
                switch RemoteCacheStore.validateManifest(bytes) {
                case .success(let manifest):
                    guard try await download(manifest.files.map(\.digest), for: subtask, remote: remote) else { return nil }
                case .failure(let refusal):
                    warn("remote cache entry for `\(subtask.id)` refused: \(refusal); running it")
                    return nil
                }
            }
            try local.store.putAction(key, action)
        } catch {
            warn("cannot store the remote cache entry for `\(subtask.id)`: \(error)")
            return nil
        }
        return action
    }

    /// Downloads the blobs not yet in the local store, checking each
    /// against its digest; false when one is missing or refused.
    private func download(_ digests: [String], for subtask: Subtask, remote: RemoteCacheStore) async throws(CacheError) -> Bool {
        var missing: [String] = []
        var seen = Set<String>()
        for digest in digests where seen.insert(digest).inserted && !local.store.hasBlob(digest) { missing.append(digest) }
        if missing.isEmpty { return true }
        let limit = 4
        let store = local.store
        let results: [(String, BlobFetch)] = await withTaskGroup(of: (String, BlobFetch).self) { group in
            var out: [(String, BlobFetch)] = []
            var next = 0
            func start(_ group: inout TaskGroup<(String, BlobFetch)>) {
                let digest = missing[next]
                next += 1
                group.addTask {
                    guard case .hit(let bytes) = await remote.blob(digest) else { return (digest, .missing) }
                    guard Digest.sha256Hex(bytes) == digest else { return (digest, .mismatch) }
                    do throws(CacheError) { try store.putBlob(bytes) } catch { return (digest, .failed(error)) }
                    return (digest, .stored)
                }
            }
            while next < missing.count && next < limit { start(&group) }
            while let r = await group.next() {
                out.append(r)
                if next < missing.count { start(&group) }
            }
            return out
        }
        var ok = true
        for (digest, result) in results {
            switch result {
            case .stored: continue
            case .missing: ok = false
            case .mismatch:
                warn("remote cache entry for `\(subtask.id)` refused: \(RemoteCacheStore.Refusal.blobMismatch(digest: digest)); running it")
                ok = false
            case .failed(let error): throw error
            }
        }
        return ok
    }

    /// Warms the local store before the build: level by level, computes
    /// the keys it can (a dependency's result digest comes from the local
    /// store or the remote entry) and fetches the missing entries, at most
    /// `maxConcurrentRequests` subtasks at a time.
    private func prefetch(graph: TaskGraph, selected: [Bool], remote: RemoteCacheStore) async {
        let levels = graph.levels()
        var byLevel: [[Int]] = []
        for node in graph.topologicalOrder() where selected[node] {
            while byLevel.count <= levels[node] { byLevel.append([]) }
            byLevel[levels[node]].append(node)
        }
        var digests: [Int: String] = [:]
        for nodes in byLevel {
            guard remote.isAvailable, !Task.isCancelled else { return }
            var wanted: [(node: Int, key: String)] = []
            for node in nodes {
                let subtask = graph.plan.subtasks[node]
                guard subtask.cache, !local.forcedIDs.contains(subtask.id) else { continue }
                var deps: [String: String] = [:]
                var known = true
                for dep in graph.dependencies[node] {
                    guard let digest = digests[dep] else { known = false; break }
                    deps[graph.id(dep)] = digest
                }
                guard known, let key = try? local.key(for: subtask, dependencyDigests: deps).key else { continue }
                if let action = local.store.action(key) {
                    digests[node] = action.resultDigest
                } else {
                    wanted.append((node, key))
                }
            }
            let limit = remote.maxConcurrentRequests
            let plan = graph.plan
            let found: [(Int, String)] = await withTaskGroup(of: (Int, String?).self) { group in
                var out: [(Int, String)] = []
                var next = 0
                while next < wanted.count && next < limit {
                    let item = wanted[next]
                    next += 1
                    group.addTask { (item.node, await self.fetch(plan.subtasks[item.node], key: item.key)?.resultDigest) }
                }
                while let (node, digest) = await group.next() {
                    if let digest { out.append((node, digest)) }
                    if next < wanted.count, remote.isAvailable, !Task.isCancelled {
                        let item = wanted[next]
                        next += 1
                        group.addTask { (item.node, await self.fetch(plan.subtasks[item.node], key: item.key)?.resultDigest) }
                    }
                }
                return out
            }
            for (node, digest) in found { digests[node] = digest }
        }
    }

    // MARK: Write-through

    /// The blobs an entry names (folder manifests and their files included).
    private func neededBlobs(_ action: ActionResult) -> [String] {
        var out = [action.resultBlob]
        for output in action.outputs {
            out.append(output.digest)
            if output.kind == .folder, let bytes = local.store.blob(output.digest),
               case .success(let manifest) = RemoteCacheStore.validateManifest(bytes) {
                out += manifest.files.map(\.digest)
            }
        }
        return out
    }

    private func upload(key: String, action: ActionResult, blobs: [String], to remote: RemoteCacheStore) async {
        for digest in blobs where uploadedBlobs.withLock({ $0.insert(digest).inserted }) {
            guard let bytes = local.store.blob(digest) else { return }
            guard await remote.putBlob(digest, bytes) else { return }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(action) else { return }
        _ = await remote.putAction(key, Array(data))
    }
}

/// What became of one blob download.
private enum BlobFetch: Sendable {
    case stored, missing, mismatch
    case failed(CacheError)
}

/// `--only` cannot run: a dependency of a target is not in the cache.
package struct OnlyFailure: Error, Sendable, CustomStringConvertible {
    package var dependency: String
    package var dependent: String
    /// Why its key could not be computed, when that was the problem.
    package var detail: String?

    package var description: String {
        var text = "dependency `\(dependency)` of `\(dependent)` is not in the cache; build it first or drop --only"
        if let detail { text += " (\(detail))" }
        return text
    }
}

/// Background uploads with at most `limit` running at once. `add` starts a
/// job when a slot is free and queues it otherwise; `drain` returns once
/// every job added so far has finished.
private actor UploadQueue {
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

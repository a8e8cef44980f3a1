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
///
/// Threads: the build's loop calls `prepare`, `decide`, `record`,
/// `finishBuild` and `takeWarnings`, one at a time. Work runs in parallel
/// only in the prefetch's child tasks (`writeFromRemote`: remote requests,
/// downloads, writing outputs) and in the upload tasks (`UploadQueue`);
/// what those touch is locked (`warnings`, `lookedUp`, `uploadedBlobs`,
/// `smallBlobs`, `Downloads`, and the stores' and stat cache's own state).
/// The rest is the loop's alone.
package final class LayeredBuildCache: BuildCache {
    package let local: ContentCache
    package let remote: RemoteCacheStore?
    /// The subtasks `--only` builds; nil without `--only`.
    package let onlyTargets: Set<String>?
    private let warnings = CacheWarnings()
    /// Keys already looked up on the remote in this build (hit or miss).
    let lookedUp = Mutex<Set<String>>([])
    /// Blobs uploaded (or being uploaded) in this build.
    let uploadedBlobs = Mutex<Set<String>>([])
    let uploads: UploadQueue?
    /// Whether the remote's failures were reported (by `takeWarnings`, on the loop).
    nonisolated(unsafe) private var remoteWarned = false
    /// Subtasks `prepare` restored from the remote, by id, until `decide`
    /// takes them (it checks the key first). Only the build's loop touches
    /// it (`prepare` fills it after its tasks are done, `decide` empties it),
    /// hence `nonisolated(unsafe)` rather than a lock.
    nonisolated(unsafe) private var restoredAhead: [String: CachedOutcome] = [:]
    /// Small blobs downloaded in this build, by digest.
    private let smallBlobs = Mutex<[String: [UInt8]]>([:])


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
        out += warnings.take()
        if let remote, remote.failures.count > 0, !remoteWarned {
            remoteWarned = true
            if let reason = remote.failureReason {
                out.append("remote cache `\(remote.base)` is unavailable (\(reason)); continued with the local cache only")
            } else {
                // Fewer failures than turn it off: still worth knowing.
                let (count, first) = remote.failures
                out.append("remote cache `\(remote.base)`: \(count) request\(count == 1 ? "" : "s") failed (\(first ?? "?"))")
            }
        }
        return out
    }

    /// Writes the local cache's pending stat records.
    package func finish() throws(CacheError) { try local.finish() }

    func warn(_ message: String) { warnings.add(message) }

    // MARK: BuildCache

    /// Computes the key once, then: a subtask the prefetch restored with
    /// that key is up to date; else the local verdict; a run the local
    /// cache cannot avoid is looked up on the remote.
    package func decide(_ subtask: Subtask, dependencyDigests: [String: String], forced: Bool) async throws -> CacheDecision {
        guard subtask.cache else { return try local.decide(subtask, key: nil, forced: forced) }
        let key = try local.key(for: subtask, dependencyDigests: dependencyDigests)
        if let ahead = restoredAhead.removeValue(forKey: subtask.id), !local.isForced(subtask, forced: forced),
           ahead.key.cacheKey.declared.key == key.digest, local.discoveredStillMatch(ahead.key) {
            return .upToDate(ahead)
        }
        let first = try local.decide(subtask, key: key, forced: forced)
        try local.flushIfDue()
        guard let remote, remote.isAvailable, case .run(let reason, let decided) = first, reason != .forced,
              let outcome = await restoreFromRemote(subtask, key: decided ?? key)
        else { return first }
        return .upToDate(outcome)
    }

    package func record(_ subtask: Subtask, key: ActionKey?, result: [UInt8]) async throws -> String {
        let (digest, stored) = try local.recordNow(subtask, key: key, result: result)
        if let uploads, let remote, let stored, remote.isAvailable, let action = local.store.action(stored.key) {
            let blobs = neededBlobs(action)
            let manifest = stored.isFull ? local.store.manifest(stored.declared.key) : nil
            await uploads.add {
                guard await self.upload(key: stored.key, action: action, blobs: blobs, to: remote), let manifest else { return }
                await self.upload(manifest, declaredKey: stored.declared.key, to: remote)
            }
        }
        return digest
    }

    package func prepare(graph: TaskGraph, selected: [Bool]) async throws {
        // `build --force` without targets runs everything: nothing to fetch ahead.
        if let remote, remote.isAvailable, !local.force.all { await prefetch(graph: graph, selected: selected, remote: remote) }
        if let onlyTargets { try checkOnly(graph: graph, selected: selected, targets: onlyTargets) }
    }

    package func commitPendingWrites() { local.commitPendingWrites() }

    /// Waits for the uploads, then writes the local cache's pending
    /// records (`ContentCache.finish`).
    package func finishBuild() async throws {
        await uploads?.drain()
        try local.finish()
    }

    // MARK: Read-through

    /// Restores `subtask` straight from the remote entry for `key`: the
    /// `ac` entry is validated, its blobs are downloaded and checked
    /// against their digests in memory, the outputs are written in place
    /// and the history records the key. Nothing goes to the local store (a
    /// later build whose outputs are gone asks the remote again; one
    /// without the remote runs the subtask) but a manifest of discovered
    /// inputs (`writeFromRemote(_:decided:)`). nil on a miss, an
    /// unavailable remote or a refused entry (with a warning).
    private func restoreFromRemote(_ subtask: Subtask, key: ActionKey) async -> CachedOutcome? {
        guard let restored = await writeFromRemote(subtask, decided: key) else { return nil }
        return record(restored, for: subtask)
    }

    /// A subtask whose outputs `writeFromRemote` put back, to be recorded.
    struct Restored: Sendable {
        var entry: HistoryEntry
        var outcome: CachedOutcome
    }

    /// Records a restore in the history; nil (with a warning) when that fails.
    private func record(_ restored: Restored, for subtask: Subtask) -> CachedOutcome? {
        do {
            try local.history.save(restored.entry, for: subtask.id)
        } catch {
            warn("cannot record `\(subtask.id)` restored from the remote cache: \(error)")
            return nil
        }
        return restored.outcome
    }

    /// The first half of `restoreFromRemote`: everything but the history.
    func writeFromRemote(_ subtask: Subtask, key: ActionKey) async -> Restored? {
        guard let remote, !local.readOnly, lookedUp.withLock({ $0.insert(key.digest).inserted }) else { return nil }
        let action: ActionResult
        switch await remote.action(for: key.digest, subtask: subtask) {
        case .found(let found): action = found
        case .absent: return nil
        case .refused(let warning):
            warn(warning)
            return nil
        }
        var blobs: [String: BlobSource]
        switch Self.inlineBlobs(of: action) {
        case .success(let found): blobs = found.mapValues { .bytes($0) }
        case .failure(let refusal):
            warn("remote cache entry for `\(subtask.id)` refused: \(refusal); running it")
            return nil
        }
        // Downloaded blobs wait in the store's `tmp/` until restored.
        let downloads = Downloads()
        defer { downloads.removeAll() }
        let sizes = action.sizes ?? [:]
        // The blobs of outputs that are not already as recorded.
        var stale: [OutputEntry] = []
        for output in action.outputs {
            if let now = try? local.outputs.snapshot(output.path), output.matches(now) { continue }
            stale.append(output)
        }
        var wanted = [action.resultBlob]
        for output in stale where output.kind != .folder { wanted.append(output.digest) }
        wanted.removeAll { blobs[$0] != nil }
        guard let fetched = await download(wanted, sizes: sizes, for: subtask, remote: remote, into: downloads) else { return nil }
        blobs.merge(fetched) { a, _ in a }
        var manifests: [String: FolderManifest] = [:]
        for output in stale where output.kind == .folder {
            guard let fetched = await download([output.digest], sizes: sizes, for: subtask, remote: remote, into: downloads),
                  let manifestBytes = fetched[output.digest]?.bytes
            else { return nil }
            switch RemoteCacheStore.validateManifest(manifestBytes) {
            case .success(let manifest):
                guard let files = await download(manifest.blobDigests, sizes: sizes, for: subtask, remote: remote,
                                                 into: downloads)
                else { return nil }
                blobs.merge(files) { a, _ in a }
                manifests[output.path] = manifest
            case .failure(let refusal):
                warn("remote cache entry for `\(subtask.id)` refused: \(refusal); running it")
                return nil
            }
        }
        guard let result = blobs[action.resultBlob]?.bytes,
              ContentCache.resultDigest(result: result, outputs: action.outputs) == action.resultDigest
        else {
            warn("remote cache entry for `\(subtask.id)` refused: \(RemoteCacheStore.Refusal.resultMismatch); running it")
            return nil
        }
        do {
            for output in stale {
                let linkTarget = output.kind == .symlink ? blobs[output.digest]?.bytes : nil
                let written = try local.restorer.putBack(output, manifest: manifests[output.path], linkTarget: linkTarget) {
                    digest, destination, mode throws(CacheError) in
                    // Every blob here was checked against its digest when downloaded.
                    switch blobs[digest] {
                    case .bytes(let bytes)?: try LocalCacheStore.replaceFile(destination, with: bytes, mode: mode)
                    case .file(let path)?: try Self.replaceFile(destination, withCopyOf: path, mode: mode)
                    case nil: return false
                    }
                    return true
                }
                guard written else {
                    warn("cannot restore `\(output.path)` of `\(subtask.id)` from the remote cache; running it")
                    return nil
                }
            }
        } catch {
            warn("cannot restore `\(subtask.id)` from the remote cache: \(error); running it")
            return nil
        }
        return Restored(
            entry: HistoryEntry(key: key.cacheKey, resultDigest: action.resultDigest, result: result, outputs: action.withoutContents.outputs),
            outcome: CachedOutcome(key: key, resultDigest: action.resultDigest, result: result, reason: .restored))
    }

    /// Copies the downloaded blob at `source` to `destination` (replacing
    /// it) through a temporary file beside it.
    private static func replaceFile(_ destination: String, withCopyOf source: String, mode: mode_t) throws(CacheError) {
        let temp = LocalCacheStore.temporaryName(besides: destination)
        do {
            _ = try LocalCacheStore.copy(from: source, to: temp, mode: mode)
        } catch {
            unlink(temp)
            throw error
        }
        if rename(temp, destination) != 0 {
            let reason = LocalCacheStore.errnoText()
            unlink(temp)
            throw .storeWrite(reason: "cannot restore `\(destination)`: \(reason)")
        }
    }

    /// The blobs an entry carries inline, each checked against its digest.
    static func inlineBlobs(of action: ActionResult) -> Result<[String: [UInt8]], RemoteCacheStore.Refusal> {
        var out: [String: [UInt8]] = [:]
        var pairs: [(String, String)] = []
        if let text = action.resultContents { pairs.append((action.resultBlob, text)) }
        for output in action.outputs {
            guard let text = output.contents else { continue }
            guard output.kind == .file else { return .failure(.malformed) }
            pairs.append((output.digest, text))
        }
        for (digest, text) in pairs {
            guard let data = Data(base64Encoded: text) else { return .failure(.malformed) }
            let bytes = [UInt8](data)
            guard Digest.sha256Hex(bytes) == digest else { return .failure(.blobMismatch(digest: digest)) }
            out[digest] = bytes
        }
        return .success(out)
    }

    /// Downloads blobs, each streamed to a file in the store's `tmp/`
    /// (`downloads` removes them) and refused past the size the entry
    /// names for it or when it does not match its digest; nil when one is
    /// missing or refused (a warning names a refused one). Small blobs are
    /// read back and remembered for the build (results are often
    /// identical, often empty).
    private func download(_ digests: [String], sizes: [String: Int], for subtask: Subtask, remote: RemoteCacheStore,
                          into downloads: Downloads) async -> [String: BlobSource]? {
        var out: [String: BlobSource] = [:]
        var missing: [String] = []
        var seen = Set<String>()
        for digest in digests where seen.insert(digest).inserted {
            if digest == LayeredBuildCache.emptyDigest {
                out[digest] = .bytes([])
            } else if let known = smallBlobs.withLock({ $0[digest] }) {
                out[digest] = .bytes(known)
            } else if sizes[digest] != nil {
                missing.append(digest)
            } else {
                warn("remote cache entry for `\(subtask.id)` refused: \(RemoteCacheStore.Refusal.unsizedBlob(digest: digest)); running it")
                return nil
            }
        }
        if missing.isEmpty { return out }
        let store = local.store
        let limit = 4
        let results: [(String, BlobFetch)] = await withTaskGroup(of: (String, BlobFetch).self) { group in
            var results: [(String, BlobFetch)] = []
            var next = 0
            func start(_ group: inout TaskGroup<(String, BlobFetch)>) {
                let digest = missing[next]
                let size = sizes[digest] ?? 0
                next += 1
                group.addTask {
                    let path: String
                    do { path = try store.temporaryPath() } catch { return (digest, .refused("\(error)")) }
                    downloads.add(path)
                    switch await remote.blob(digest, into: path, limit: size) {
                    case .hit: return (digest, .fetched(path))
                    case .miss, .unavailable: return (digest, .missing)
                    case .refused(let reason): return (digest, .refused(reason))
                    }
                }
            }
            while next < missing.count && next < limit { start(&group) }
            while let r = await group.next() {
                results.append(r)
                if next < missing.count { start(&group) }
            }
            return results
        }
        var ok = true
        for (digest, result) in results {
            switch result {
            case .fetched(let path):
                if (sizes[digest] ?? Int.max) <= LayeredBuildCache.smallBlobLimit, let bytes = FileBytes.read(path) {
                    out[digest] = .bytes(bytes)
                    smallBlobs.withLock { if $0.count < LayeredBuildCache.smallBlobCount { $0[digest] = bytes } }
                } else {
                    out[digest] = .file(path)
                }
            case .missing: ok = false
            case .refused(let reason):
                warn("remote cache entry for `\(subtask.id)` refused: \(reason); running it")
                ok = false
            }
        }
        return ok ? out : nil
    }

    /// SHA-256 of no bytes (an empty result or file needs no download).
    private static let emptyDigest = Digest.sha256Hex([UInt8]())
    /// Blobs up to this size are remembered, at most `smallBlobCount` of them.
    private static let smallBlobLimit = 4096
    private static let smallBlobCount = 4096

    /// Restores from the remote before the build: level by level, computes
    /// the keys it can (a dependency's result digest comes from the history,
    /// the local store or the remote entry) and restores the subtasks that
    /// are neither recorded with that key nor in the local store, at most
    /// `maxConcurrentRequests` at a time. `decide` then takes each outcome
    /// once it has checked the key.
    private func prefetch(graph: TaskGraph, selected: [Bool], remote: RemoteCacheStore) async {
        var digests: [Int: String] = [:]
        for nodes in KeyWalk.levels(graph, selected: selected) {
            guard remote.isAvailable, !Task.isCancelled else { return }
            var wanted: [(node: Int, key: ActionKey)] = []
            for node in nodes {
                let subtask = graph.plan.subtasks[node]
                guard subtask.cache, !local.force.covers(subtask.id) else { continue }
                guard let deps = KeyWalk.dependencyDigests(of: node, in: graph, { digests[$0] }),
                      let declared = try? local.keys.key(for: subtask, dependencyDigests: deps, log: nil)
                else { continue }
                let key = localFullKey(subtask, declared: declared)
                if let last = try? local.history.entry(for: subtask.id), last.key == key.digest {
                    digests[node] = last.resultDigest  // `decide` checks its outputs
                } else if let action = local.store.action(key.digest) {
                    digests[node] = action.resultDigest
                } else {
                    wanted.append((node, key))
                }
            }
            let limit = remote.maxConcurrentRequests
            let plan = graph.plan
            // The children fetch and write; this loop alone records them in
            // the history (one writer: no contention on the database queue),
            // in one transaction per level.
            let found: [(Int, Restored)] = await withTaskGroup(of: (Int, Restored?).self) { group in
                var out: [(Int, Restored)] = []
                var next = 0
                func start(_ group: inout TaskGroup<(Int, Restored?)>) {
                    let item = wanted[next]
                    next += 1
                    group.addTask { (item.node, await self.writeFromRemote(plan.subtasks[item.node], decided: item.key)) }
                }
                while next < wanted.count && next < limit { start(&group) }
                while let (node, restored) = await group.next() {
                    if next < wanted.count, remote.isAvailable, !Task.isCancelled { start(&group) }
                    if let restored { out.append((node, restored)) }
                }
                return out
            }
            guard !found.isEmpty else { continue }
            do {
                try local.history.saveAll(found.map { (plan.subtasks[$0.0].id, $0.1.entry) })
            } catch {
                warn("cannot record \(found.count) subtask\(found.count == 1 ? "" : "s") restored from the remote cache: \(error)")
                continue
            }
            for (node, restored) in found { restoredAhead[plan.subtasks[node].id] = restored.outcome }
            for (node, restored) in found { digests[node] = restored.outcome.resultDigest }
        }
    }

}

/// What became of one blob download.
private enum BlobFetch: Sendable {
    /// In this file, checked against its digest.
    case fetched(String)
    case missing
    case refused(String)
}

/// Where a blob restored from the remote is: in memory (inline in the
/// entry, small, or empty) or in a downloaded file.
private enum BlobSource: Sendable {
    case bytes([UInt8])
    case file(String)

    /// The bytes, read from the file if need be (a manifest, the result).
    var bytes: [UInt8]? {
        switch self {
        case .bytes(let bytes): bytes
        case .file(let path): FileBytes.read(path)
        }
    }
}

/// The files one restore from the remote downloaded; `removeAll` deletes
/// them once the outputs are written (or the restore is given up).
private final class Downloads: Sendable {
    private let paths = Mutex<[String]>([])
    func add(_ path: String) { paths.withLock { $0.append(path) } }
    func removeAll() {
        for path in paths.withLock({ p in defer { p = [] }; return p }) { unlink(path) }
    }
}

import Collections
import Foundation
import Synchronization

/// The remote as a source to restore from (read-through): `ContentCache`
/// asks it for `ac/KEY` only when the local store has no usable entry.
///
/// An entry is validated (`RemoteCacheStore.validateAction`); the blobs of
/// the outputs that are not already as recorded are downloaded and checked
/// against their digests (inline ones taken from the entry), and the
/// outputs are written in place straight from those bytes. Nothing goes to
/// the local store: a later build whose outputs are gone asks the remote
/// again; one without the remote runs the subtask. Each key is asked for at
/// most once per build (hit or miss), and nothing once the remote is off.
///
/// Threads: the build's loop calls it in `decide`, and the prefetch's child
/// tasks (`ContentCache.prefetch`) call it in parallel, so what it keeps is
/// locked (`lookedUp`, `smallBlobs`, `Downloads`, `warnings`).
package final class RemoteRestorer: RestoreSource {
    package let remote: RemoteCacheStore
    private let store: LocalCacheStore
    private let restorer: Restorer
    private let warnings: CacheWarnings
    /// Keys already looked up on the remote in this build (hit or miss).
    private let lookedUp = Mutex<Set<String>>([])
    /// Small blobs downloaded in this build, by digest.
    private let smallBlobs = Mutex<[String: [UInt8]]>([:])
    /// Whether the remote's failures were reported (`takeWarnings`, on the loop).
    private let warned = Atomic<Bool>(false)

    package init(remote: RemoteCacheStore, restorer: Restorer) {
        self.remote = remote
        self.restorer = restorer
        store = restorer.store
        warnings = restorer.warnings
    }

    private func warn(_ message: String) { warnings.add(message) }

    /// One line when the remote became unavailable, or when some of its
    /// requests failed; returned once per build.
    package func unavailability() -> String? {
        guard remote.failures.count > 0, !warned.exchange(true, ordering: .relaxed) else { return nil }
        if let reason = remote.failureReason {
            return "remote cache `\(remote.base)` is unavailable (\(reason)); continued with the local cache only"
        }
        // Fewer failures than turn it off: still worth knowing.
        let (count, first) = remote.failures
        return "remote cache `\(remote.base)`: \(count) request\(count == 1 ? "" : "s") failed (\(first ?? "?"))"
    }

    // MARK: RestoreSource

    /// `absent` once the remote is off, and for a key already asked for in
    /// this build.
    package func action(for key: String, subtask: Subtask) async -> ActionStoreAnswer {
        guard remote.isAvailable, lookedUp.withLock({ $0.insert(key).inserted }) else { return .absent }
        return await remote.action(for: key, subtask: subtask)
    }

    /// The manifest of discovered inputs at `ac/DECLARED_KEY`
    /// (`DiscoveredManifest`), asked for once per build like an entry; nil
    /// on a miss, an unavailable remote or anything that is not a manifest
    /// (with a warning).
    package func manifest(for declaredKey: String, subtask: Subtask) async -> DiscoveredManifest? {
        guard remote.isAvailable, lookedUp.withLock({ $0.insert(declaredKey).inserted }) else { return nil }
        switch await remote.action(declaredKey) {
        case .hit(let bytes):
            if let manifest = DiscoveredManifest.decode(bytes) { return manifest }
            warn("remote cache manifest for `\(subtask.id)` refused: it is not a manifest of discovered inputs; running it")
        case .refused(let reason):
            warn("remote cache manifest for `\(subtask.id)` refused: \(reason); running it")
        case .miss, .unavailable:
            break
        }
        return nil
    }

    /// Downloads what `action` needs and writes the outputs that are not as
    /// it records them; nil (with a warning) when a blob is missing or
    /// refused or an output cannot be written.
    package func restore(_ action: ActionResult, of subtask: Subtask, key: ActionKey) async -> RestoredAction? {
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
            if let now = try? restorer.outputs.snapshot(output.path), output.matches(now) { continue }
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
                let written = try restorer.putBack(output, manifest: manifests[output.path], linkTarget: linkTarget) {
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
        return RestoredAction(
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
            if digest == RemoteRestorer.emptyDigest {
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
        let store = store
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
                if (sizes[digest] ?? Int.max) <= RemoteRestorer.smallBlobLimit, let bytes = FileBytes.read(path) {
                    out[digest] = .bytes(bytes)
                    smallBlobs.withLock { if $0.count < RemoteRestorer.smallBlobCount { $0[digest] = bytes } }
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

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Puts a subtask's outputs and result back from the local store under its
/// key: the local `RestoreSource`, the doing half of a `.restore` verdict. Every path it writes is inside the plan's folder
/// (`PathSafety`), every blob is checked against its digest, and files are
/// written through a temporary file renamed into place. Read-only (the dry
/// run, `explain`): reports what would be restored and changes nothing.
package struct Restorer: RestoreSource {
    package let store: LocalCacheStore
    package let outputs: OutputReader
    package let readOnly: Bool
    package let warnings: CacheWarnings
    /// `outputs.root` with its links resolved, once (nil if it cannot be:
    /// each restore then tries and fails with the reason).
    private let realRoot: String?

    package init(store: LocalCacheStore, outputs: OutputReader, readOnly: Bool, warnings: CacheWarnings) {
        self.store = store
        self.outputs = outputs
        self.readOnly = readOnly
        self.warnings = warnings
        realRoot = PathSafety.realPath(outputs.root)
    }

    /// The local store's checked entry for `key`.
    package func action(for key: String, subtask: Subtask) async -> ActionStoreAnswer {
        store.checkedAction(for: key, subtask: subtask)
    }

    /// Restores the outputs and result `action` (the local `ac/KEY`) names;
    /// nil when it refers to missing or bad blobs or an output cannot be
    /// put back. Read-only: reports what would be restored and changes
    /// nothing.
    package func restore(_ action: ActionResult, of subtask: Subtask, key: ActionKey) throws(CacheError) -> RestoredAction? {
        guard let result = store.blob(action.resultBlob),
              ContentCache.resultDigest(result: result, outputs: action.outputs) == action.resultDigest
        else { return nil }
        let restored = RestoredAction(
            entry: HistoryEntry(key: key.cacheKey, resultDigest: action.resultDigest, result: result, outputs: action.outputs),
            outcome: CachedOutcome(key: key, resultDigest: action.resultDigest, result: result, reason: .restored))
        if readOnly {
            return action.outputs.allSatisfy({ store.hasBlob($0.digest) }) ? restored : nil
        }
        for entry in action.outputs {
            if let now = try? outputs.snapshot(entry.path), entry.matches(now) { continue }
            guard (try? restoreOutput(entry)) == true else {
                warnings.add("cannot restore `\(entry.path)` of `\(subtask.id)` from the cache; running it")
                return nil
            }
        }
        return restored
    }

    /// Puts one output back from the local store; false when a blob is
    /// missing or bad, or the destination is of the other kind.
    private func restoreOutput(_ entry: OutputEntry) throws(CacheError) -> Bool {
        var manifest: FolderManifest?
        var linkTarget: [UInt8]?
        switch entry.kind {
        case .folder:
            guard let bytes = store.blob(entry.digest),
                  let decoded = try? JSONDecoder().decode(FolderManifest.self, from: Data(bytes)),
                  decoded.isWellFormed, decoded.blobDigests.allSatisfy(store.hasBlob)
            else { return false }
            manifest = decoded
        case .symlink:
            guard let bytes = store.blob(entry.digest) else { return false }
            linkTarget = bytes
        case .file:
            break
        }
        return try putBack(entry, manifest: manifest, linkTarget: linkTarget) { digest, destination, mode throws(CacheError) in
            try store.restoreBlob(digest, to: destination, mode: mode)
        }
    }

    /// Puts one output back inside the plan's folder, wherever its blobs
    /// come from (the local store, or bytes downloaded from a remote):
    /// `put(digest, destination, mode)` writes one blob as a file with
    /// exactly those permission bits and returns false when it cannot;
    /// `manifest` lists a folder output's files and links, already checked
    /// (`FolderManifest.isWellFormed`); `linkTarget` is a link output's
    /// target text, already checked against its digest. Links are made as
    /// links. False when a blob cannot be put, or the destination is of the
    /// other kind (a folder where a file was recorded, or the reverse: left
    /// alone, the subtask runs instead).
    ///
    /// Files are written through a temporary file beside the destination,
    /// renamed into place (which replaces a link there rather than writing
    /// through it); each folder that gets one is first noted in the store
    /// (`noteTemporaries`), so the next command removes what a kill left.
    package func putBack(
        _ entry: OutputEntry, manifest: FolderManifest?, linkTarget: [UInt8]? = nil,
        put: (_ digest: String, _ destination: String, _ mode: mode_t) throws(CacheError) -> Bool
    ) throws(CacheError) -> Bool {
        let destination = try PathSafety.prepareDestination(entry.path, root: outputs.root, realRoot: realRoot)
        let existing = FileStat.of(destination, followSymlinks: false)
        switch entry.kind {
        case .file:
            if existing?.kind == .directory { return false }
            try store.noteTemporaries(besides: destination)
            return try put(entry.digest, destination, entry.restoreMode)
        case .symlink:
            guard let linkTarget, Digest.sha256Hex(linkTarget) == entry.digest, !linkTarget.isEmpty, !linkTarget.contains(0)
            else { return false }
            if existing?.kind == .directory { return false }
            try store.noteTemporaries(besides: destination)
            try LocalCacheStore.replaceWithLink(destination, target: String(decoding: linkTarget, as: UTF8.self))
            return true
        case .folder:
            guard let manifest, manifest.isWellFormed else { return false }
            if let existing, existing.kind != .directory { return false }
            if existing != nil {
                do { try FileManager.default.removeItem(atPath: destination) } catch { return false }
            }
            do { try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true) } catch {
                return false
            }
            for file in manifest.files {
                let target = try PathSafety.prepareDestination(entry.path + "/" + file.path, root: outputs.root,
                                                               realRoot: realRoot)
                try store.noteTemporaries(besides: target)
                if let link = file.link {
                    try LocalCacheStore.replaceWithLink(target, target: link)
                } else {
                    guard try put(file.digest, target, file.restoreMode) else { return false }
                }
            }
            return true
        }
    }
}

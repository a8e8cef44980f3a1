import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The content-hash `BuildCache` of DESIGN §5.
///
/// `decide`: a subtask whose key equals its last successful key, with its
/// outputs as that run left them, is skipped (`cached`); when the key is in
/// the store (`ac/KEY`) but outputs are missing or changed, outputs and
/// result are restored (`restored`); otherwise it runs, with the first
/// differing key component as the reason. `record` (success only) stores
/// outputs and result in the CAS, writes `ac/KEY` and the history.
///
/// A read-only cache (`explain`, `plan`, `status`) computes the same
/// decisions but writes nothing: no history, no store, no stat cache; a
/// would-be restore is reported as `restored` without touching files.
package final class ContentCache: BuildCache {
    package let plan: Plan
    package let store: LocalCacheStore
    package let history: any SubtaskHistory
    package let digester: FileDigester
    package let readOnly: Bool
    /// Subtasks to run even when up to date (`--force ID`); `forced` on
    /// `decide` forces all.
    package let forcedIDs: Set<String>
    private let callerEnvironment: [String: String]
    private let notes = Mutex<[String]>([])
    /// Keys `decide` computed this build, by subtask id (for `record`).
    private let decidedKeys = Mutex<[String: CacheKey]>([:])

    /// Flush the stat cache once this many new digests are pending.
    private static let flushThreshold = 512

    package init(
        plan: Plan, callerEnvironment: [String: String], store: LocalCacheStore,
        history: any SubtaskHistory, digests: any DigestStore, readOnly: Bool = false,
        forcedIDs: Set<String> = [], racyWindowNs: Int64 = FileDigester.defaultRacyWindowNs
    ) {
        self.plan = plan
        self.callerEnvironment = callerEnvironment
        self.store = store
        self.history = history
        self.digester = FileDigester(store: digests, readOnly: readOnly, racyWindowNs: racyWindowNs)
        self.readOnly = readOnly
        self.forcedIDs = forcedIDs
    }

    deinit {
        try? history.waitForWrites()
        try? digester.flush()
    }

    /// Warnings met along the way that did not stop the build (a cache
    /// write that failed, a bad blob dropped); each is reported once.
    package func takeWarnings() -> [String] {
        notes.withLock { n in
            defer { n = [] }
            return n
        }
    }

    /// Waits for history rows written behind and writes pending stat-cache
    /// records; call when the build ends. Throws the first write that
    /// failed (the build fails with it, DESIGN §9.10).
    package func finish() throws(CacheError) {
        var failure: CacheError?
        do { try history.waitForWrites() } catch {
            failure = (error as? CacheError) ?? .stateWrite(reason: "\(error)")
        }
        // Every restore this build made renamed or removed its temporary files.
        store.forgetTemporaries()
        do { try digester.flush() } catch { failure = failure ?? error }
        if let failure { throw failure }
    }

    private func warn(_ message: String) { notes.withLock { $0.append(message) } }

    // MARK: Keys

    /// The current key of `subtask` given its dependencies' result digests.
    package func key(for subtask: Subtask, dependencyDigests: [String: String]) throws(CacheError) -> CacheKey {
        let files = try InputGlob.inputFiles(of: subtask, root: plan.directory)
        var inputDigests: [String: String] = [:]
        for file in files {
            inputDigests[file] = try digester.digest(ofFile: absolute(file))
        }
        return CacheKey.make(
            for: subtask, in: plan, inputDigests: inputDigests, dependencyDigests: dependencyDigests,
            callerEnvironment: callerEnvironment)
    }

    // MARK: BuildCache

    package func decide(_ subtask: Subtask, dependencyDigests: [String: String], forced: Bool) async throws -> CacheDecision {
        let decision = try decideNow(subtask, dependencyDigests: dependencyDigests, forced: forced)
        if digester.pendingCount >= ContentCache.flushThreshold { try digester.flush() }
        return decision
    }

    /// `decide` without suspension points (also used by `explain`).
    package func decideNow(_ subtask: Subtask, dependencyDigests: [String: String], forced: Bool) throws(CacheError) -> CacheDecision {
        if !subtask.cache {
            return .run(reason: forced || forcedIDs.contains(subtask.id) ? .forced : .cacheDisabled, key: nil)
        }
        let key = try self.key(for: subtask, dependencyDigests: dependencyDigests)
        let decision = try verdict(subtask, key: key, forced: forced)
        // Kept for `record`, which only a subtask that runs reaches.
        if case .run = decision, !readOnly { decidedKeys.withLock { $0[subtask.id] = key } }
        return decision
    }

    /// The verdict for `subtask` with its current `key`.
    private func verdict(_ subtask: Subtask, key: CacheKey, forced: Bool) throws(CacheError) -> CacheDecision {
        if forced || forcedIDs.contains(subtask.id) { return .run(reason: .forced, key: key.key) }
        let last: HistoryEntry?
        do { last = try history.entry(for: subtask.id) } catch { throw .stateRead(reason: "\(error)") }

        if let last, last.key == key.key {
            if try outputsIntact(last.outputs) {
                return .upToDate(CachedOutcome(key: key.key, resultDigest: last.resultDigest, result: last.result, reason: .cached))
            }
            if let outcome = try restore(subtask, key: key) { return .upToDate(outcome) }
            return .run(reason: .outputsMissing, key: key.key)
        }
        if let outcome = try restore(subtask, key: key) { return .upToDate(outcome) }
        guard last != nil else { return .run(reason: .neverRan, key: key.key) }
        let previous: CacheKey?
        do { previous = try history.cacheKey(for: subtask.id) } catch { throw .stateRead(reason: "\(error)") }
        guard let previous else { return .run(reason: .definitionChanged, key: key.key) }
        return .run(reason: key.reason(comparedTo: previous, dependsOn: subtask.dependsOn) ?? .definitionChanged, key: key.key)
    }

    package func record(_ subtask: Subtask, key: String?, result: [UInt8]) async throws -> String {
        try recordNow(subtask, key: key, result: result)
    }

    package func commitPendingWrites() { history.commitQueued() }

    /// `record` without suspension points.
    package func recordNow(_ subtask: Subtask, key: String?, result: [UInt8]) throws(CacheError) -> String {
        // Outputs as the run left them (also checks they exist).
        var outputs: [OutputEntry] = []
        for path in subtask.outputs {
            guard let entry = try snapshot(path) else { throw .outputMissing(subtask: subtask.id, path: path) }
            outputs.append(entry)
        }
        let resultDigest = ContentCache.resultDigest(result: result, outputs: outputs)
        guard let key, !readOnly else { return resultDigest }

        // The key's components: recompute (inputs are in the stat cache, so
        // this is cheap) and check the key still matches what `decide` saw;
        // an input edited while the subtask ran gives a different key, and
        // then nothing is recorded, so the next build runs it again.
        guard let decided = decidedKeys.withLock({ $0[subtask.id] }), decided.key == key else {
            warn("no cache key was computed for `\(subtask.id)`; its result is not cached")
            return resultDigest
        }
        var depDigests: [String: String] = [:]
        for (name, digest) in decided.components where name.hasPrefix("dep:") {
            depDigests[String(name.dropFirst(4))] = digest
        }
        guard let current = try? self.key(for: subtask, dependencyDigests: depDigests), current.key == key else {
            warn("inputs of `\(subtask.id)` changed while it ran; it will run again next time")
            return resultDigest
        }

        // Store outputs and result; a failing store (disk full) costs only
        // the ability to restore, so it is a warning, not a failure.
        do {
            var stored: [OutputEntry] = []
            for entry in outputs { stored.append(try storeOutput(entry)) }
            outputs = stored
            let resultBlob = try store.putBlob(result)
            try store.putAction(key, ActionResult(
                resultDigest: resultDigest, resultBlob: resultBlob, outputs: outputs, components: current.components))
        } catch {
            warn("cannot store `\(subtask.id)` in the cache: \(error)")
        }
        do {
            try history.save(HistoryEntry(key: current, resultDigest: resultDigest, result: result, outputs: outputs), for: subtask.id)
        } catch {
            throw .stateWrite(reason: "\(error)")
        }
        if digester.pendingCount >= ContentCache.flushThreshold { try digester.flush() }
        return resultDigest
    }

    /// SHA-256 over a result's content digest and its outputs (path, kind,
    /// digest, and a file's permission bits when recorded, in path order):
    /// what dependents' keys see, so a dependent runs again when an output
    /// only changed its mode (a script made executable).
    package static func resultDigest(result: [UInt8], outputs: [OutputEntry]) -> String {
        var framer = FieldFramer()
        framer.add("planrun-result")
        framer.add(Digest.sha256Hex(result))
        for o in outputs.sorted(by: { byteOrder($0.path, $1.path) }) {
            framer.add(o.path)
            framer.add(o.kind.rawValue)
            framer.add(o.digest)
            if let mode = o.mode { framer.add("mode:" + String(mode, radix: 8)) }
        }
        return framer.digest
    }

    // MARK: Outputs

    package func absolute(_ relative: String) -> String {
        plan.directory.hasSuffix("/") ? plan.directory + relative : plan.directory + "/" + relative
    }

    /// The output at plan-relative `path` as it is now; nil when absent.
    /// The declared path itself is not followed: a link is a `symlink`
    /// output (its target text), never what it points to (DESIGN §9 rule 2).
    package func snapshot(_ path: String) throws(CacheError) -> OutputEntry? {
        let full = absolute(path)
        guard let st = FileStat.of(full, followSymlinks: false) else { return nil }
        switch st.kind {
        case .file:
            return OutputEntry(
                path: path, kind: .file, digest: try digester.digest(ofFile: full, stat: st), executable: st.isExecutable,
                mode: Int(st.mode & 0o777))
        case .directory:
            let manifest = try folderManifest(full)
            return OutputEntry(path: path, kind: .folder, digest: Digest.sha256Hex(manifest.bytes))
        case .symlink:
            let target = try ContentCache.linkTarget(full)
            return OutputEntry(path: path, kind: .symlink, digest: Digest.sha256Hex(Array(target.utf8)))
        case .other:
            throw .notAFile(path: path)
        }
    }

    /// The target text of the link at `path`. A target that is not UTF-8
    /// is an error: it could not be stored as it is (entries are JSON).
    static func linkTarget(_ path: String) throws(CacheError) -> String {
        var size = 1024
        while true {
            var buffer = [UInt8](repeating: 0, count: size)
            let n = buffer.withUnsafeMutableBufferPointer { readlink(path, $0.baseAddress!, size) }
            if n < 0 { throw .unreadable(path: path, reason: LocalCacheStore.errnoText()) }
            if n < size {
                guard let text = String(validating: buffer[0..<n], as: UTF8.self) else {
                    throw .unreadable(path: path, reason: "its link target is not UTF-8 text")
                }
                return text
            }
            size *= 2
        }
    }

    /// A folder's manifest: its files with their digests and permission
    /// bits, and its links with their target text. Nothing is followed:
    /// a link to a folder is a link, not the folder's files. A FIFO,
    /// socket or device in it is an error (`notAFile`).
    private func folderManifest(_ folder: String) throws(CacheError) -> FolderManifest {
        var files: [FolderManifest.File] = []
        try collect(folder, rel: "", into: &files)
        return FolderManifest(files: files)
    }

    private func collect(_ dir: String, rel: String, into files: inout [FolderManifest.File]) throws(CacheError) {
        for name in InputGlob.Walker.entries(of: dir) {
            let path = dir + "/" + name
            let childRel = rel.isEmpty ? name : rel + "/" + name
            guard let child = FileStat.of(path, followSymlinks: false) else { continue }
            switch child.kind {
            case .file:
                files.append(.init(
                    path: childRel, digest: try digester.digest(ofFile: path, stat: child), executable: child.isExecutable,
                    mode: Int(child.mode & 0o777)))
            case .directory:
                try collect(path, rel: childRel, into: &files)
            case .symlink:
                let target = try ContentCache.linkTarget(path)
                files.append(.init(path: childRel, digest: Digest.sha256Hex(Array(target.utf8)), executable: false, link: target))
            case .other:
                // A FIFO, socket or device cannot be stored as it is; leaving
                // it out would restore a different folder.
                throw .notAFile(path: path)
            }
        }
    }

    private func outputsIntact(_ recorded: [OutputEntry]) throws(CacheError) -> Bool {
        for entry in recorded {
            guard let now = try? snapshot(entry.path), entry.matches(now) else { return false }
        }
        return true
    }

    /// Copies an output into the CAS (a folder: its files and manifest; a
    /// link: its target text).
    private func storeOutput(_ entry: OutputEntry) throws(CacheError) -> OutputEntry {
        let full = absolute(entry.path)
        switch entry.kind {
        case .file:
            var stored = entry
            if !store.isStored(entry.digest) { stored.digest = try store.putFile(full) }
            return stored
        case .symlink:
            var stored = entry
            stored.digest = try store.putBlob(Array(try ContentCache.linkTarget(full).utf8))
            return stored
        case .folder:
            var manifest = try folderManifest(full)
            for (i, file) in manifest.files.enumerated() where file.link == nil && !store.isStored(file.digest) {
                manifest.files[i].digest = try store.putFile(full + "/" + file.path)
            }
            var stored = entry
            stored.digest = try store.putBlob(manifest.bytes)
            return stored
        }
    }

    // MARK: Restore

    /// Restores `subtask`'s outputs and result from `ac/KEY`; nil when the
    /// entry is absent, refers to missing or bad blobs, or names paths the
    /// subtask does not declare or that leave the plan folder. Read-only:
    /// reports what would be restored and changes nothing.
    private func restore(_ subtask: Subtask, key: CacheKey) throws(CacheError) -> CachedOutcome? {
        let action: ActionResult
        switch store.lookupAction(key.key) {
        case .found(let found): action = found
        case .absent: return nil
        case .refused(let reason):
            warn("\(reason); running `\(subtask.id)`")
            return nil
        }
        let declared = Set(subtask.outputs.map(PathSafety.normalized))
        let named = action.outputs.map { PathSafety.normalized($0.path) }
        guard Set(named) == declared, named.count == declared.count,
              action.outputs.allSatisfy({ PathSafety.isSafeRelative($0.path) })
        else {
            warn("cache entry for `\(subtask.id)` names paths the subtask does not declare; ignoring it")
            return nil
        }
        guard let result = store.blob(action.resultBlob),
              ContentCache.resultDigest(result: result, outputs: action.outputs) == action.resultDigest
        else { return nil }
        if readOnly {
            return action.outputs.allSatisfy({ store.hasBlob($0.digest) })
                ? CachedOutcome(key: key.key, resultDigest: action.resultDigest, result: result, reason: .restored) : nil
        }
        for entry in action.outputs {
            if let now = try? snapshot(entry.path), entry.matches(now) { continue }
            guard (try? restoreOutput(entry)) == true else {
                warn("cannot restore `\(entry.path)` of `\(subtask.id)` from the cache; running it")
                return nil
            }
        }
        do {
            try history.save(HistoryEntry(key: key, resultDigest: action.resultDigest, result: result, outputs: action.outputs), for: subtask.id)
        } catch {
            throw .stateWrite(reason: "\(error)")
        }
        return CachedOutcome(key: key.key, resultDigest: action.resultDigest, result: result, reason: .restored)
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
        let destination = try PathSafety.prepareDestination(entry.path, root: plan.directory)
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
                let target = try PathSafety.prepareDestination(entry.path + "/" + file.path, root: plan.directory)
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

/// Checks that keep restored paths inside the plan's folder.
package enum PathSafety {
    /// `a/./b/` -> `a/b`.
    package static func normalized(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }.joined(separator: "/")
    }

    /// Relative, no `..`, not empty, no NUL.
    package static func isSafeRelative(_ path: String) -> Bool {
        guard !path.hasPrefix("/"), !path.contains("\0") else { return false }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        return !parts.isEmpty && !parts.contains("..")
    }

    /// The absolute destination of plan-relative `path`, after creating its
    /// parent folders. Throws `pathEscapes` when the path is unsafe or a
    /// parent is (or links to) something outside `root`.
    package static func prepareDestination(_ path: String, root: String) throws(CacheError) -> String {
        guard isSafeRelative(path) else { throw .pathEscapes(path: path) }
        guard let realRoot = realPath(root) else { throw .missingFile(path: root) }
        let parts = normalized(path).split(separator: "/").map(String.init)
        var current = realRoot
        for part in parts.dropLast() {
            let next = current + "/" + part
            switch FileStat.of(next, followSymlinks: false)?.kind {
            case nil:
                if mkdir(next, 0o755) != 0 && errno != EEXIST {
                    throw .storeWrite(reason: "cannot create folder `\(next)`: \(LocalCacheStore.errnoText())")
                }
                current = next
            case .directory:
                current = next
            case .symlink:
                guard let resolved = realPath(next), resolved == realRoot || resolved.hasPrefix(realRoot + "/"),
                      FileStat.of(resolved)?.kind == .directory
                else { throw .pathEscapes(path: path) }
                current = resolved
            default:
                throw .notAFile(path: next)
            }
        }
        return current + "/" + parts.last!
    }

    /// The absolute path of plan-relative `path` for removal: its parent
    /// folders must resolve inside `root` (the last component itself is not
    /// followed, so a symlink output is removed, not its target). nil when
    /// a parent does not exist.
    package static func existingPath(_ path: String, root: String) throws(CacheError) -> String? {
        guard isSafeRelative(path) else { throw .pathEscapes(path: path) }
        guard let realRoot = realPath(root) else { return nil }
        let parts = normalized(path).split(separator: "/").map(String.init)
        let parent = ([realRoot] + parts.dropLast()).joined(separator: "/")
        guard let realParent = realPath(parent) else { return nil }
        guard realParent == realRoot || realParent.hasPrefix(realRoot + "/") else { throw .pathEscapes(path: path) }
        return realParent + "/" + parts.last!
    }

    package static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

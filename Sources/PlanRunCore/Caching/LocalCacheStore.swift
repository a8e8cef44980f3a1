import Crypto
import Synchronization
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The local content-addressed store in `.planrun/cache/`:
/// `ac/KEY` action results (JSON), `cas/DIGEST` blobs, `tmp/` for writes in
/// progress. Blobs are written to a temporary file and renamed into place,
/// so a reader sees a whole blob or none; a new `ac` entry is written in
/// place (`writeEntry`: a torn one does not parse). Every blob is checked against its
/// digest when read; a bad blob is removed (unless read-only) and reported
/// as missing. No fsync: a blob torn by a power cut fails its digest check
/// and an `ac` entry torn likewise fails to parse, so both read as misses.
package struct LocalCacheStore: Sendable {
    package let root: String
    /// A read-only store never writes or removes anything.
    package let readOnly: Bool
    private let seen = Seen()
    /// New `ac` entries waiting for the background writer; shared by the
    /// copies of this store (`LocalCacheStore+Background.swift`).
    let background = BackgroundEntries()

    /// What this store made or found during the build, so that each
    /// subtask's writes do not stat the same folders (`tmp/`, `cas/`,
    /// `ac/`) and the same blobs (an empty result) again. Only the write
    /// path trusts it (`isStored`); a restore checks the file itself.
    /// Locked: the remote prefetch's and upload tasks use the store
    /// alongside the build's loop.
    private final class Seen: Sendable {
        struct Sets {
            var folders: Set<String> = []
            var blobs: Set<String> = []
            /// Folders noted in this process's journal (`noteTemporaries`).
            var temporaryFolders: Set<String> = []
        }
        let sets = Mutex(Sets())
    }

    package init(root: String, readOnly: Bool = false) {
        self.root = root
        self.readOnly = readOnly
    }

    /// Creates folder `path` (and its parents) unless this store made or
    /// saw it already.
    private func ensureFolder(_ path: String) throws(CacheError) {
        if seen.sets.withLock({ $0.folders.contains(path) }) { return }
        try LocalCacheStore.makeDirectories(path)
        seen.sets.withLock { _ = $0.folders.insert(path) }
    }

    /// Whether blob `digest` is in the store, for a writer deciding to
    /// skip writing it: true for blobs this store wrote or found before.
    package func isStored(_ digest: String) -> Bool {
        if seen.sets.withLock({ $0.blobs.contains(digest) }) { return true }
        guard hasBlob(digest) else { return false }
        rememberBlob(digest)
        return true
    }

    private func rememberBlob(_ digest: String) {
        seen.sets.withLock { _ = $0.blobs.insert(digest) }
    }

    private func forgetBlob(_ digest: String) {
        seen.sets.withLock { _ = $0.blobs.remove(digest) }
    }

    /// `ac/KEY` and `cas/DIGEST` names are 64 lowercase hex digits.
    package static func isDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    package func blobPath(_ digest: String) -> String { root + "/cas/" + digest }
    package func actionPath(_ key: String) -> String { root + "/ac/" + key }

    // MARK: Action results

    /// The largest `ac` entry read (a hostile or broken file cannot fill memory); a larger one is
    /// refused, never read into memory.
    package static let actionSizeLimit = 1 << 20

    /// What `lookupAction` found.
    package enum ActionLookup: Sendable {
        case found(ActionResult)
        /// No entry, or one that does not parse (removed) or has an older format.
        case absent
        /// An entry that is not read: a link, a FIFO, a device, or larger
        /// than `actionSizeLimit`; the text says why.
        case refused(String)
    }

    /// The action result for `key`, or nil when absent, unreadable or refused.
    package func action(_ key: String) -> ActionResult? {
        if case .found(let result) = lookupAction(key) { return result }
        return nil
    }

    /// The action result for `key`. Read only if `ac/KEY` is a regular file
    /// of at most `actionSizeLimit` bytes (no link followed, no FIFO waited
    /// on); a corrupt entry is removed, and so is an entry of an older
    /// format (it records no file modes and no links; see `ActionResult`).
    package func lookupAction(_ key: String) -> ActionLookup {
        guard LocalCacheStore.isDigest(key) else { return .absent }
        waitForBackgroundWrites(entry: key)
        let bytes: [UInt8]
        switch FileBytes.readRegular(actionPath(key), limit: LocalCacheStore.actionSizeLimit) {
        case .absent: return .absent
        case .refused(let reason): return .refused("cache entry `\(actionPath(key))` refused: \(reason)")
        case .bytes(let read): bytes = read
        }
        // A manifest of discovered inputs is another kind of entry, not a corrupt one.
        if DiscoveredManifest.isManifest(bytes) { return .absent }
        guard let result = ActionResult.decode(bytes) else {
            remove(actionPath(key))
            return .absent
        }
        guard result.format == ActionResult.currentFormat, result.isWellFormed else {
            remove(actionPath(key))
            return .absent
        }
        return .found(result)
    }

    /// The manifest of discovered inputs at `ac/DECLARED_KEY`; nil when
    /// absent, refused (as `lookupAction` refuses) or not a manifest.
    package func manifest(_ declaredKey: String) -> DiscoveredManifest? {
        waitForBackgroundWrites()
        guard LocalCacheStore.isDigest(declaredKey),
              case .bytes(let bytes) = FileBytes.readRegular(actionPath(declaredKey), limit: LocalCacheStore.actionSizeLimit)
        else { return nil }
        return DiscoveredManifest.decode(bytes)
    }

    /// Writes the manifest at `ac/DECLARED_KEY` (its oldest sets are left
    /// out beyond `actionSizeLimit`; nothing is written when even one is larger).
    package func putManifest(_ declaredKey: String, _ manifest: DiscoveredManifest) throws(CacheError) {
        guard !readOnly, LocalCacheStore.isDigest(declaredKey), let bytes = manifest.jsonBytes() else { return }
        try writeAtomically(bytes, to: actionPath(declaredKey))
    }

    package func putAction(_ key: String, _ result: ActionResult) throws(CacheError) {
        guard !readOnly, LocalCacheStore.isDigest(key) else { return }
        try writeEntry(result.jsonBytes, to: actionPath(key))
    }

    /// Writes a new `ac` entry in place: one file created (`O_EXCL`, so no
    /// link is followed) and written, with no temporary file and no rename
    /// (every successful subtask writes one entry, so this is on the path
    /// of every record). An entry already there is replaced
    /// through a temporary file and a rename (`writeAtomically`), so a
    /// reader never sees a good entry torn. A kill during the first write
    /// leaves a truncated JSON object, which never parses: `lookupAction`
    /// reads it as a miss and removes it. Readers in this process do not
    /// run while the loop records a new key (the uploads read an entry
    /// only after it is written).
    private func writeEntry(_ bytes: [UInt8], to path: String) throws(CacheError) {
        let dir = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
        try ensureFolder(dir)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            if errno == EEXIST { return try writeAtomically(bytes, to: path) }
            throw .storeWrite(reason: "cannot create `\(path)`: \(LocalCacheStore.errnoText())")
        }
        do {
            try LocalCacheStore.writeAll(bytes, to: fd, path: path)
        } catch {
            close(fd)
            unlink(path)
            throw error
        }
        close(fd)
    }

    // MARK: Blobs

    package func hasBlob(_ digest: String) -> Bool {
        LocalCacheStore.isDigest(digest) && FileStat.of(blobPath(digest), followSymlinks: false)?.kind == .file
    }

    /// The blob's bytes if present, a regular file (no link followed) and
    /// intact; a blob whose content does not match its name is removed and
    /// reported as missing.
    package func blob(_ digest: String) -> [UInt8]? {
        guard LocalCacheStore.isDigest(digest), case .bytes(let bytes) = FileBytes.readRegular(blobPath(digest)) else {
            return nil
        }
        guard Digest.sha256Hex(bytes) == digest else {
            remove(blobPath(digest))
            forgetBlob(digest)
            return nil
        }
        return bytes
    }

    /// Stores bytes; returns their digest.
    @discardableResult
    package func putBlob(_ bytes: [UInt8]) throws(CacheError) -> String {
        let digest = Digest.sha256Hex(bytes)
        if readOnly || isStored(digest) { return digest }
        try writeAtomically(bytes, to: blobPath(digest))
        rememberBlob(digest)
        return digest
    }

    /// Copies a file into the store, hashing what it copies; returns the
    /// digest of the stored content.
    package func putFile(_ path: String) throws(CacheError) -> String {
        guard !readOnly else { return try FileDigester.sha256(ofFile: path) }
        try ensureFolder(root + "/cas")
        let temp = try makeTemp()
        let digest: String
        do {
            digest = try LocalCacheStore.copy(from: path, to: temp)
        } catch {
            remove(temp)
            throw error
        }
        if isStored(digest) {
            remove(temp)
        } else if rename(temp, blobPath(digest)) != 0 {
            let reason = LocalCacheStore.errnoText()
            remove(temp)
            throw .storeWrite(reason: reason)
        }
        rememberBlob(digest)
        return digest
    }

    /// Writes blob `digest` to the absolute `destination` (replacing it)
    /// through a temporary file beside it, checking the content on the way;
    /// the file gets exactly the permission bits `mode`. Returns false (and
    /// removes the bad blob) when the blob is missing or does not match its
    /// digest; nothing is written then.
    package func restoreBlob(_ digest: String, to destination: String, mode: mode_t) throws(CacheError) -> Bool {
        guard !readOnly, hasBlob(digest) else { return false }
        let temp = LocalCacheStore.temporaryName(besides: destination)
        let actual: String
        do {
            actual = try LocalCacheStore.copy(from: blobPath(digest), to: temp, mode: mode)
        } catch {
            remove(temp)
            throw error
        }
        guard actual == digest else {
            remove(temp)
            remove(blobPath(digest))
            forgetBlob(digest)
            return false
        }
        if rename(temp, destination) != 0 {
            let reason = LocalCacheStore.errnoText()
            remove(temp)
            throw .storeWrite(reason: "cannot restore `\(destination)`: \(reason)")
        }
        return true
    }

    /// `restoreBlob` with mode 0755 or 0644.
    package func restoreBlob(_ digest: String, to destination: String, executable: Bool) throws(CacheError) -> Bool {
        try restoreBlob(digest, to: destination, mode: executable ? 0o755 : 0o644)
    }

    /// Writes `bytes` to the absolute `destination` (replacing it) through a
    /// temporary file beside it, so a reader sees the old file or the new
    /// one; the file gets exactly the permission bits `mode`. The caller has
    /// checked the bytes against their digest.
    package static func replaceFile(_ destination: String, with bytes: [UInt8], mode: mode_t) throws(CacheError) {
        let temp = temporaryName(besides: destination)
        do {
            try writeFile(bytes, to: temp, mode: mode)
        } catch {
            unlink(temp)
            throw error
        }
        if rename(temp, destination) != 0 {
            let reason = errnoText()
            unlink(temp)
            throw .storeWrite(reason: "cannot restore `\(destination)`: \(reason)")
        }
    }

    /// Makes `destination` a symbolic link with target text `target`
    /// (replacing a file or link there; a folder there is an error): the
    /// link is made beside it and renamed into place.
    package static func replaceWithLink(_ destination: String, target: String) throws(CacheError) {
        let temp = temporaryName(besides: destination)
        guard symlink(target, temp) == 0 else {
            throw .storeWrite(reason: "cannot restore `\(destination)`: \(errnoText())")
        }
        if rename(temp, destination) != 0 {
            let reason = errnoText()
            unlink(temp)
            throw .storeWrite(reason: "cannot restore `\(destination)`: \(reason)")
        }
    }

    // MARK: Temporary files in the plan's folder

    /// `DESTINATION.planrun-tmp-PID-N`: where a restore writes before
    /// renaming into place.
    /// N counts up from a random start, once per process: unique within
    /// the process without a `getpid` and a `getrandom` per file, and as
    /// unlikely as a random N to meet what an earlier process of the same
    /// PID left (such a file is never overwritten: it is created
    /// `O_EXCL`).
    static func temporaryName(besides destination: String) -> String {
        let n = temporaryCounter.add(1, ordering: .relaxed).newValue
        return destination + temporaryMarker + temporaryPrefix + String(n)
    }

    private static let temporaryPrefix = "\(getpid())-"
    private static let temporaryCounter = Atomic<UInt64>(UInt64(UInt32.random(in: 0...UInt32.max)))

    static let temporaryMarker = ".planrun-tmp-"

    /// Whether a file name is one `temporaryName` makes (`NAME.planrun-tmp-PID-N`).
    package static func isTemporaryName(_ name: String) -> Bool {
        guard let marker = name.range(of: temporaryMarker) else { return false }
        let tail = name[marker.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
        return marker.lowerBound > name.startIndex && tail.count == 2
            && tail.allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
    }

    /// The journal of folders in the plan's folder where this process
    /// makes temporary files: `tmp/restores-PID`, folder paths ended by NUL.
    private var journalPath: String { root + "/tmp/restores-\(getpid())" }

    /// Notes, before a temporary file is made beside `destination`, the
    /// folder it is made in, so that after a kill the next command that
    /// opens the store (a build, `clean`) finds and removes it
    /// (`removeLeftovers`). Once per folder per build.
    package func noteTemporaries(besides destination: String) throws(CacheError) {
        guard !readOnly else { return }
        let folder = String(destination[..<(destination.lastIndex(of: "/") ?? destination.startIndex)])
        guard !folder.isEmpty, !seen.sets.withLock({ $0.temporaryFolders.contains(folder) }) else { return }
        try ensureFolder(root + "/tmp")
        let path = journalPath
        // Written under the lock: a concurrent restore in the same folder
        // makes its temporary file only once the line is in the journal.
        let failure: String? = seen.sets.withLock { sets in
            if sets.temporaryFolders.contains(folder) { return nil }
            let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
            guard fd >= 0 else { return LocalCacheStore.errnoText() }
            defer { close(fd) }
            let line = Array(folder.utf8) + [0]
            let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == line.count else { return written < 0 ? LocalCacheStore.errnoText() : "short write" }
            sets.temporaryFolders.insert(folder)
            return nil
        }
        if let failure { throw .storeWrite(reason: "cannot write `\(path)`: \(failure)") }
    }

    /// Drops this process's journal (`noteTemporaries`) once every restore
    /// has renamed or removed its temporary files (the build is over).
    package func forgetTemporaries() {
        guard !readOnly, seen.sets.withLock({ sets in
            defer { sets.temporaryFolders = [] }
            return !sets.temporaryFolders.isEmpty
        }) else { return }
        unlink(journalPath)
    }

    /// Removes what killed writers left: the temporary files in the folders
    /// their journals name (only inside `planDirectory`, only names
    /// `isTemporaryName` accepts, never through a link), then everything in
    /// `tmp/`. Call only while no other process writes the store or restores
    /// outputs (the build lock is held, or no build runs). `tmp/` itself is
    /// opened without following a link.
    package func removeLeftovers(planDirectory: String) {
        guard !readOnly else { return }
        let tmp = root + "/tmp"
        let fd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0, let dir = fdopendir(fd) else { return }
        defer { closedir(dir) }
        let planRoot = PathSafety.realPath(planDirectory)
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        for name in names where name.hasPrefix("restores-") {
            guard let planRoot, case .bytes(let bytes) = FileBytes.readRegular(tmp + "/" + name, limit: 64 << 20) else {
                continue
            }
            for folder in Set(bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }) {
                LocalCacheStore.removeTemporaries(in: folder, planRoot: planRoot)
            }
        }
        for name in names { unlinkat(fd, name, 0) }
    }

    /// Removes the files and links named like temporary files
    /// (`isTemporaryName`) in `folder`, when `folder` is inside the real
    /// path `planRoot` and has no link in its path. Nothing else is touched.
    package static func removeTemporaries(in folder: String, planRoot: String) {
        guard folder == planRoot || folder.hasPrefix(planRoot.hasSuffix("/") ? planRoot : planRoot + "/"),
              PathSafety.realPath(folder) == folder
        else { return }
        removeTemporaries(at: folder, followingLink: false)
    }

    /// Removes the files and links named like temporary files in `folder`
    /// (a link there is followed only when `followingLink`: the state
    /// folder itself may be a link).
    package static func removeTemporaries(at folder: String, followingLink: Bool) {
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (followingLink ? 0 : O_NOFOLLOW))
        guard fd >= 0, let dir = fdopendir(fd) else { return }
        defer { closedir(dir) }
        var doomed: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            guard isTemporaryName(name) else { continue }
            var st = stat()
            guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let type = st.st_mode & S_IFMT
            if type == S_IFREG || type == S_IFLNK { doomed.append(name) }
        }
        for name in doomed { unlinkat(fd, name, 0) }
    }

    // MARK: Files

    /// A new path in `tmp/` for a download in progress (removed by the
    /// caller, or by `removeLeftovers` after a kill).
    package func temporaryPath() throws(CacheError) -> String { try makeTemp() }

    private func makeTemp() throws(CacheError) -> String {
        try ensureFolder(root + "/tmp")
        return root + "/tmp/\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    }

    private func writeAtomically(_ bytes: [UInt8], to path: String) throws(CacheError) {
        let dir = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
        try ensureFolder(dir)
        let temp = try makeTemp()
        do {
            try LocalCacheStore.writeFile(bytes, to: temp)
        } catch {
            remove(temp)
            throw error
        }
        if rename(temp, path) != 0 {
            let reason = LocalCacheStore.errnoText()
            remove(temp)
            throw .storeWrite(reason: reason)
        }
    }

    private func remove(_ path: String) {
        guard !readOnly else { return }
        unlink(path)
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }

    static func makeDirectories(_ path: String) throws(CacheError) {
        if FileStat.of(path)?.kind == .directory { return }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw .storeWrite(reason: "cannot create folder `\(path)`: \(error.localizedDescription)")
        }
    }

    static func writeFile(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(CacheError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .storeWrite(reason: "cannot create `\(path)`: \(errnoText())") }
        defer { close(fd) }
        fchmod(fd, mode)  // the mode asked for, whatever the umask
        try writeAll(bytes, to: fd, path: path)
    }

    /// Writes all of `bytes` to `fd` (the file at `path`, for the message).
    static func writeAll(_ bytes: [UInt8], to fd: Int32, path: String) throws(CacheError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .storeWrite(reason: "cannot write `\(path)`: \(errnoText())")
            }
            offset += n
        }
    }

    /// Copies the regular file `source` to a new file `destination` and
    /// returns the SHA-256 of the bytes copied. A `source` that is a link,
    /// a FIFO or a device is refused (`notAFile`), never followed or
    /// waited on.
    static func copy(from source: String, to destination: String, mode: mode_t = 0o644) throws(CacheError) -> String {
        let input = open(source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard input >= 0 else {
            if errno == ELOOP { throw .notAFile(path: source) }
            throw .unreadable(path: source, reason: errnoText())
        }
        defer { close(input) }
        var st = stat()
        guard fstat(input, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { throw .notAFile(path: source) }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard output >= 0 else { throw .storeWrite(reason: "cannot create `\(destination)`: \(errnoText())") }
        defer { close(output) }
        fchmod(output, mode)
        var hasher = SHA256()
        let size = 256 * 1024
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(input, buffer.baseAddress, size)
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: source, reason: errnoText())
            }
            if n == 0 { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            hasher.update(bufferPointer: chunk)
            var offset = 0
            while offset < n {
                let w = write(output, chunk.baseAddress! + offset, n - offset)
                if w < 0 {
                    if errno == EINTR { continue }
                    throw .storeWrite(reason: "cannot write `\(destination)`: \(errnoText())")
                }
                offset += w
            }
        }
        return Digest.hex(hasher.finalize())
    }
}

import Crypto
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What `stat` says about a path; the parts the stat cache compares.
package struct FileStat: Sendable, Hashable {
    package enum Kind: Sendable, Hashable { case file, directory, symlink, other }

    package var kind: Kind
    package var size: Int64
    package var mtimeNs: Int64
    package var ctimeNs: Int64
    package var inode: UInt64
    package var device: UInt64
    package var mode: UInt32

    package var isExecutable: Bool { mode & 0o111 != 0 }

    /// `stat` (or `lstat` when `followSymlinks` is false); nil when the path
    /// does not exist or cannot be examined.
    package static func of(_ path: String, followSymlinks: Bool = true) -> FileStat? {
        var st = stat()
        let rc = followSymlinks ? stat(path, &st) : lstat(path, &st)
        guard rc == 0 else { return nil }
        return FileStat(st)
    }

    /// `of(path, followSymlinks:)`, noted in `log` when there is one.
    @inline(__always)
    package static func of(_ path: String, followSymlinks: Bool = true, log: StatLog?) -> FileStat? {
        let result = of(path, followSymlinks: followSymlinks)
        log?.note(path, followSymlinks: followSymlinks, result)
        return result
    }

    /// What a `stat` structure says.
    package init(_ st: stat) {
        let type = st.st_mode & S_IFMT
        kind = type == S_IFREG ? .file : type == S_IFDIR ? .directory : type == S_IFLNK ? .symlink : .other
        #if canImport(Darwin)
        mtimeNs = Int64(st.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(st.st_mtimespec.tv_nsec)
        ctimeNs = Int64(st.st_ctimespec.tv_sec) * 1_000_000_000 + Int64(st.st_ctimespec.tv_nsec)
        #else
        mtimeNs = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        ctimeNs = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        #endif
        size = Int64(st.st_size)
        inode = UInt64(st.st_ino)
        device = UInt64(st.st_dev)
        mode = UInt32(st.st_mode)
    }

    package init(kind: Kind, size: Int64, mtimeNs: Int64, ctimeNs: Int64, inode: UInt64, device: UInt64, mode: UInt32) {
        self.kind = kind
        self.size = size
        self.mtimeNs = mtimeNs
        self.ctimeNs = ctimeNs
        self.inode = inode
        self.device = device
        self.mode = mode
    }
}

/// One row of the stat cache (`file_digests`): a file's digest, valid while
/// its size, mtime, inode and ctime are unchanged.
package struct FileDigestRecord: Sendable, Hashable {
    package var path: String
    package var size: Int64
    package var mtimeNs: Int64
    package var inode: UInt64
    package var ctimeNs: Int64
    package var digest: String

    package init(path: String, size: Int64, mtimeNs: Int64, inode: UInt64, ctimeNs: Int64, digest: String) {
        self.path = path
        self.size = size
        self.mtimeNs = mtimeNs
        self.inode = inode
        self.ctimeNs = ctimeNs
        self.digest = digest
    }

    func matches(_ stat: FileStat) -> Bool {
        size == stat.size && mtimeNs == stat.mtimeNs && inode == stat.inode && ctimeNs == stat.ctimeNs
    }
}

/// Where the stat cache is persisted (the state database, or memory in tests).
package protocol DigestStore: Sendable {
    /// Every stored record, by absolute path.
    func loadAll() throws -> [String: FileDigestRecord]
    /// Inserts or replaces `records` and deletes `removed` paths, atomically.
    func save(_ records: [FileDigestRecord], removing removed: [String]) throws
}

/// A `DigestStore` kept in memory (tests, and `--no-state` style callers).
package final class InMemoryDigestStore: DigestStore {
    private let records = Mutex<[String: FileDigestRecord]>([:])

    package init(_ initial: [FileDigestRecord] = []) {
        records.withLock { dict in for r in initial { dict[r.path] = r } }
    }

    package func loadAll() throws -> [String: FileDigestRecord] { records.withLock { $0 } }

    package func save(_ new: [FileDigestRecord], removing removed: [String]) throws {
        records.withLock { dict in
            for path in removed { dict[path] = nil }
            for r in new { dict[r.path] = r }
        }
    }
}

/// Content digests (SHA-256, streamed) of files, reused from the stat cache
/// while size, mtime, inode and ctime are unchanged.
///
/// Racy-timestamp guard (as git's racy-git check): a file whose mtime or
/// ctime is within `racyWindowNs` of the moment it was hashed could be
/// modified again within the same timestamp tick without its stat changing,
/// so such a digest is used for this call but never stored; the file is
/// hashed again next time. Records are kept in memory until `flush()`; a
/// read-only digester (`explain`, `plan`, `status`) never writes them.
package final class FileDigester: Sendable {
    /// 2 s covers the coarsest common timestamp resolution (FAT), and is far
    /// above ext4/APFS's.
    package static let defaultRacyWindowNs: Int64 = 2_000_000_000

    private struct State {
        var known: [String: FileDigestRecord]?
        var pending: [String: FileDigestRecord] = [:]
        var removed: Set<String> = []
        var hashCount = 0
    }

    private let store: any DigestStore
    private let readOnly: Bool
    private let racyWindowNs: Int64
    private let state = Mutex(State())

    package init(store: any DigestStore, readOnly: Bool = false, racyWindowNs: Int64 = FileDigester.defaultRacyWindowNs) {
        self.store = store
        self.readOnly = readOnly
        self.racyWindowNs = racyWindowNs
    }

    /// How many files were actually read and hashed (not taken from the cache).
    package var hashCount: Int { state.withLock { $0.hashCount } }

    /// Records waiting for `flush()`.
    package var pendingCount: Int { state.withLock { $0.pending.count + $0.removed.count } }

    /// The digest of the regular file at the absolute `path` (symlinks
    /// followed). The stats it takes are noted in `log`.
    package func digest(ofFile path: String, log: StatLog? = nil) throws(CacheError) -> String {
        guard let before = FileStat.of(path, log: log) else { throw .missingFile(path: path) }
        return try digest(ofFile: path, stat: before, log: log)
    }

    /// As `digest(ofFile:)`, given what `FileStat.of(path)` (symlinks
    /// followed) just returned, so a caller that has it stats only once.
    package func digest(ofFile path: String, stat before: FileStat, log: StatLog? = nil) throws(CacheError) -> String {
        guard before.kind == .file else {
            throw before.kind == .directory ? .isDirectory(path: path) : .notAFile(path: path)
        }
        if let record = try cachedRecord(path), record.matches(before) { return record.digest }

        let hashedAt = FileDigester.now()
        let digest = try FileDigester.sha256(ofFile: path)
        let after = FileStat.of(path, log: log)
        let stable = after.map { $0.size == before.size && $0.mtimeNs == before.mtimeNs && $0.inode == before.inode && $0.ctimeNs == before.ctimeNs } ?? false
        let racy = before.mtimeNs >= hashedAt - racyWindowNs || before.ctimeNs >= hashedAt - racyWindowNs
        state.withLock { s in
            s.hashCount += 1
            if stable && !racy {
                let record = FileDigestRecord(
                    path: path, size: before.size, mtimeNs: before.mtimeNs, inode: before.inode,
                    ctimeNs: before.ctimeNs, digest: digest)
                s.known?[path] = record
                s.pending[path] = record
                s.removed.remove(path)
            } else if s.known?[path] != nil {
                s.known?[path] = nil
                s.pending[path] = nil
                s.removed.insert(path)
            }
        }
        return digest
    }

    /// Writes new and stale records to the store (no-op when read-only).
    package func flush() throws(CacheError) {
        guard !readOnly else { return }
        let (pending, removed) = state.withLock { s in
            let out = (Array(s.pending.values), Array(s.removed))
            s.pending = [:]
            s.removed = []
            return out
        }
        guard !pending.isEmpty || !removed.isEmpty else { return }
        do {
            try store.save(pending.sorted { $0.path < $1.path }, removing: removed.sorted())
        } catch {
            throw .stateWrite(reason: "\(error)")
        }
    }

    private func cachedRecord(_ path: String) throws(CacheError) -> FileDigestRecord? {
        // Looked up under the lock: copying the dictionary out would cost a
        // retain and release per file.
        let (isLoaded, record) = state.withLock { s in (s.known != nil, s.known?[path]) }
        if isLoaded { return record }
        let loaded: [String: FileDigestRecord]
        do { loaded = try store.loadAll() } catch { throw .stateRead(reason: "\(error)") }
        return state.withLock { s in
            if s.known == nil { s.known = loaded }
            return s.known?[path]
        }
    }

    /// Wall-clock time in nanoseconds (the clock file timestamps use).
    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// SHA-256 of a file's content, read in 256 KiB chunks.
    package static func sha256(ofFile path: String) throws(CacheError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var hasher = SHA256()
        let size = 256 * 1024
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress, size)
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return Digest.hex(hasher.finalize())
    }
}

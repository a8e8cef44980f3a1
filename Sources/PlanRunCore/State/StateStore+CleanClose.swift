#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GRDB
#if canImport(GRDBSQLite)
import GRDBSQLite
#elseif canImport(SQLite3)
import SQLite3
#endif
import Synchronization

/// When `verify` may skip SQLite's `quick_check`, which reads every page of
/// the database: when `state.db` is exactly as a planrun process left it
/// when it closed the database in order.
///
/// A process that opened the database for writing and found it sound
/// records, when it exits in order, the identity of the file it closed
/// (device, inode, size, modification and change times) in
/// `state.db-checked`, provided no write-ahead log is left (every commit is
/// then in the main file, written by SQLite's own transactions). The next
/// open trusts the file when it still has that identity and no log with
/// frames is beside it. Anything else that touches the file (a write or a
/// truncation by hand, a copy over it, a kill that left a log) changes its
/// change time or leaves a log, which no user can undo, so the check runs.
/// A change within the same timestamp tick as the recorded one could keep
/// the change time: the record is kept only when its own modification
/// time is later than the database's change time (the writer waits for
/// the clock to move on, a few milliseconds at most), and it is checked
/// again on every read.
///
/// Format: one line, `PLANRUN-STATE-CHECKED-1 DEV INODE SIZE MTIME_NS
/// CTIME_NS`. A record that does not parse, a link or anything but a
/// regular file counts as no record.
extension StateStore {
    /// The record's name: the database's, with this suffix.
    package static let cleanCloseSuffix = "-checked"
    private static let cleanCloseMagic = "PLANRUN-STATE-CHECKED-1"

    /// What identifies the database file's content without reading it.
    struct FileIdentity: Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var mtimeNs: Int64
        var ctimeNs: Int64

        init(_ st: stat) {
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
            size = Int64(st.st_size)
            mtimeNs = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
            ctimeNs = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        }

        init(device: UInt64, inode: UInt64, size: Int64, mtimeNs: Int64, ctimeNs: Int64) {
            self.device = device
            self.inode = inode
            self.size = size
            self.mtimeNs = mtimeNs
            self.ctimeNs = ctimeNs
        }

        /// The regular file at `path` (not followed if a link); nil otherwise.
        static func of(_ path: String) -> FileIdentity? {
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
            return FileIdentity(st)
        }
    }

    /// Whether no write-ahead log with frames is beside the database at
    /// `path` (none, or an empty one: every commit is in the main file).
    static func hasNoLog(_ path: String) -> Bool {
        var st = stat()
        if lstat(path + "-wal", &st) != 0 { return errno == ENOENT }
        return (st.st_mode & S_IFMT) == S_IFREG && st.st_size == 0
    }

    /// Whether the database at `path` is as a planrun process left it when
    /// it closed it in order (see above).
    package static func isUnchangedSinceCleanClose(_ path: String) -> Bool {
        guard hasNoLog(path), let current = FileIdentity.of(path) else { return false }
        let fd = open(path + cleanCloseSuffix, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size < 256 else { return false }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0, let recorded = parseRecord(buffer[0..<n]) else { return false }
        return recorded == current && FileIdentity(st).mtimeNs > current.ctimeNs
    }

    static func parseRecord(_ bytes: ArraySlice<UInt8>) -> FileIdentity? {
        let fields = String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 6, fields[0] == cleanCloseMagic,
              let device = UInt64(fields[1]), let inode = UInt64(fields[2]), let size = Int64(fields[3]),
              let mtime = Int64(fields[4]), let ctime = Int64(fields[5]) else { return nil }
        return FileIdentity(device: device, inode: inode, size: size, mtimeNs: mtime, ctimeNs: ctime)
    }

    /// Databases this process opened for writing and found sound: their
    /// records are written when it exits in order.
    private static let openedForWriting = Mutex<(registered: Bool, paths: Set<String>)>((false, []))

    /// Records the database at `path` when this process exits in order
    /// (`exit`, or returning from `main`; not a kill or a crash).
    static func recordCleanCloseAtExit(_ path: String) {
        let register = openedForWriting.withLock { state -> Bool in
            state.paths.insert(path)
            defer { state.registered = true }
            return !state.registered
        }
        if register { atexit { StateStore.recordCleanCloses() } }
    }

    private static func recordCleanCloses() {
        let paths = openedForWriting.withLock { $0.paths }
        for path in paths { recordCleanClose(path) }
    }

    /// Writes the record for the database at `path` if it is closed (no
    /// log with frames); else removes any record.
    package static func recordCleanClose(_ path: String) {
        let recordPath = path + cleanCloseSuffix
        guard hasNoLog(path), let identity = FileIdentity.of(path) else {
            unlink(recordPath)
            return
        }
        let fd = open(recordPath, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            return
        }
        var line = "\(cleanCloseMagic) \(identity.device) \(identity.inode) \(identity.size) \(identity.mtimeNs) \(identity.ctimeNs)\n"
        let written = line.withUTF8 { write(fd, $0.baseAddress, $0.count) == $0.count }
        // The record counts only once the clock is past the database's
        // last change: touched again until its own time is later.
        var later = false
        if written {
            for _ in 0..<20 {
                if fstat(fd, &st) == 0, FileIdentity(st).mtimeNs > identity.ctimeNs {
                    later = true
                    break
                }
                usleep(1000)
                _ = futimens(fd, nil)
            }
        }
        close(fd)
        if !later { unlink(recordPath) }
    }
}

extension StateStore {
    /// The largest size, in bytes, a write-ahead log is cut back to when it
    /// restarts (SQLite's `journal_size_limit`).
    static let logSizeLimit = 4 << 20

    /// Makes the writer's clean close keep `-wal` and `-shm` instead of
    /// deleting them (SQLite's persistent-WAL mode): the close still
    /// checkpoints every frame into the main file and syncs it, then, since
    /// `journal_size_limit` is set, truncates the log to zero bytes. So the
    /// closed database reads as before (no log with frames: `hasNoLog`,
    /// `isUnchangedSinceCleanClose`, `openReadOnly` opening it immutable),
    /// and the next build reuses both files instead of creating them again.
    /// A kill or a power cut before the truncation leaves frames already
    /// in the synced main file, which the next open replays harmlessly.
    static func keepLogAtClose(_ db: Database) throws {
        try db.execute(sql: "PRAGMA journal_size_limit = \(logSizeLimit)")
        var persist: CInt = 1
        let code = withUnsafeMutablePointer(to: &persist) {
            sqlite3_file_control(db.sqliteConnection, nil, SQLITE_FCNTL_PERSIST_WAL, $0)
        }
        guard code == SQLITE_OK else {
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: "cannot keep the write-ahead log")
        }
    }
}

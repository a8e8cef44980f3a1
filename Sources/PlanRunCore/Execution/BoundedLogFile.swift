#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One attempt's output in its log file, kept to at most `limit` bytes so
/// that a log never grows without bound: the first `limit / 2` bytes and
/// the last `limit - limit / 2`, with a line between them saying how many
/// bytes were dropped.
///
/// Up to `limit` bytes, output goes straight to the log (appended after the
/// earlier attempts' output), so the log is complete while the attempt
/// runs. Past it, the log is cut back to the first half, and the last half
/// of the output is kept in a ring file beside the log (`LOG.tail`, on
/// disk, not in memory); `close` appends the line and the ring, in order,
/// and removes the ring. A planrun killed meanwhile leaves the ring in the
/// run's log folder, which is pruned with the run.
///
/// Not thread-safe: its owner (`LogSink`) serialises calls.
package struct BoundedLogFile {
    /// The default limit: 64 MiB of output per attempt.
    package static let defaultLimit = 64 << 20

    let path: String
    let limit: Int
    /// Kept from the start of the attempt's output, and from its end.
    var headSize: Int { limit / 2 }
    var tailSize: Int { limit - limit / 2 }
    /// The log could not be opened or written; nothing more is written.
    private(set) var failed = false
    private var fd: Int32 = -1
    private var ringFD: Int32 = -1
    /// Where this attempt's output starts in the log.
    private var base: off_t = 0
    /// Bytes of output seen (kept or not).
    private(set) var total = 0

    init(path: String, limit: Int = BoundedLogFile.defaultLimit) {
        self.path = path
        self.limit = max(2, limit)
    }

    var ringPath: String { path + ".tail" }

    /// Appends output; `header` is written first when the log is opened
    /// (on the first byte).
    mutating func append(_ bytes: UnsafeRawBufferPointer, header: [UInt8]?) {
        guard !failed, !bytes.isEmpty else { return }
        if fd < 0 {
            fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)  // read too: the tail moves to the ring
            guard fd >= 0 else { failed = true; return }
            if let header { ProcessCommandRunner.writeAll(fd, header) }
            base = lseek(fd, 0, SEEK_END)
        }
        var rest = bytes
        if ringFD < 0 {
            let room = limit - total
            if rest.count <= room {
                ProcessCommandRunner.writeAll(fd, rest)
                total += rest.count
                return
            }
            ProcessCommandRunner.writeAll(fd, UnsafeRawBufferPointer(rebasing: rest[0..<room]))
            total += room
            rest = UnsafeRawBufferPointer(rebasing: rest[room...])
            guard startRing() else { failed = true; return }
        }
        // Byte `n` of the output (n >= headSize) lives at (n - headSize) % tailSize.
        while !rest.isEmpty {
            let at = (total - headSize) % tailSize
            let n = min(rest.count, tailSize - at)
            guard writeAll(ringFD, UnsafeRawBufferPointer(rebasing: rest[0..<n]), at: at) else { failed = true; return }
            total += n
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
        }
    }

    /// The output reached `limit`: its bytes past the head move to the
    /// ring (filling it exactly) and the log is cut back to the head.
    private mutating func startRing() -> Bool {
        ringFD = open(ringPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard ringFD >= 0 else { return false }
        guard copy(from: fd, at: Int(base) + headSize, count: tailSize, to: ringFD, at: 0) else { return false }
        return ftruncate(fd, base + off_t(headSize)) == 0
    }

    /// Finishes the log: the dropped-bytes line and the ring's bytes, oldest first.
    mutating func close() {
        defer {
            if fd >= 0 { _ = Glibc.close(fd) }
            if ringFD >= 0 {
                _ = Glibc.close(ringFD)
                unlink(ringPath)
            }
            fd = -1
            ringFD = -1
        }
        guard ringFD >= 0, fd >= 0, !failed else { return }
        let dropped = total - limit
        let line = "\n... planrun dropped \(dropped) bytes of output here (a log keeps the first \(headSize) "
            + "and the last \(tailSize) bytes of each attempt) ...\n"
        ProcessCommandRunner.writeAll(fd, Array(line.utf8))
        let start = (total - headSize) % tailSize
        let end = Int(lseek(fd, 0, SEEK_END))
        _ = copy(from: ringFD, at: start, count: tailSize - start, to: fd, at: end)
        _ = copy(from: ringFD, at: 0, count: start, to: fd, at: end + tailSize - start)
    }

    private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 { if errno == EINTR { continue }; return false }
            done += n
        }
        return true
    }

    private func copy(from source: Int32, at from: Int, count: Int, to destination: Int32, at to: Int) -> Bool {
        let size = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        var done = 0
        while done < count {
            let n = pread(source, buffer.baseAddress, min(size, count - done), off_t(from + done))
            if n < 0 { if errno == EINTR { continue }; return false }
            if n == 0 { return false }
            guard writeAll(destination, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), at: to + done) else { return false }
            done += n
        }
        return true
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads small files with `open` and `read`: a missing file costs one
/// failed `open` (the common case for a cache lookup that misses, and for
/// an agent's result file), without the layers of Foundation that
/// `FileManager.contents(atPath:)` adds on top.
package enum FileBytes {
    /// At most `limit` bytes of the file at `path`; nil if it cannot be
    /// opened or read.
    package static func read(_ path: String, limit: Int = Int.max) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = close(fd) }
        return readOpen(fd, limit: limit)
    }
}

extension FileBytes {
    /// What `readRegular` found.
    package enum Outcome: Sendable, Equatable {
        case bytes([UInt8])
        case absent
        /// Not read: a link, a FIFO, a device or a folder, larger than the
        /// limit, or unreadable; the text says which.
        case refused(String)
    }

    /// The bytes of the file at `path` if it is a regular file of at most
    /// `limit` bytes. The last component is not followed (`O_NOFOLLOW`),
    /// and opening does not block (`O_NONBLOCK`: a FIFO is refused, not
    /// waited on). For planrun's own files in the state folder.
    package static func readRegular(_ path: String, limit: Int = Int.max) -> Outcome {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else {
            switch errno {
            case ENOENT, ENOTDIR: return .absent
            case ELOOP: return .refused("it is a symbolic link")
            default: return .refused(String(cString: strerror(errno)))
            }
        }
        defer { _ = close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .refused(String(cString: strerror(errno))) }
        guard st.st_mode & S_IFMT == S_IFREG else { return .refused("it is not a regular file") }
        guard Int64(st.st_size) <= Int64(limit) else { return .refused("it is larger than \(limit) bytes") }
        // The file may grow after `fstat`; read one byte past the limit to see it.
        guard let bytes = readOpen(fd, limit: limit == Int.max ? limit : limit + 1) else {
            return .refused(String(cString: strerror(errno)))
        }
        guard bytes.count <= limit else { return .refused("it is larger than \(limit) bytes") }
        return .bytes(bytes)
    }

    /// At most `limit` bytes read from `fd`; nil on a read error.
    private static func readOpen(_ fd: Int32, limit: Int) -> [UInt8]? {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: min(limit, 64 * 1024))
        while out.count < limit {
            let want = min(chunk.count, limit - out.count)
            let n = chunk.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress, want) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }
}

private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buffer, count)
}

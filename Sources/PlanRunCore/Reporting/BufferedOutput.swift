#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Text for a file descriptor, kept until `flush` (or until 64 KiB are
/// waiting): progress of a build goes out in a few `write` calls per burst
/// of events instead of one per line. Called from one thread at a time
/// (the executor's loop, then the command after it).
package final class BufferedOutput: @unchecked Sendable {
    private let fd: Int32
    private var pending: [UInt8] = []
    private static let limit = 64 * 1024

    package init(fd: Int32) {
        self.fd = fd
        pending.reserveCapacity(Self.limit)
    }

    package func write(_ text: String) {
        pending.append(contentsOf: text.utf8)
        if pending.count >= Self.limit { flush() }
    }

    /// Writes what is waiting (`writeAll`).
    package func flush() {
        guard !pending.isEmpty else { return }
        pending.withUnsafeBytes { Self.writeAll(fd, $0) }
        pending.removeAll(keepingCapacity: true)
    }

    /// Writes `bytes` to `fd` with `write(2)`; a closed reader (EPIPE,
    /// SIGPIPE is ignored) drops the rest instead of raising.
    package static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let n = systemWrite(fd, base + offset, bytes.count - offset)
            if n < 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }

    deinit { flush() }
}

private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, bytes, count)
}

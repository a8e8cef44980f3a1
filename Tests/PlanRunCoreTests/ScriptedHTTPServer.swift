#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// A small HTTP/1.1 server on a free loopback port whose answers a test
/// scripts, including hostile ones: a body sent one byte at a time, a body
/// larger than its `Content-Length` promises or without one, a redirect.
/// Each connection is served on its own thread and closed after one answer.
final class ScriptedHTTPServer: Sendable {
    struct Answer: Sendable {
        var status = 200
        var headers: [(String, String)] = []
        var body: [UInt8] = []
        /// Sends `Content-Length` (the body's size) when true.
        var sendsLength = true
        /// Waits this long between two bytes of the body (a slow server).
        var delayPerByte: Duration?

        static func ok(_ body: [UInt8], sendsLength: Bool = true) -> Answer {
            Answer(body: body, sendsLength: sendsLength)
        }
        static let notFound = Answer(status: 404)
        static let serverError = Answer(status: 500)
        static func redirect(_ location: String) -> Answer {
            Answer(status: 302, headers: [("Location", location)])
        }
    }

    let port: UInt16
    var url: String { "http://127.0.0.1:\(port)" }
    private let listener: Int32
    private let answer: @Sendable (_ method: String, _ path: String) -> Answer
    private let log = Mutex<[String]>([])
    private let stopped = Atomic<Bool>(false)

    /// `answer` decides each request's answer from its method and path.
    init(answer: @escaping @Sendable (_ method: String, _ path: String) -> Answer) throws {
        self.answer = answer
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ServerError.socket }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound, listen(fd, 64) == 0 else {
            close(fd)
            throw ServerError.socket
        }
        listener = fd
        port = UInt16(bigEndian: address.sin_port)
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    enum ServerError: Error { case socket }

    /// The requests served so far, as `METHOD /path`.
    var requests: [String] { log.withLock { $0 } }

    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    deinit { stop() }

    private func acceptLoop() {
        while !stopped.load(ordering: .acquiring) {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let thread = Thread { [self] in serve(client) }
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        guard let (method, path, bodyLength, alreadyRead) = readHead(fd) else { return }
        // Read (and drop) the request body.
        var remaining = bodyLength - alreadyRead
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while remaining > 0 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, remaining)) }
            if n <= 0 { return }
            remaining -= n
        }
        log.withLock { $0.append("\(method) \(path)") }
        let a = answer(method, path)
        var head = "HTTP/1.1 \(a.status) Status\r\nConnection: close\r\n"
        for (name, value) in a.headers { head += "\(name): \(value)\r\n" }
        if a.sendsLength { head += "Content-Length: \(a.body.count)\r\n" }
        head += "\r\n"
        guard send(fd, Array(head.utf8)) else { return }
        if let delay = a.delayPerByte {
            for byte in a.body {
                if stopped.load(ordering: .acquiring) || !send(fd, [byte]) { return }
                Thread.sleep(forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
            }
        } else {
            _ = send(fd, a.body)
        }
    }

    /// Method, path, `Content-Length` and the body bytes read with the head.
    private func readHead(_ fd: Int32) -> (String, String, Int, Int)? {
        var data: [UInt8] = []
        var byte: UInt8 = 0
        while !(data.count >= 4 && data.suffix(4) == [13, 10, 13, 10]) {
            guard read(fd, &byte, 1) == 1 else { return nil }
            data.append(byte)
        }
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\r\n")
        guard let first = lines.first else { return nil }
        let parts = first.split(separator: " ")
        guard parts.count >= 2 else { return nil }
        var length = 0
        for line in lines.dropFirst() {
            let pair = line.split(separator: ":", maxSplits: 1)
            if pair.count == 2, pair[0].lowercased() == "content-length" {
                length = Int(pair[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
        }
        return (String(parts[0]), String(parts[1]), length, 0)
    }

    private func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
}

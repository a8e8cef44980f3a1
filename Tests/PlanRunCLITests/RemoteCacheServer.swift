#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A real nginx serving a WebDAV `PUT`-enabled folder on a free loopback
/// port: the remote cache of the end-to-end tests. Runs in the foreground
/// without a master process (so it stays one process, as the current user)
/// with every path in its own temporary folder; `stop()` ends it.
final class NginxServer: @unchecked Sendable {
    // @unchecked: created and stopped by the one test that owns it.
    let process = Process()
    let folder: URL
    /// What the server serves: `root/ac/KEY`, `root/cas/DIGEST`.
    let root: URL
    let port: UInt16
    var url: String { "http://127.0.0.1:\(port)" }

    static let binary: String? = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }
    static var isInstalled: Bool { binary != nil }

    /// `locations`: extra nginx `location` blocks (to make a failing
    /// server); `http`: extra directives of the `http` block they may need.
    init(locations: String = "", http: String = "") throws {
        folder = try PlanRunBinary.temporaryDirectory()
        root = folder.appendingPathComponent("root")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("tmp"), withIntermediateDirectories: true)
        port = try Self.freePort()
        let f = folder.path
        let config = """
            daemon off;
            master_process off;
            worker_processes 1;
            pid \(f)/nginx.pid;
            error_log \(f)/error.log;
            events { worker_connections 256; }
            http {
              access_log \(f)/access.log;
              client_body_temp_path \(f)/tmp;
              proxy_temp_path \(f)/tmp;
              fastcgi_temp_path \(f)/tmp;
              uwsgi_temp_path \(f)/tmp;
              scgi_temp_path \(f)/tmp;
              \(http)
              server {
                listen 127.0.0.1:\(port);
                root \(root.path);
                \(locations)
                location / { dav_methods PUT; create_full_put_path on; client_max_body_size 0; }
              }
            }
            """
        try config.write(to: folder.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: try #require(Self.binary))
        process.arguments = ["-e", "\(f)/error.log", "-p", f, "-c", "\(f)/nginx.conf"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready once it accepts connections.
        let deadline = Date().addingTimeInterval(10)
        while !Self.accepts(port) {
            guard process.isRunning, Date() < deadline else {
                let log = (try? String(contentsOf: folder.appendingPathComponent("error.log"), encoding: .utf8)) ?? ""
                stop()
                throw ServerError(message: "nginx did not start: \(log)")
            }
            usleep(20_000)
        }
    }

    struct ServerError: Error, CustomStringConvertible { var message: String; var description: String { message } }

    func stop() {
        if process.isRunning {
            // SIGKILL, not terminate(): Foundation's Process does not reset
            // the signal mask, so a child started from a libdispatch worker
            // thread inherits SIGTERM blocked, and nginx with
            // `master_process off` never unblocks it (the stop would hang).
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: folder)
    }

    deinit { stop() }

    /// Files under the served folder, as `ac/KEY` / `cas/DIGEST`.
    /// The requests served so far, as `METHOD PATH STATUS` (`GET /ac/… 200`).
    func requests() -> [String] {
        let log = (try? String(contentsOf: folder.appendingPathComponent("access.log"), encoding: .utf8)) ?? ""
        return log.split(separator: "\n").compactMap { line in
            // 127.0.0.1 - - [time] "GET /ac/KEY HTTP/1.1" 200 …
            let quoted = line.split(separator: "\"")
            guard quoted.count >= 3 else { return nil }
            let request = quoted[1].split(separator: " ")
            guard request.count >= 2, let status = quoted[2].split(separator: " ").first else { return nil }
            return "\(request[0]) \(request[1]) \(status)"
        }
    }

    func storedFiles() -> [String] {
        let base = root.path + "/"
        let walker = FileManager.default.enumerator(atPath: root.path)
        var out: [String] = []
        while let name = walker?.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: base + name, isDirectory: &isDir), !isDir.boolValue { out.append(name) }
        }
        return out.sorted()
    }

    /// A port nothing listens on right now (bound, then released).
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ServerError(message: "socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw ServerError(message: "bind failed") }
        return UInt16(bigEndian: address.sin_port)
    }

    static func accepts(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

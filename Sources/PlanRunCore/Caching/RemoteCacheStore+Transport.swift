import Foundation
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Crypto
#if canImport(Glibc)
import Glibc
#endif

/// The HTTP transport of `RemoteCacheStore`: exchanges over the shared
/// keep-alive client (`HTTPClients.remoteCache`) with a total deadline,
/// answers streamed into bounded sinks, redirects kept on the same origin.
extension RemoteCacheStore {
    /// Scheme, host and port of a URL (the port a scheme implies when none
    /// is written): where redirects may go.
    struct Origin: Sendable, Equatable {
        var scheme: String
        var host: String
        var port: Int

        init?(_ url: URL) {
            guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
                  let host = url.host?.lowercased(), !host.isEmpty
            else { return nil }
            self.scheme = scheme
            self.host = host
            port = url.port ?? (scheme == "https" ? 443 : 80)
        }
    }

    /// Where a 200 answer's body goes while it arrives: called by the task
    /// that reads the body, one call at a time.
    protocol ResponseSink: AnyObject, Sendable {
        /// The most bytes it takes.
        var limit: Int { get }
        /// Takes the next bytes; false when they cannot be kept.
        func write(_ bytes: UnsafeRawBufferPointer) -> Bool
    }

    /// A body of at most `limit` bytes, kept in memory (an `ac` entry) or
    /// dropped (an upload's answer).
    final class MemorySink: ResponseSink, @unchecked Sendable {
        // @unchecked: written only by the task that reads the body, and
        // read only after that task returned its answer.
        let limit: Int
        private let keeps: Bool
        private(set) var bytes: [UInt8] = []
        init(limit: Int, keeps: Bool = true) {
            self.limit = limit
            self.keeps = keeps
        }
        func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
            if keeps { self.bytes.append(contentsOf: bytes) }
            return true
        }
    }

    /// The most of an upload's answer read (and dropped).
    static let answerLimit = 64 * 1024

    /// A body streamed to a new file, hashed on the way.
    final class FileSink: ResponseSink, @unchecked Sendable {
        // @unchecked: as `MemorySink`.
        let limit: Int
        private let path: String
        private var fd: Int32 = -1
        private var failed = false
        private var hasher = SHA256()
        init(path: String, limit: Int) {
            self.path = path
            self.limit = limit
        }

        func write(_ raw: UnsafeRawBufferPointer) -> Bool {
            if fd < 0, !failed {
                fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
                if fd < 0 { failed = true }
            }
            guard !failed else { return false }
            guard raw.count > 0 else { return true }
            hasher.update(bufferPointer: raw)
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failed = true
                    return false
                }
                done += n
            }
            return true
        }

        /// Closes the file (creating it for an empty body); the digest of
        /// what it holds, or nil when it could not be written.
        func finish() -> String? {
            if fd < 0, !failed {
                fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
                if fd < 0 { failed = true }
            }
            if fd >= 0 { close(fd) }
            fd = -1
            return failed ? nil : Digest.hex(hasher.finalize())
        }

        deinit { if fd >= 0 { close(fd) } }
    }

    /// How many redirects on the same origin one request follows.
    static let redirectLimit = 5

    /// One exchange (redirects on the same origin followed), ended by
    /// `deadline` at the latest: a timer races it and cancels it. The
    /// client has the same deadline, as a backup only.
    func exchange(_ method: HTTPMethod, url: String, body: [UInt8]?, sink: any ResponseSink,
                  description: String, deadline: ContinuousClock.Instant) async -> Answer {
        let timedOut = Answer.fatal("\(description) timed out after \(Self.seconds(requestTimeout))")
        guard deadline > ContinuousClock.now else { return timedOut }
        return await withTaskGroup(of: Answer?.self) { group in
            group.addTask {
                await self.transfer(method, url: url, body: body, sink: sink, description: description, deadline: deadline)
            }
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            if let first { return first }
            return Task.isCancelled ? .fatal("\(description) was cancelled") : timedOut
        }
    }

    static func seconds(_ t: TimeInterval) -> String {
        t == t.rounded() ? "\(Int(t)) s" : "\(t) s"
    }

    private func transfer(_ method: HTTPMethod, url: String, body: [UInt8]?, sink: any ResponseSink,
                          description: String, deadline: ContinuousClock.Instant) async -> Answer {
        var target = url
        var redirects = 0
        while true {
            var request = HTTPClientRequest(url: target)
            request.method = method
            if let body {
                request.body = .bytes(body)
                request.headers.add(name: "Content-Type", value: "application/octet-stream")
            }
            do {
                let response = try await HTTPClients.remoteCache.execute(request, deadline: HTTPClients.deadline(deadline))
                let status = Int(response.status.code)
                if [301, 302, 303, 307, 308].contains(status), let location = response.headers.first(name: "location") {
                    try await Self.drain(response.body)
                    let next = URL(string: location, relativeTo: URL(string: target))?.absoluteURL
                    guard let next, Origin(next) == origin else {
                        return .refused("\(description) was redirected to `\(next?.absoluteString ?? location)`, another host, port or scheme")
                    }
                    redirects += 1
                    guard redirects <= Self.redirectLimit else {
                        return .refused("\(description) was redirected more than \(Self.redirectLimit) times")
                    }
                    target = next.absoluteString
                    continue
                }
                if (500..<600).contains(status) {
                    try await Self.drain(response.body)
                    return .transient("\(description) answered HTTP \(status)")
                }
                guard status == 200 else {
                    try await Self.drain(response.body)
                    return .status(status, sink)
                }
                let tooLarge = Answer.refused("the answer to \(description) is larger than \(sink.limit) bytes")
                if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > sink.limit {
                    return tooLarge
                }
                var received = 0
                for try await chunk in response.body {
                    received += chunk.readableBytes
                    guard received <= sink.limit, chunk.withUnsafeReadableBytes({ sink.write($0) }) else { return tooLarge }
                }
                // A cancelled body may end early without an error: never
                // a complete answer.
                if Task.isCancelled { return .fatal("\(description) was cancelled") }
                return .status(200, sink)
            } catch {
                if Task.isCancelled { return .fatal("\(description) was cancelled") }
                if HTTPClients.failure(error) == .timedOut { return .fatal("\(description) timed out after \(Self.seconds(requestTimeout))") }
                return .transient("\(description): \(Self.describe(error))")
            }
        }
    }

    /// Reads and drops the body of an answer planrun does not keep (an
    /// upload's, a miss's, a redirect's), so its connection can be used
    /// again; past `answerLimit` bytes it stops, and the connection closes.
    private static func drain(_ body: HTTPClientResponse.Body) async throws {
        var received = 0
        for try await chunk in body {
            received += chunk.readableBytes
            if received > answerLimit { return }
        }
    }
}

import Foundation
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Crypto
import Synchronization
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
    /// `deadline` at the latest: `deadlines` cancels it then (however
    /// slowly the server sends). The client has the same deadline, as a
    /// backup only (it covers the answer's head, not its body).
    func exchange(_ method: HTTPMethod, url: String, body: [UInt8]?, sink: any ResponseSink,
                  description: String, deadline: ContinuousClock.Instant) async -> Answer {
        let timedOut = Answer.fatal("\(description) timed out after \(Self.seconds(requestTimeout))")
        guard deadline > ContinuousClock.now else { return timedOut }
        if let memory = sink as? MemorySink {
            return await exchangeOnTheLoop(method, url: url, body: body, sink: memory, description: description,
                                           deadline: deadline)
        }
        // An unstructured task, so that the watch can cancel it alone; the
        // caller's cancellation is passed on to it.
        let transfer = Task {
            await self.transfer(method, url: url, body: body, sink: sink, description: description, deadline: deadline)
        }
        let (answer, expired) = await watching(deadline, cancel: { transfer.cancel() }) {
            await withTaskCancellationHandler { await transfer.value } onCancel: { transfer.cancel() }
        }
        if case .status = answer { return answer }
        return expired ? timedOut : answer
    }

    /// `body`'s value, and whether `deadline` passed while it ran:
    /// `deadlines` calls `cancel` then, which must make `body` return.
    func watching<Value>(_ deadline: ContinuousClock.Instant, cancel: @escaping @Sendable () -> Void,
                         _ body: () async -> Value) async -> (Value, expired: Bool) {
        let expired = Atomic<Bool>(false)
        let watched = deadlines.add(deadline) {
            expired.store(true, ordering: .releasing)
            cancel()
        }
        let value = await body()
        deadlines.remove(watched)
        return (value, expired.load(ordering: .acquiring))
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
                switch after(status: status, location: response.headers.first(name: "location"), of: target,
                             redirects: &redirects, description: description, sink: sink) {
                case .follow(let next):
                    try await Self.drain(response.body)
                    target = next
                    continue
                case .answer(let answer):
                    try await Self.drain(response.body)
                    return answer
                case .body:
                    break
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

    /// What an answer's status means, before its body.
    enum AfterHead {
        /// A redirect kept on the origin: ask this URL.
        case follow(String)
        /// Not a 200: this answer (the body is dropped).
        case answer(Answer)
        /// A 200: the body goes to the sink.
        case body
    }

    /// A redirect is followed only to the same origin and at most
    /// `redirectLimit` times (counted in `redirects`); a 5xx is worth
    /// another try; any other status but 200 is the answer as it is.
    func after(status: Int, location: String?, of target: String, redirects: inout Int, description: String,
               sink: any ResponseSink) -> AfterHead {
        if [301, 302, 303, 307, 308].contains(status), let location {
            let next = URL(string: location, relativeTo: URL(string: target))?.absoluteURL
            guard let next, Origin(next) == origin else {
                return .answer(.refused("\(description) was redirected to `\(next?.absoluteString ?? location)`, another host, port or scheme"))
            }
            redirects += 1
            guard redirects <= Self.redirectLimit else {
                return .answer(.refused("\(description) was redirected more than \(Self.redirectLimit) times"))
            }
            return .follow(next.absoluteString)
        }
        if (500..<600).contains(status) { return .answer(.transient("\(description) answered HTTP \(status)")) }
        return status == 200 ? .body : .answer(.status(status, sink))
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

/// Calls each registered action once its deadline passes, unless it was
/// removed first: one sleeping task for all the exchanges of a store in
/// flight, so that a request costs no timer (task, dispatch source,
/// cancellation wake-up) of its own. The task sleeps until the earliest
/// deadline; an entry due before that starts a new task, and the old one
/// ends when it wakes.
final class DeadlineWatch: Sendable {
    private struct Entry {
        let deadline: ContinuousClock.Instant
        let expire: @Sendable () -> Void
    }

    private struct State {
        var entries: [Int: Entry] = [:]
        var nextID = 0
        /// The watching task's generation; an older one ends when it wakes.
        var generation = 0
        /// When the watching task wakes next; nil when none runs.
        var wakesAt: ContinuousClock.Instant?
        var sleeper: Task<Void, Never>?
    }

    private let state = Mutex(State())

    /// Calls `expire` once `deadline` passes, unless `remove` came first.
    func add(_ deadline: ContinuousClock.Instant, expire: @escaping @Sendable () -> Void) -> Int {
        state.withLock { s in
            let id = s.nextID
            s.nextID += 1
            s.entries[id] = Entry(deadline: deadline, expire: expire)
            if let wakesAt = s.wakesAt, wakesAt <= deadline { return id }
            s.sleeper?.cancel()
            s.generation += 1
            s.wakesAt = deadline
            let generation = s.generation
            s.sleeper = Task.detached { [self] in await watch(generation, until: deadline) }
            return id
        }
    }

    func remove(_ id: Int) {
        state.withLock { _ = $0.entries.removeValue(forKey: id) }
    }

    private func watch(_ generation: Int, until first: ContinuousClock.Instant) async {
        var wake = first
        while true {
            try? await Task.sleep(until: wake, clock: .continuous)
            let (due, next): ([Entry], ContinuousClock.Instant?) = state.withLock { s in
                guard s.generation == generation else { return ([], nil) }
                let now = ContinuousClock.now
                var due: [Entry] = []
                var next: ContinuousClock.Instant?
                for (id, entry) in s.entries {
                    if entry.deadline <= now {
                        due.append(entry)
                        s.entries[id] = nil
                    } else if next.map({ entry.deadline < $0 }) ?? true {
                        next = entry.deadline
                    }
                }
                s.wakesAt = next
                if next == nil { s.sleeper = nil }
                return (due, next)
            }
            for entry in due { entry.expire() }
            guard let next else { return }
            wake = next
        }
    }
}

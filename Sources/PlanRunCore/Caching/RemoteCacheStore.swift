import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization
import Crypto
#if canImport(Glibc)
import Glibc
#endif

/// Whether a build may write to the remote cache.
package enum RemoteCacheMode: String, Sendable, CaseIterable {
    /// Look up only; never upload (untrusted jobs, pull requests).
    case read
    /// Look up, and upload what this build records.
    case readWrite = "readwrite"
}

/// A remote cache store speaking the HTTP protocol of Bazel's remote
/// cache: `GET`/`PUT` on `BASE/ac/KEY` (action results, the JSON of
/// `ActionResult`) and `BASE/cas/DIGEST` (blobs). On `GET`, 200 is a hit and
/// 404 (or 204) a miss; on `PUT` any 2xx is success. bazel-remote and nginx
/// with WebDAV `PUT` serve it.
///
/// The server is not trusted:
/// - Every request, its retries included, ends by `requestTimeout` after it
///   started, however slowly the server sends (a timer cancels it), and
///   then counts as failed. Connection errors and 5xx answers are retried
///   while time remains.
/// - After `failureLimit` failed requests the store trips a breaker: it
///   records one reason and from then on answers every lookup with
///   `unavailable` and drops every upload, so the build goes on with the
///   local cache only.
/// - An `ac` answer larger than `actionLimit` is refused; a blob is
///   streamed to a file and refused past the size its caller allows (and
///   checked against its digest on the way), so no answer is held in
///   memory whole. A refused answer is a miss with a reason to warn about.
/// - A redirect is followed only to the same scheme, host and port.
///
/// `Expect: 100-continue` is turned off, so a server that never answers 100
/// costs no extra second per upload.
package final class RemoteCacheStore: Sendable {
    /// The base URL, without a trailing slash.
    package let base: String
    package let mode: RemoteCacheMode
    /// Seconds a request may take in all, its retries included.
    package let requestTimeout: TimeInterval
    /// Delays before the second and later attempts of a failed request.
    package let retryDelays: [Duration]
    /// At most this many requests at once (the HTTP connection pool size).
    package let maxConcurrentRequests: Int
    /// Failed requests after which the remote is not used any more.
    package static let failureLimit = 3
    /// The largest `ac` entry accepted.
    package static let actionLimit = 1 << 20
    private let origin: Origin
    private let session: URLSession
    private let transfers: TransferDelegate
    private let breaker = Mutex(Breaker())

    private struct Breaker {
        var failures = 0
        /// The first failure, and the one that turned the remote off.
        var first: String?
        var reason: String?
    }

    /// What a lookup found.
    package enum Lookup: Sendable, Equatable {
        case hit([UInt8])
        case miss
        /// The request failed, or the remote is off (the breaker tripped);
        /// treat as a miss.
        case unavailable
        /// The server answered with something planrun does not use (too
        /// large, a redirect elsewhere): a miss, with this reason to warn.
        case refused(String)
    }

    /// What a blob download found (`blob(_:into:limit:)`).
    package enum BlobLookup: Sendable, Equatable {
        /// The file holds the blob, checked against its digest.
        case hit
        case miss
        case unavailable
        case refused(String)
    }

    /// nil unless `url` is an absolute `http` or `https` URL with a host.
    package init?(
        url: String, mode: RemoteCacheMode, requestTimeout: TimeInterval = 10,
        retryDelays: [Duration] = [.milliseconds(100), .milliseconds(400)], maxConcurrentRequests: Int = 16
    ) {
        guard let parsed = URL(string: url), let origin = Origin(parsed) else { return nil }
        guard parsed.query == nil, parsed.fragment == nil else { return nil }
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        self.base = base
        self.origin = origin
        self.mode = mode
        self.requestTimeout = requestTimeout
        self.retryDelays = retryDelays
        self.maxConcurrentRequests = max(1, maxConcurrentRequests)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = requestTimeout.rounded(.up) + 1
        configuration.timeoutIntervalForResource = requestTimeout.rounded(.up) + 1
        configuration.httpMaximumConnectionsPerHost = self.maxConcurrentRequests
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil  // a cache protocol has no cookies
        configuration.httpShouldSetCookies = false
        transfers = TransferDelegate(origin: origin)
        session = URLSession(configuration: configuration, delegate: transfers, delegateQueue: nil)
    }

    deinit { session.finishTasksAndInvalidate() }

    /// Why the remote was turned off, once it was; nil while it is used.
    package var failureReason: String? { breaker.withLock { $0.reason } }
    package var isAvailable: Bool { failureReason == nil }
    /// How many requests failed so far, and the first failure.
    package var failures: (count: Int, first: String?) { breaker.withLock { ($0.failures, $0.first) } }

    // MARK: Protocol

    package func action(_ key: String) async -> Lookup {
        await get("ac/" + key, limit: Self.actionLimit)
    }

    /// Downloads blob `digest` into a new file at `path` (created here,
    /// removed again unless the answer is `hit`), refusing it past `limit`
    /// bytes or when it does not match its digest.
    package func blob(_ digest: String, into path: String, limit: Int) async -> BlobLookup {
        guard isAvailable else { return .unavailable }
        let answer = await send("GET", "cas/" + digest, body: nil) { FileSink(path: path, limit: limit) }
        switch answer {
        case .status(200, let sink):
            guard let file = sink as? FileSink, let written = file.finish() else {
                unlink(path)
                return .refused("blob `\(digest)` could not be written to `\(path)`")
            }
            guard written == digest else {
                unlink(path)
                return .refused(Refusal.blobMismatch(digest: digest).description)
            }
            return .hit
        default:
            unlink(path)
            return lookup(answer, "GET cas/\(digest)").blob
        }
    }

    /// Uploads an action result; false when it was not stored.
    package func putAction(_ key: String, _ bytes: [UInt8]) async -> Bool { await put("ac/" + key, bytes) }
    package func putBlob(_ digest: String, _ bytes: [UInt8]) async -> Bool { await put("cas/" + digest, bytes) }

    /// Trips the breaker by hand (a blob failed verification is not a
    /// transport problem and does not call this).
    package func disable(_ reason: String) {
        breaker.withLock { if $0.reason == nil { $0.reason = reason } }
    }

    // MARK: HTTP

    fileprivate enum Answer {
        case status(Int, any ResponseSink)
        /// Worth another try: a connection error or a 5xx.
        case transient(String)
        /// Not worth another try (the deadline passed, a malformed URL).
        case fatal(String)
        /// Data planrun does not use.
        case refused(String)
    }

    private func get(_ path: String, limit: Int) async -> Lookup {
        guard isAvailable else { return .unavailable }
        let answer = await send("GET", path, body: nil) { MemorySink(limit: limit) }
        if case .status(200, let sink) = answer, let memory = sink as? MemorySink { return .hit(memory.bytes) }
        return lookup(answer, "GET \(path)").plain
    }

    /// The lookup an answer other than 200 means; failures count toward the breaker.
    private func lookup(_ answer: Answer, _ request: String) -> (plain: Lookup, blob: BlobLookup) {
        switch answer {
        case .status(404, _), .status(204, _): return (.miss, .miss)
        case .status(let code, _):
            failed("\(request) answered HTTP \(code)")
        case .transient(let reason), .fatal(let reason):
            failed(reason)
        case .refused(let reason):
            return (.refused(reason), .refused(reason))
        }
        return (.unavailable, .unavailable)
    }

    private func put(_ path: String, _ bytes: [UInt8]) async -> Bool {
        guard mode == .readWrite, isAvailable else { return false }
        switch await send("PUT", path, body: Data(bytes), sink: { MemorySink(limit: Self.answerLimit, keeps: false) }) {
        case .status(let code, _) where (200..<300).contains(code): return true
        case .status(let code, _):
            failed("PUT \(path) answered HTTP \(code)")
        case .transient(let reason), .fatal(let reason), .refused(let reason):
            failed(reason)
        }
        return false
    }

    /// Counts a failed request; the `failureLimit`-th turns the remote off
    /// with `reason`. A request failed by the build's cancellation says
    /// nothing about the remote and is not counted.
    private func failed(_ reason: String) {
        if Task.isCancelled { return }
        breaker.withLock {
            $0.failures += 1
            if $0.first == nil { $0.first = reason }
            if $0.failures >= Self.failureLimit, $0.reason == nil { $0.reason = reason }
        }
    }

    /// One request with its retries, all within `requestTimeout`.
    private func send(_ method: String, _ path: String, body: Data?,
                      sink makeSink: @escaping @Sendable () -> any ResponseSink) async -> Answer {
        guard let url = URL(string: base + "/" + path) else { return .fatal("bad URL `\(base)/\(path)`") }
        let deadline = ContinuousClock.now + .milliseconds(Int64(requestTimeout * 1000))
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData)
        request.httpMethod = method
        request.setValue("", forHTTPHeaderField: "Expect")
        if let body {
            request.httpBody = body
            request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        }
        var attempt = 0
        while true {
            let answer = await transfers.run(session: session, request: request, sink: makeSink(), deadline: deadline,
                                             description: "\(method) \(path)", timeout: requestTimeout)
            guard case .transient = answer, attempt < retryDelays.count, !Task.isCancelled, isAvailable,
                  ContinuousClock.now + retryDelays[attempt] < deadline
            else { return answer }
            try? await Task.sleep(for: retryDelays[attempt])
            attempt += 1
        }
    }

    fileprivate static func describe(_ error: any Error) -> String {
        if let error = error as? URLError {
            switch error.code {
            case .cannotConnectToHost: return "cannot connect"
            case .cannotFindHost: return "unknown host"
            case .networkConnectionLost: return "connection lost"
            case .notConnectedToInternet: return "not connected"
            default: return "network error \(error.code.rawValue)"
            }
        }
        return (error as NSError).localizedDescription
    }

    /// Scheme, host and port of a URL (the port a scheme implies when none
    /// is written): where redirects may go.
    fileprivate struct Origin: Sendable, Equatable {
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

    /// Where a response body goes while it arrives. Called on the session's
    /// delegate queue, one call at a time per transfer.
    fileprivate protocol ResponseSink: AnyObject, Sendable {
        /// The most bytes it takes.
        var limit: Int { get }
        /// Takes the next bytes; false when they cannot be kept.
        func write(_ data: Data) -> Bool
    }

    /// A body of at most `limit` bytes, kept in memory (an `ac` entry) or
    /// dropped (an upload's answer).
    fileprivate final class MemorySink: ResponseSink, @unchecked Sendable {
        // @unchecked: written only on the delegate queue until the
        // transfer completes; read only after that (the continuation
        // orders the two).
        let limit: Int
        private let keeps: Bool
        private(set) var bytes: [UInt8] = []
        init(limit: Int, keeps: Bool = true) {
            self.limit = limit
            self.keeps = keeps
        }
        func write(_ data: Data) -> Bool {
            if keeps { bytes.append(contentsOf: data) }
            return true
        }
    }

    /// The most of an upload's answer read (and dropped).
    private static let answerLimit = 64 * 1024

    /// A body streamed to a new file, hashed on the way.
    fileprivate final class FileSink: ResponseSink, @unchecked Sendable {
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

        func write(_ data: Data) -> Bool {
            if fd < 0, !failed {
                fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
                if fd < 0 { failed = true }
            }
            guard !failed else { return false }
            hasher.update(data: data)
            let ok = data.withUnsafeBytes { raw -> Bool in
                var done = 0
                while done < raw.count {
                    let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                    if n < 0 { if errno == EINTR { continue }; return false }
                    done += n
                }
                return true
            }
            if !ok { failed = true }
            return ok
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

    /// The session's delegate: routes each task's events to its `Transfer`,
    /// refuses bodies past their sink's limit and redirects to another
    /// origin.
    fileprivate final class TransferDelegate: NSObject, URLSessionDataDelegate, Sendable {
        let origin: Origin
        private let transfers = Mutex<[Int: Transfer]>([:])

        init(origin: Origin) { self.origin = origin }

        /// One exchange: ends with the answer, by `deadline` at the latest.
        func run(session: URLSession, request: URLRequest, sink: any ResponseSink, deadline: ContinuousClock.Instant,
                 description: String, timeout: TimeInterval) async -> Answer {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return .fatal("\(description) timed out after \(Self.seconds(timeout))") }
            // The timer below ends the exchange at the deadline; the
            // session's own timeout only backs it up (it counts whole
            // seconds: a fraction of one would end the request at once).
            var request = request
            request.timeoutInterval = Double(remaining.components.seconds + 2)
            let task = session.dataTask(with: request)
            let transfer = Transfer(sink: sink, description: description, timeout: timeout)
            transfers.withLock { $0[task.taskIdentifier] = transfer }
            // Stopping answers at once, without waiting for the session to
            // report the cancelled task (its delegate queue may be busy).
            let timer = Task {
                try await Task.sleep(until: deadline, clock: .continuous)
                transfer.stop(.timedOut)
                task.cancel()
                transfer.complete(response: nil, error: nil)
            }
            defer { timer.cancel() }
            return await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    transfer.start(continuation)
                    task.resume()
                }
            } onCancel: {
                transfer.stop(.cancelled)
                task.cancel()
                transfer.complete(response: nil, error: nil)
            }
        }

        static func seconds(_ t: TimeInterval) -> String {
            t == t.rounded() ? "\(Int(t)) s" : "\(t) s"
        }

        private func transfer(_ task: URLSessionTask) -> Transfer? {
            transfers.withLock { $0[task.taskIdentifier] }
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                        completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void) {
            if let transfer = transfer(dataTask), let http = response as? HTTPURLResponse, http.statusCode == 200,
               response.expectedContentLength > Int64(transfer.sink.limit) {
                transfer.stop(.tooLarge)
                completionHandler(.cancel)
                return
            }
            completionHandler(.allow)
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
            guard let transfer = transfer(dataTask) else { return }
            if !transfer.take(data) { dataTask.cancel() }
        }

        func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void) {
            if let url = request.url, Origin(url) == origin {
                completionHandler(request)
                return
            }
            transfer(task)?.stop(.redirected(to: request.url?.absoluteString ?? "?"))
            completionHandler(nil)
            task.cancel()
        }

        func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
            guard let transfer = transfers.withLock({ $0.removeValue(forKey: task.taskIdentifier) }) else { return }
            transfer.complete(response: task.response, error: error)
        }
    }

    /// Why a transfer was stopped before it completed.
    fileprivate enum Stop: Sendable, Equatable {
        case timedOut, cancelled, tooLarge
        case redirected(to: String)
    }

    /// One exchange's state: its sink, why it was stopped, and the
    /// continuation its completion resumes (once).
    fileprivate final class Transfer: Sendable {
        let sink: any ResponseSink
        let description: String
        let timeout: TimeInterval
        private struct State {
            var received = 0
            var stop: Stop?
            var continuation: CheckedContinuation<Answer, Never>?
            /// The completion came before `start` (a task cancelled early).
            var early: Answer?
            var completed = false
        }
        private let state = Mutex(State())

        init(sink: any ResponseSink, description: String, timeout: TimeInterval) {
            self.sink = sink
            self.description = description
            self.timeout = timeout
        }

        func start(_ continuation: CheckedContinuation<Answer, Never>) {
            let early = state.withLock { s -> Answer? in
                if let early = s.early { return early }
                s.continuation = continuation
                return nil
            }
            if let early { continuation.resume(returning: early) }
        }

        func stop(_ reason: Stop) {
            state.withLock { if $0.stop == nil { $0.stop = reason } }
        }

        /// Passes body bytes on; false (stop the task) past the limit or
        /// when the sink cannot take them.
        func take(_ data: Data) -> Bool {
            let allowed = state.withLock { s -> Bool in
                guard s.stop == nil else { return false }
                s.received += data.count
                if s.received > sink.limit {
                    s.stop = .tooLarge
                    return false
                }
                return true
            }
            guard allowed else { return false }
            if !sink.write(data) {
                stop(.tooLarge)
                return false
            }
            return true
        }

        /// Resumes the waiting exchange with its answer; only the first
        /// call counts (a stopped transfer completes when it is stopped and
        /// again when the session reports the cancelled task).
        func complete(response: URLResponse?, error: (any Error)?) {
            let answer = state.withLock { s -> (Answer, CheckedContinuation<Answer, Never>?)? in
                guard !s.completed else { return nil }
                s.completed = true
                let answer = self.answer(stop: s.stop, response: response, error: error)
                let continuation = s.continuation
                s.continuation = nil
                if continuation == nil { s.early = answer }
                return (answer, continuation)
            }
            if let (value, continuation) = answer { continuation?.resume(returning: value) }
        }

        private func answer(stop: Stop?, response: URLResponse?, error: (any Error)?) -> Answer {
            switch stop {
            case .timedOut?: return .fatal("\(description) timed out after \(TransferDelegate.seconds(timeout))")
            case .cancelled?: return .fatal("\(description) was cancelled")
            case .tooLarge?: return .refused("the answer to \(description) is larger than \(sink.limit) bytes")
            case .redirected(let target)?:
                return .refused("\(description) was redirected to `\(target)`, another host, port or scheme")
            case nil: break
            }
            if let error {
                if let error = error as? URLError, error.code == .timedOut {
                    return .fatal("\(description) timed out after \(TransferDelegate.seconds(timeout))")
                }
                return .transient("\(description): \(RemoteCacheStore.describe(error))")
            }
            guard let http = response as? HTTPURLResponse else { return .fatal("\(description): not an HTTP response") }
            if (500..<600).contains(http.statusCode) {
                return .transient("\(description) answered HTTP \(http.statusCode)")
            }
            return .status(http.statusCode, sink)
        }
    }
}

// MARK: Validation

extension RemoteCacheStore {
    /// Why a downloaded entry was refused.
    package enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        case malformed
        case badDigest
        case unsafePath(String)
        case undeclaredPaths
        case blobMismatch(digest: String)
        /// The result and outputs do not hash to the entry's result digest.
        case resultMismatch
        /// A blob to download whose size the entry does not name.
        case unsizedBlob(digest: String)

        package var description: String {
            switch self {
            case .malformed: "it is not a valid action result"
            case .badDigest: "it names a digest that is not 64 lowercase hex digits"
            case .unsafePath(let path): "it names the path `\(path)`, which leaves the plan's folder"
            case .undeclaredPaths: "its outputs are not the subtask's declared outputs"
            case .blobMismatch(let digest): "blob `\(digest)` does not match its digest"
            case .resultMismatch: "its result and outputs do not match its result digest"
            case .unsizedBlob(let digest): "it does not name the size of blob `\(digest)`"
            }
        }
    }

    /// Checks an `ac` entry downloaded for `subtask`: the JSON shape of
    /// `ActionResult` (the current format, exit status 0), every digest well formed,
    /// output paths relative without `..`, and exactly the subtask's
    /// declared outputs.
    package static func validateAction(_ bytes: [UInt8], for subtask: Subtask) -> Result<ActionResult, Refusal> {
        guard let action = try? JSONDecoder().decode(ActionResult.self, from: Data(bytes)),
              action.format == ActionResult.currentFormat, action.exitStatus == 0
        else { return .failure(.malformed) }
        guard action.isWellFormed, LocalCacheStore.isDigest(action.resultDigest),
              (action.sizes ?? [:]).keys.allSatisfy(LocalCacheStore.isDigest)
        else { return .failure(.badDigest) }
        guard (action.sizes ?? [:]).values.allSatisfy({ $0 >= 0 }) else { return .failure(.malformed) }
        if let bad = action.outputs.first(where: { !PathSafety.isSafeRelative($0.path) }) {
            return .failure(.unsafePath(bad.path))
        }
        let declared = Set(subtask.outputs.map(PathSafety.normalized))
        let named = action.outputs.map { PathSafety.normalized($0.path) }
        guard named.count == declared.count, Set(named) == declared else { return .failure(.undeclaredPaths) }
        return .success(action)
    }

    /// Checks a folder manifest blob: well-formed digests, relative paths
    /// without `..`, nothing below a link or a file
    /// (`FolderManifest.isWellFormed`).
    package static func validateManifest(_ bytes: [UInt8]) -> Result<FolderManifest, Refusal> {
        guard let manifest = try? JSONDecoder().decode(FolderManifest.self, from: Data(bytes)) else {
            return .failure(.malformed)
        }
        guard manifest.files.allSatisfy({ LocalCacheStore.isDigest($0.digest) }) else { return .failure(.badDigest) }
        if let bad = manifest.files.first(where: { !PathSafety.isSafeRelative($0.path) }) {
            return .failure(.unsafePath(bad.path))
        }
        guard manifest.isWellFormed else { return .failure(.malformed) }
        return .success(manifest)
    }
}

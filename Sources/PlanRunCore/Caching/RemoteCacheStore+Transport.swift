import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization
import Crypto
#if canImport(Glibc)
import Glibc
#endif


/// The HTTP transport of `RemoteCacheStore`: URLSession transfers with a
/// total deadline, answers streamed into bounded sinks, redirects kept on
/// the same origin.
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

    /// Where a response body goes while it arrives. Called on the session's
    /// delegate queue, one call at a time per transfer.
    protocol ResponseSink: AnyObject, Sendable {
        /// The most bytes it takes.
        var limit: Int { get }
        /// Takes the next bytes; false when they cannot be kept.
        func write(_ data: Data) -> Bool
    }

    /// A body of at most `limit` bytes, kept in memory (an `ac` entry) or
    /// dropped (an upload's answer).
    final class MemorySink: ResponseSink, @unchecked Sendable {
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
    final class TransferDelegate: NSObject, URLSessionDataDelegate, Sendable {
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
    enum Stop: Sendable, Equatable {
        case timedOut, cancelled, tooLarge
        case redirected(to: String)
    }

    /// One exchange's state: its sink, why it was stopped, and the
    /// continuation its completion resumes (once).
    final class Transfer: Sendable {
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

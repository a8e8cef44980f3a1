import Foundation
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Synchronization

/// Exchanges whose answer is kept in memory (`ac` lookups, uploads): the
/// body is collected on the connection's event loop by a response
/// delegate and the caller resumes once, when the exchange is over. A
/// streamed body (`HTTPClientResponse.Body`) resumes the caller for the
/// head and again for each part, and `execute(_:deadline:)` schedules a
/// timer on the loop per request; an `ac` lookup is one small body, and a
/// fresh clone makes one per subtask. Blobs, which may be large, are
/// still streamed to their file by the task that reads them
/// (`transfer`).
extension RemoteCacheStore {
    /// `exchange` for a `MemorySink`: the same deadline (`deadlines`
    /// cancels the client's task when it passes, however slowly the server
    /// sends), redirects (`after`), limits and answers.
    func exchangeOnTheLoop(_ method: HTTPMethod, url: String, body: [UInt8]?, sink: MemorySink,
                           description: String, deadline: ContinuousClock.Instant) async -> Answer {
        let timedOut = Answer.fatal("\(description) timed out after \(Self.seconds(requestTimeout))")
        var target = url
        var redirects = 0
        while true {
            let request: HTTPClient.Request
            do {
                var headers = HTTPHeaders()
                if body != nil { headers.add(name: "Content-Type", value: "application/octet-stream") }
                request = try HTTPClient.Request(url: target, method: method, headers: headers, body: body.map { .bytes($0) })
            } catch {
                return .fatal("bad URL `\(target)`")
            }
            let collector = Collector(sink: sink)
            // No client deadline: the watch below ends the whole exchange, body included.
            let task = HTTPClients.remoteCache.execute(request: request, delegate: collector, deadline: nil)
            let (outcome, expired) = await watching(deadline, cancel: { task.cancel() }) { () async -> Result<Collector.Head, any Error> in
                do {
                    return .success(try await withTaskCancellationHandler { try await task.futureResult.get() } onCancel: { task.cancel() })
                } catch {
                    return .failure(error)
                }
            }
            let head: Collector.Head
            switch outcome {
            case .success(let complete):
                head = complete
            case .failure where expired:
                return timedOut
            case .failure where Task.isCancelled:
                return .fatal("\(description) was cancelled")
            case .failure(let error as Collector.Stop):
                switch error {
                case .tooLarge: return .refused("the answer to \(description) is larger than \(sink.limit) bytes")
                case .dropped(let status, let location): head = Collector.Head(status: status, location: location)
                }
            case .failure(let error):
                if HTTPClients.failure(error) == .timedOut { return timedOut }
                return .transient("\(description): \(Self.describe(error))")
            }
            switch after(status: head.status, location: head.location, of: target, redirects: &redirects,
                         description: description, sink: sink) {
            case .follow(let next): target = next
            case .answer(let answer): return answer
            case .body: return .status(200, sink)
            }
        }
    }

    /// Takes an answer on its event loop: a 200's body into the sink (up to
    /// its limit), any other's dropped (up to `answerLimit`, after which
    /// the connection is closed, as `drain` does).
    private final class Collector: HTTPClientResponseDelegate, @unchecked Sendable {
        // @unchecked: the client calls a delegate on one event loop, one
        // call at a time; the caller reads `head` only through the task's
        // result, once the exchange is over.
        struct Head: Sendable {
            var status: Int
            var location: String?
        }

        /// Why the collector ended an exchange early.
        enum Stop: Error {
            case tooLarge
            /// A body planrun does not keep, past `answerLimit`: the answer
            /// is the head's.
            case dropped(status: Int, location: String?)
        }

        typealias Response = Head
        let sink: MemorySink
        private var head = Head(status: 0, location: nil)
        private var received = 0

        init(sink: MemorySink) { self.sink = sink }

        func didReceiveHead(task: HTTPClient.Task<Head>, _ response: HTTPResponseHead) -> EventLoopFuture<Void> {
            head = Head(status: Int(response.status.code), location: response.headers.first(name: "location"))
            if head.status == 200, let length = response.headers.first(name: "content-length").flatMap(Int.init),
               length > sink.limit {
                return task.eventLoop.makeFailedFuture(Stop.tooLarge)
            }
            return task.eventLoop.makeSucceededVoidFuture()
        }

        func didReceiveBodyPart(task: HTTPClient.Task<Head>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
            received += buffer.readableBytes
            if head.status == 200 {
                guard received <= sink.limit, buffer.withUnsafeReadableBytes({ sink.write($0) }) else {
                    return task.eventLoop.makeFailedFuture(Stop.tooLarge)
                }
            } else if received > RemoteCacheStore.answerLimit {
                return task.eventLoop.makeFailedFuture(Stop.dropped(status: head.status, location: head.location))
            }
            return task.eventLoop.makeSucceededVoidFuture()
        }

        func didFinishRequest(task: HTTPClient.Task<Head>) throws -> Head { head }
    }
}

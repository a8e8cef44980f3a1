import Foundation
import NIOHTTP1
import Synchronization
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
/// Requests go over `HTTPClients.remoteCache`: keep-alive connections, at
/// most `HTTPClients.remoteConnectionsPerHost` to one server; no
/// `Expect: 100-continue` is sent.
package final class RemoteCacheStore: Sendable {
    /// The base URL, without a trailing slash.
    package let base: String
    package let mode: RemoteCacheMode
    /// Seconds a request may take in all, its retries included.
    package let requestTimeout: TimeInterval
    /// Delays before the second and later attempts of a failed request.
    package let retryDelays: [Duration]
    /// At most this many requests at once (the prefetch and the uploads
    /// each keep to it).
    package let maxConcurrentRequests: Int
    /// Failed requests after which the remote is not used any more.
    package static let failureLimit = 3
    /// The largest `ac` entry accepted.
    package static let actionLimit = 1 << 20
    let origin: Origin
    private let breaker = Mutex(Breaker())
    /// Ends the exchanges that pass their deadline (`exchange`).
    let deadlines = DeadlineWatch()

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
        retryDelays: [Duration] = [.milliseconds(100), .milliseconds(400)],
        maxConcurrentRequests: Int = HTTPClients.remoteConnectionsPerHost
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
    }

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
        let answer = await send(.GET, "cas/" + digest, body: nil) { FileSink(path: path, limit: limit) }
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

    enum Answer {
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
        let answer = await send(.GET, path, body: nil) { MemorySink(limit: limit) }
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
        switch await send(.PUT, path, body: bytes, sink: { MemorySink(limit: Self.answerLimit, keeps: false) }) {
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
    private func send(_ method: HTTPMethod, _ path: String, body: [UInt8]?,
                      sink makeSink: () -> any ResponseSink) async -> Answer {
        let url = base + "/" + path
        guard URL(string: url) != nil else { return .fatal("bad URL `\(url)`") }
        let deadline = ContinuousClock.now + .milliseconds(Int64(requestTimeout * 1000))
        var attempt = 0
        while true {
            let answer = await exchange(method, url: url, body: body, sink: makeSink(), description: "\(method.rawValue) \(path)",
                                        deadline: deadline)
            guard case .transient = answer, attempt < retryDelays.count, !Task.isCancelled, isAvailable,
                  ContinuousClock.now + retryDelays[attempt] < deadline
            else { return answer }
            try? await Task.sleep(for: retryDelays[attempt])
            attempt += 1
        }
    }

    static func describe(_ error: any Error) -> String {
        switch HTTPClients.failure(error) {
        case .refused: "cannot connect"
        case .unresolved: "unknown host"
        case .timedOut: "timed out"
        case .lost: "connection lost"
        case .tls: "TLS connection failed"
        case .other(let text): text
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
        guard let action = ActionResult.decode(bytes),
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

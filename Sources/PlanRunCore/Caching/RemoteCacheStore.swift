import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization

/// Whether a build may write to the remote cache.
package enum RemoteCacheMode: String, Sendable, CaseIterable {
    /// Look up only; never upload (untrusted jobs, pull requests).
    case read
    /// Look up, and upload what this build records.
    case readWrite = "readwrite"
}

/// A remote cache store speaking the HTTP protocol of Bazel's remote cache
/// (DESIGN §5): `GET`/`PUT` on `BASE/ac/KEY` (action results, the JSON of
/// `ActionResult`) and `BASE/cas/DIGEST` (blobs). On `GET`, 200 is a hit and
/// 404 (or 204) a miss; on `PUT` any 2xx is success. bazel-remote and nginx
/// with WebDAV `PUT` serve it.
///
/// Every request has a timeout. Connection errors and 5xx answers are
/// retried briefly; if a request still fails, the store trips a breaker:
/// it records one warning and from then on answers every lookup with a miss
/// and drops every upload, so the build goes on with the local cache only.
///
/// Why requests cannot hang: a server that answers HTTP/1.1 keep-alive
/// without `Content-Length` (a naive test server) leaves the client waiting
/// for the body until the connection closes; the request timeout ends that.
/// `Expect: 100-continue` is turned off, so a server that never answers 100
/// costs no extra second per upload.
package final class RemoteCacheStore: Sendable {
    /// The base URL, without a trailing slash.
    package let base: String
    package let mode: RemoteCacheMode
    /// Seconds before a single request gives up.
    package let requestTimeout: TimeInterval
    /// Delays before the second and later attempts of a failed request.
    package let retryDelays: [Duration]
    /// At most this many requests at once (the HTTP connection pool size).
    package let maxConcurrentRequests: Int
    private let session: URLSession
    private let failure = Mutex<String?>(nil)

    /// What a lookup found.
    package enum Lookup: Sendable, Equatable {
        case hit([UInt8])
        case miss
        /// The remote is off (the breaker tripped); treat as a miss.
        case unavailable
    }

    /// nil unless `url` is an absolute `http` or `https` URL with a host.
    package init?(
        url: String, mode: RemoteCacheMode, requestTimeout: TimeInterval = 10,
        retryDelays: [Duration] = [.milliseconds(100), .milliseconds(400)], maxConcurrentRequests: Int = 16
    ) {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = parsed.host, !host.isEmpty,
              parsed.query == nil, parsed.fragment == nil
        else { return nil }
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        self.base = base
        self.mode = mode
        self.requestTimeout = requestTimeout
        self.retryDelays = retryDelays
        self.maxConcurrentRequests = max(1, maxConcurrentRequests)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = requestTimeout
        configuration.timeoutIntervalForResource = requestTimeout * 6
        configuration.httpMaximumConnectionsPerHost = self.maxConcurrentRequests
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil  // a cache protocol has no cookies
        configuration.httpShouldSetCookies = false
        session = URLSession(configuration: configuration)
    }

    deinit { session.finishTasksAndInvalidate() }

    /// Why the remote was turned off, once it was; nil while it works.
    package var failureReason: String? { failure.withLock { $0 } }
    package var isAvailable: Bool { failureReason == nil }

    // MARK: Protocol

    package func action(_ key: String) async -> Lookup { await get("ac/" + key) }
    package func blob(_ digest: String) async -> Lookup { await get("cas/" + digest) }

    /// Uploads an action result; false when it was not stored.
    package func putAction(_ key: String, _ bytes: [UInt8]) async -> Bool { await put("ac/" + key, bytes) }
    package func putBlob(_ digest: String, _ bytes: [UInt8]) async -> Bool { await put("cas/" + digest, bytes) }

    /// Trips the breaker by hand (a blob failed verification is not a
    /// transport problem and does not call this).
    package func disable(_ reason: String) {
        failure.withLock { if $0 == nil { $0 = reason } }
    }

    // MARK: HTTP

    private enum Answer {
        case status(Int, Data)
        /// Worth another try: a connection error or a 5xx.
        case transient(String)
        /// Not worth another try (a timeout, a malformed URL).
        case fatal(String)
    }

    private func get(_ path: String) async -> Lookup {
        guard isAvailable else { return .unavailable }
        switch await send("GET", path, body: nil) {
        case .status(200, let data): return .hit(Array(data))
        case .status(404, _), .status(204, _): return .miss
        case .status(let code, _):
            trip("GET \(path) answered HTTP \(code)")
            return .unavailable
        case .transient(let reason), .fatal(let reason):
            trip(reason)
            return .unavailable
        }
    }

    private func put(_ path: String, _ bytes: [UInt8]) async -> Bool {
        guard mode == .readWrite, isAvailable else { return false }
        switch await send("PUT", path, body: Data(bytes)) {
        case .status(let code, _) where (200..<300).contains(code): return true
        case .status(let code, _):
            trip("PUT \(path) answered HTTP \(code)")
            return false
        case .transient(let reason), .fatal(let reason):
            trip(reason)
            return false
        }
    }

    /// Turns the remote off with `reason`, unless the build is being
    /// cancelled (a cancelled request says nothing about the remote).
    private func trip(_ reason: String) {
        if Task.isCancelled { return }
        failure.withLock { if $0 == nil { $0 = reason } }
    }

    /// One request with its retries.
    private func send(_ method: String, _ path: String, body: Data?) async -> Answer {
        guard let url = URL(string: base + "/" + path) else { return .fatal("bad URL `\(base)/\(path)`") }
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: requestTimeout)
        request.httpMethod = method
        request.setValue("", forHTTPHeaderField: "Expect")
        if let body {
            request.httpBody = body
            request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        }
        var attempt = 0
        while true {
            let answer = await once(request, method: method, path: path)
            guard case .transient = answer, attempt < retryDelays.count, !Task.isCancelled, isAvailable else {
                return answer
            }
            try? await Task.sleep(for: retryDelays[attempt])
            attempt += 1
        }
    }

    private func once(_ request: URLRequest, method: String, path: String) async -> Answer {
        do {
            let (data, response) = try await session.data(for: request)
            guard let http = response as? HTTPURLResponse else { return .fatal("\(method) \(path): not an HTTP response") }
            if (500..<600).contains(http.statusCode) {
                return .transient("\(method) \(path) answered HTTP \(http.statusCode)")
            }
            return .status(http.statusCode, data)
        } catch let error as URLError where error.code == .timedOut {
            return .fatal("\(method) \(path) timed out after \(Int(requestTimeout)) s")
        } catch let error as URLError where error.code == .cancelled {
            return .fatal("\(method) \(path) was cancelled")
        } catch {
            return .transient("\(method) \(path): \(Self.describe(error))")
        }
    }

    private static func describe(_ error: any Error) -> String {
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

        package var description: String {
            switch self {
            case .malformed: "it is not a valid action result"
            case .badDigest: "it names a digest that is not 64 lowercase hex digits"
            case .unsafePath(let path): "it names the path `\(path)`, which leaves the plan's folder"
            case .undeclaredPaths: "its outputs are not the subtask's declared outputs"
            case .blobMismatch(let digest): "blob `\(digest)` does not match its digest"
            case .resultMismatch: "its result and outputs do not match its result digest"
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
        guard action.isWellFormed, LocalCacheStore.isDigest(action.resultDigest) else { return .failure(.badDigest) }
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

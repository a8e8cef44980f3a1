import AsyncHTTPClient
import NIOCore
import NIOPosix
import NIOSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The HTTP clients of planrun: async-http-client over SwiftNIO, with a
/// pool of keep-alive connections per host (HTTP/2 where an https server
/// offers it), TLS by swift-nio-ssl.
///
/// Nothing here starts before a request needs it: the event loop threads
/// and each client are created on first use (`static let` is lazy), so a
/// build with no remote cache and no `http` agent starts no thread and
/// opens no socket. They live as long as the process, so they are never
/// shut down (a `HTTPClient` must only be shut down when no request can
/// still use it).
package enum HTTPClients {
    /// Two threads carry every connection: they only move bytes (and run
    /// TLS); bodies are hashed and written by the tasks that read them.
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: min(2, System.coreCount))

    /// The largest number of connections kept to one remote cache.
    package static let remoteConnectionsPerHost = 16

    /// For `RemoteCacheStore`: redirects are not followed by the client
    /// (the store follows those that stay on its origin), and a failed
    /// connection fails its request at once (the store retries, within
    /// its deadline, and counts failures toward its breaker).
    static let remoteCache = HTTPClient(eventLoopGroup: group, configuration: {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = remoteConnectionsPerHost
        configuration.connectionPool.retryConnectionEstablishment = false
        return configuration
    }())

    /// For `http` agents: redirects are followed (at most 10, no cycles)
    /// as URLSession did, and a failed connection fails the attempt at
    /// once (the subtask's retry policy decides about another).
    static let agents = HTTPClient(eventLoopGroup: group, configuration: {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .follow(max: 10, allowCycles: false))
        configuration.connectionPool.retryConnectionEstablishment = false
        return configuration
    }())

    /// What made a request fail, for messages.
    enum Failure: Equatable {
        /// Nothing listens at the address (connection refused).
        case refused
        /// The host name does not resolve.
        case unresolved
        /// The client's own deadline or connect timeout passed.
        case timedOut
        /// The server closed the connection before a complete response.
        case lost
        /// The TLS handshake or the certificate check failed.
        case tls
        case other(String)
    }

    static func failure(_ error: any Error) -> Failure {
        switch error {
        case let error as NIOConnectionError:
            if error.connectionErrors.isEmpty { return .unresolved }
            let refused = error.connectionErrors.contains { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }
            return refused ? .refused : .other("cannot connect: \(error.connectionErrors.map { "\($0.error)" })")
        case let error as IOError where error.errnoCode == ECONNREFUSED:
            return .refused
        case let error as HTTPClientError:
            if [.connectTimeout, .deadlineExceeded, .readTimeout, .writeTimeout].contains(error) { return .timedOut }
            if error == .remoteConnectionClosed { return .lost }
            if error == .tlsHandshakeTimeout { return .tls }
            return .other("\(error)")
        case is NIOSSLError, is BoringSSLError, is NIOSSLExtraError:
            return .tls
        case let error as ChannelError where error == .eof || error == .ioOnClosedChannel:
            return .lost
        default:
            return .other("\(error)")
        }
    }

    /// A `NIODeadline` as far from now as `deadline` is: the client's
    /// own limit, behind the caller's timer.
    static func deadline(_ deadline: ContinuousClock.Instant) -> NIODeadline {
        .now() + timeAmount(deadline - ContinuousClock.now)
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
    }
}

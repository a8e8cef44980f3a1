import Synchronization

/// Problems met along a build that did not stop it (a cache write that
/// failed, a refused entry), each reported once when the build is over.
/// Locked: the build's loop and the remote prefetch's and upload tasks
/// add to it concurrently.
package final class CacheWarnings: Sendable {
    private let messages = Mutex<[String]>([])

    package init() {}

    package func add(_ message: String) { messages.withLock { $0.append(message) } }

    /// The warnings added since the last call.
    package func take() -> [String] {
        messages.withLock { m in
            defer { m = [] }
            return m
        }
    }
}

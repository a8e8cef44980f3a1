import Synchronization

/// Carries why a run was cancelled from whoever cancels it (the CLI's
/// signal handling) to the executor, which records it. Cancelling the run
/// itself is done by cancelling the task running `Executor.run`; this only
/// holds the reason. The first reason wins.
package final class RunCanceller: Sendable {
    private let storage = Mutex<String?>(nil)

    package init() {}

    package func setReason(_ reason: String) {
        storage.withLock { if $0 == nil { $0 = reason } }
    }

    package var reason: String? { storage.withLock { $0 } }
}

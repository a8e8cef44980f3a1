#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The last SIGINT, SIGTERM or SIGHUP received (0 = none). Written by the signal
/// handler (an atomic store is async-signal-safe), polled by `BuildSignals`.
private let receivedSignal = Atomic<Int32>(0)

/// Turns SIGINT, SIGTERM and SIGHUP into cancelling the build: the
/// handler only records the signal; `waitForSignal` notices it and the
/// caller cancels the build task. Subtasks run in their own process
/// groups, so a terminal's Ctrl-C reaches planrun only, which then stops
/// them.
enum BuildSignals {
    static func install() {
        // A parent may start planrun with these signals blocked (a child
        // spawned from a libdispatch worker thread inherits its mask, for
        // one); unblock them so Ctrl-C and SIGTERM always reach the handler.
        var wanted = sigset_t()
        sigemptyset(&wanted)
        for sig in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&wanted, sig) }
        pthread_sigmask(SIG_UNBLOCK, &wanted, nil)
        signal(SIGPIPE, SIG_IGN)
        signal(SIGINT) { receivedSignal.store($0, ordering: .relaxed) }
        signal(SIGTERM) { receivedSignal.store($0, ordering: .relaxed) }
        signal(SIGHUP) { receivedSignal.store($0, ordering: .relaxed) }
    }

    /// Returns the signal once one arrives; throws when cancelled first.
    static func waitForSignal() async throws -> Int32 {
        while true {
            let signal = receivedSignal.load(ordering: .relaxed)
            if signal != 0 { return signal }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static func reason(for signal: Int32) -> String {
        switch signal {
        case SIGINT: "interrupted (SIGINT)"
        case SIGTERM: "terminated (SIGTERM)"
        case SIGHUP: "terminal closed (SIGHUP)"
        default: "signal \(signal)"
        }
    }
}

import Foundation
import Synchronization
import Testing
@testable import PlanRunCore

/// `DeadlineWatch` ends each remote exchange at its own deadline, with one
/// sleeping task for all of them.
@Suite(.timeLimit(.minutes(1))) struct CachingDeadlineWatchTests {
    final class Fired: Sendable {
        let names = Mutex<[String: ContinuousClock.Instant]>([:])
        func note(_ name: String) { names.withLock { $0[name] = ContinuousClock.now } }
        var snapshot: [String: ContinuousClock.Instant] { names.withLock { $0 } }
    }

    /// An entry due before the one the watch sleeps for is not held up by
    /// it (a retry's deadline can be earlier than a newer request's), and
    /// a removed entry never fires.
    @Test func eachEntryFiresAtItsOwnDeadlineUnlessRemoved() async throws {
        let watch = DeadlineWatch()
        let fired = Fired()
        let start = ContinuousClock.now
        _ = watch.add(start + .seconds(3)) { fired.note("late") }
        _ = watch.add(start + .milliseconds(200)) { fired.note("early") }
        let removed = watch.add(start + .milliseconds(300)) { fired.note("removed") }
        watch.remove(removed)
        try await Task.sleep(for: .milliseconds(1500))
        let seen = fired.snapshot
        #expect(seen.keys.sorted() == ["early"], "\(seen)")
        let early = try #require(seen["early"])
        #expect(early - start >= .milliseconds(200) && early - start < .milliseconds(1200), "\(early - start)")
        try await Task.sleep(for: .milliseconds(2000))
        #expect(fired.snapshot.keys.sorted() == ["early", "late"])
    }

    /// Once every entry fired or was removed, a new one still fires.
    @Test func anEntryAddedAfterTheWatchWentIdleFires() async throws {
        let watch = DeadlineWatch()
        let fired = Fired()
        _ = watch.add(.now + .milliseconds(50)) { fired.note("first") }
        try await Task.sleep(for: .milliseconds(400))
        _ = watch.add(.now + .milliseconds(50)) { fired.note("second") }
        try await Task.sleep(for: .milliseconds(600))
        #expect(fired.snapshot.keys.sorted() == ["first", "second"])
    }
}

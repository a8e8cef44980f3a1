import Foundation
import Testing
@testable import PlanRunCore

/// The cache returns history entries and the loop's recorder writes them:
/// a build leaves what it ran in the history, and a history that cannot
/// be written fails the run.
@Suite struct CachingRecorderTests {
    /// A history in memory whose saves fail when `failing`.
    final class History: SubtaskHistory {
        let inner = InMemorySubtaskHistory()
        let failing: Bool

        init(failing: Bool) { self.failing = failing }

        func entry(for id: String) throws -> HistoryEntry? { try inner.entry(for: id) }
        func cacheKey(for id: String) throws -> CacheKey? { try inner.cacheKey(for: id) }
        func save(_ entry: HistoryEntry, for id: String) throws {
            if failing { throw CacheError.stateWrite(reason: "disk full") }
            try inner.save(entry, for: id)
        }
        func remove(_ ids: [String]?) throws { try inner.remove(ids) }
    }

    static func build(_ dir: CachingTempDir, history: History) async -> RunSummary {
        let plan = makePlan([task("a"), task("b", ["a"])], directory: dir.path)
        let cache = ContentCache(
            plan: plan, callerEnvironment: [:], store: LocalCacheStore(root: dir.url(".planrun/cache")),
            history: history, digests: InMemoryDigestStore(), racyWindowNs: 0)
        return await runPlan(plan, runner: FakeCommandRunner(), cache: cache).0
    }

    @Test func theRecorderWritesWhatTheCacheRecorded() async throws {
        let dir = CachingTempDir()
        let history = History(failing: false)
        let first = await Self.build(dir, history: history)
        #expect(first.status == .completed)
        #expect(try history.entry(for: "a") != nil)
        #expect(try history.entry(for: "b") != nil)
        // What was written is what the next build's verdicts read.
        let second = await Self.build(dir, history: history)
        #expect(second.reports.map(\.reason) == [.cached, .cached])
    }

    @Test func aHistoryThatCannotBeWrittenFailsTheRun() async throws {
        let dir = CachingTempDir()
        let summary = await Self.build(dir, history: History(failing: true))
        #expect(summary.status == .failed)
        #expect(summary.reason?.contains("disk full") == true)
        // The first failure stops the run: the dependent does not start.
        let b = summary.reports.filter { $0.id == "b" }.map(\.status)
        #expect(b.count == 1 && !b.contains(.done))
    }
}

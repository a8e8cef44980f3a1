#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing
@testable import PlanRunCore

/// The loop starts a process itself (`CommandRunner.start`) and gives a
/// freed slot to the next ready subtask before recording the finished one;
/// events, state rows and the scheduling choice stay as before.
@Suite struct ExecutionEarlyStartTests {
    func events(_ reporter: RecordingReporter) -> [String] {
        reporter.events.compactMap { event in
            switch event {
            case .started(let id): "start \(id)"
            case .finished(let report): "\(report.status.rawValue) \(report.id)"
            case .skipped(let report): "\(report.status.rawValue) \(report.id)"
            default: nil
            }
        }
    }

    /// Real processes at -j 1: each start is reported after the previous
    /// finish, the state has every subtask done, and each process ran
    /// after the previous one ended (timestamps the subtasks write).
    @Test func oneJobReportsStartAfterThePreviousFinish() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("planrun-early-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ids = ["a", "b", "c", "d", "e"]
        let plan = makePlan(ids.map { task($0, run: "date +%s%N > $PLANRUN_SUBTASK.start; echo $PLANRUN_SUBTASK") },
                            directory: dir)
        let store = try StateStore(directory: dir + "/.state")
        try store.beginRun(id: "r", plan: "test", planFile: "plan.yaml", pid: getpid(), startedAt: Date(),
                           subtasks: plan.subtasks.enumerated().map { ($1.id, $0, $1.agent) })
        let executor = Executor(graph: TaskGraph(plan: plan), configuration: RunConfiguration(jobs: 1),
                                runner: ProcessCommandRunner(), store: store, runID: "r", workDirectory: dir)
        let reporter = RecordingReporter()
        let summary = await executor.run(reporter: reporter)
        #expect(summary.status == .completed)
        #expect(events(reporter) == ids.flatMap { ["start \($0)", "done \($0)"] })
        #expect(summary.reports.map(\.resultText) == ids.map { "\($0)\n" })
        let statuses = try await store.database.read { db in
            try String.fetchAll(db, sql: "SELECT status FROM run_subtasks ORDER BY position")
        }
        #expect(statuses == Array(repeating: "done", count: ids.count))
        let starts = try ids.map { id in
            try String(contentsOfFile: dir + "/\(id).start", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }.compactMap { Int($0) }
        #expect(starts == starts.sorted() && starts.count == ids.count)
    }

    /// A finish that makes a dependent ready is recorded first, so the
    /// dependent (earlier in plan order) still beats a ready subtask.
    @Test func newlyReadyDependentIsStillChosenFirst() async {
        let plan = makePlan([task("a"), task("c", ["a"]), task("b")])
        let runner = FakeCommandRunner()
        let (summary, reporter) = await runPlan(plan, runner: runner, jobs: 1)
        #expect(summary.status == .completed)
        #expect(await runner.log.records.map(\.id) == ["a", "c", "b"])
        #expect(events(reporter) == ["start a", "done a", "start c", "done c", "start b", "done b"])
    }

    /// Runs with real processes share the `ProcessMonitor`'s thread (their
    /// loops run there): two at once, plus a timeout in one, all finish.
    @Test func concurrentRunsShareTheMonitorThread() async {
        let dir = NSTemporaryDirectory()
        func plan(_ prefix: String) -> Plan {
            makePlan((0..<20).map { task("\(prefix)\($0)", run: "echo \(prefix)\($0)") }
                     + [task("\(prefix)-slow", run: "sleep 30", timeout: .milliseconds(300))], directory: dir)
        }
        let runner = ProcessCommandRunner(killGrace: .milliseconds(200))
        async let first = runPlan(plan("x"), runner: runner, jobs: 4, keepGoing: true)
        async let second = runPlan(plan("y"), runner: runner, jobs: 4, keepGoing: true)
        let (a, b) = await (first.0, second.0)
        for (summary, prefix) in [(a, "x"), (b, "y")] {
            #expect(summary.count(.done) == 20)
            #expect(summary.status(of: "\(prefix)-slow") == .failed)
            #expect(summary.reports.filter { $0.status == .done }.allSatisfy { $0.resultText == $0.id + "\n" })
        }
    }

    /// After a failure nothing new starts, even with a slot free.
    @Test func failureStartsNothingEarly() async {
        let plan = makePlan([task("a", run: "exit 3"), task("b"), task("c")], directory: NSTemporaryDirectory())
        let (summary, reporter) = await runPlan(plan, runner: ProcessCommandRunner(), jobs: 1)
        #expect(summary.status == .failed)
        #expect(events(reporter) == ["start a", "failed a", "blocked b", "blocked c"])
    }

    /// A long run of up-to-date subtasks (each verdict costing CPU, as a
    /// key computation does) neither holds back a subtask that must run
    /// nor the handling of its end: it starts once its round is decided,
    /// and its finish is recorded while the chain is still being decided.
    @Test func runningWorkInterleavesWithALongRunOfCachedVerdicts() async {
        let chain = (0..<400).map { task("c\($0)", $0 == 0 ? [] : ["c\($0 - 1)"]) }
        let plan = makePlan([task("work", run: "echo work")] + chain, directory: NSTemporaryDirectory())
        let cache = SpinningCache(upToDate: Set(chain.map(\.id)), spin: .milliseconds(1))
        let (summary, reporter) = await runPlan(plan, runner: ProcessCommandRunner(), jobs: 2, cache: cache)
        #expect(summary.status == .completed)
        #expect(summary.count(.cached) == 400)
        let order = events(reporter)
        let started = order.firstIndex(of: "start work") ?? order.count
        let done = order.firstIndex(of: "done work") ?? order.count
        let lastCached = order.firstIndex(of: "cached c399") ?? -1
        #expect(started <= 2, "work starts after the first round (work, c0): \(order.prefix(5))")
        #expect(done < lastCached, "work's end is handled before the chain is decided")
    }
}

extension ExecutionEarlyStartTests {
    /// Cancelling during a long run of up-to-date verdicts stops deciding
    /// at the next slice: the cache cancels the run at its 100th verdict,
    /// and at most a slice more is decided; the rest is left `cancelled`.
    @Test func cancellationStopsALongRunOfVerdicts() async {
        let chain = (0..<2000).map { task("c\($0)", $0 == 0 ? [] : ["c\($0 - 1)"]) }
        let plan = makePlan(chain, directory: NSTemporaryDirectory())
        let cache = SpinningCache(upToDate: Set(chain.map(\.id)), spin: .microseconds(100), cancelAt: 100)
        let summary = await runPlan(plan, runner: FakeCommandRunner(), jobs: 2, cache: cache).0
        #expect(summary.status == .cancelled)
        let decided = summary.count(.cached)
        #expect(decided >= 100 && decided <= 100 + Executor.decisionSlice, "decided \(decided) of 2000")
        #expect(decided + summary.count(.cancelled) == 2000)
    }
}

/// A cache whose verdicts on `upToDate` ids each take `spin` of CPU (a busy
/// wait, not a sleep: the loop must give way by itself).
extension ExecutionEarlyStartTests {
    /// A finish that makes a dependent ready still frees its slot before it
    /// is recorded when what starts outranks that dependent: at -j 1, `b`
    /// (plan position 1) starts while `a` is recorded (slowly), and `c`
    /// (position 2, ready once `a` is recorded) comes after, as before.
    @Test func slotIsReusedWhileRecordingWhenTheNewDependentRanksLower() async {
        let plan = makePlan([task("a"), task("b"), task("c", ["a"])])
        let runner = FakeCommandRunner()
        let cache = SlowRecordCache(delay: .milliseconds(300))
        let (summary, _) = await runPlan(plan, runner: runner, jobs: 1, cache: cache)
        #expect(summary.status == .completed)
        let records = await runner.log.records
        #expect(records.map(\.id) == ["a", "b", "c"])
        let recordedA = await cache.finished["a"]
        let startB = records.first { $0.id == "b" }?.start
        if let recordedA, let startB { #expect(startB < recordedA, "b started only after a was recorded") }
        else { Issue.record("missing times") }
    }
}

/// A cache that runs everything and takes `delay` to record each result.
final class SlowRecordCache: BuildCache {
    let delay: Duration
    let times = Times()
    actor Times {
        var finished: [String: ContinuousClock.Instant] = [:]
        func set(_ id: String) { finished[id] = .now }
    }
    var finished: [String: ContinuousClock.Instant] { get async { await times.finished } }
    init(delay: Duration) { self.delay = delay }

    func decide(_ subtask: Subtask, dependencyDigests: [String: String]) async throws -> CacheDecision {
        .run(reason: .neverRan, key: nil)
    }

    func record(_ subtask: Subtask, key: ActionKey?, result: [UInt8]) async throws -> CacheRecord {
        try await Task.sleep(for: delay)
        await times.set(subtask.id)
        return CacheRecord(resultDigest: "d-\(subtask.id)")
    }
}

/// With `cancelAt`, it cancels the task deciding (the run) at that verdict.
final class SpinningCache: BuildCache {
    let upToDate: Set<String>
    let spin: Duration
    let cancelAt: Int?
    let verdicts = Atomic<Int>(0)
    init(upToDate: Set<String>, spin: Duration, cancelAt: Int? = nil) {
        self.upToDate = upToDate
        self.spin = spin
        self.cancelAt = cancelAt
    }

    func decide(_ subtask: Subtask, dependencyDigests: [String: String]) async throws -> CacheDecision {
        guard upToDate.contains(subtask.id) else { return .run(reason: .neverRan, key: nil) }
        let count = verdicts.add(1, ordering: .relaxed).newValue
        if count == cancelAt { withUnsafeCurrentTask { $0?.cancel() } }
        let end = ContinuousClock.now + spin
        while ContinuousClock.now < end {}
        return .upToDate(CachedOutcome(key: .named("k"), resultDigest: "d-\(subtask.id)", result: [], reason: .cached))
    }

    func record(_ subtask: Subtask, key: ActionKey?, result: [UInt8]) async throws -> CacheRecord { CacheRecord(resultDigest: "d-\(subtask.id)") }
}

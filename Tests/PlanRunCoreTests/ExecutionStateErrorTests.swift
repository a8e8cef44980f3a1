import Foundation
import GRDB
import Testing
@testable import PlanRunCore

/// Errors are never swallowed: a state write that fails is never
/// ignored. The failing writes are real SQLite errors, raised by triggers
/// the test adds to a real database.
@Suite struct ExecutionStateErrorTests {
    /// Removed with the suite's value; the store creates `dir` inside it.
    let temp = CachingTempDir()
    var dir: String { temp.path + "/state" }

    func run(failing trigger: String, jobs: Int = 1) async throws -> (RunSummary, StateStore) {
        let store = try StateStore(directory: dir)
        try await store.database.write { db in try db.execute(sql: trigger) }
        let plan = makePlan([task("a"), task("b", ["a"]), task("c", ["b"])])
        try store.beginRun(id: "r1", plan: "test", planFile: "plan.yaml", pid: getpid(), startedAt: Date(),
                           subtasks: plan.subtasks.enumerated().map { ($1.id, $0, $1.agent) })
        let executor = Executor(graph: TaskGraph(plan: plan), configuration: RunConfiguration(jobs: jobs),
                                runner: FakeCommandRunner([:]), store: store, runID: "r1")
        return (await executor.run(reporter: RecordingReporter()), store)
    }

    /// The run's last write (its end, in the final flush) fails: the run is
    /// not "completed", and says why.
    @Test func test_issue_10_aFailedFinalWriteFailsTheRun() async throws {
        let (summary, _) = try await run(failing: """
            CREATE TRIGGER no_end BEFORE UPDATE OF status ON runs WHEN NEW.status != 'in_progress'
            BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END
            """)
        #expect(summary.status == .failed)
        #expect(summary.exitCode == 1)
        #expect(summary.reason?.hasPrefix("cannot write the state database: ") == true, "\(summary.reason ?? "nil")")
        #expect(summary.reason?.contains("database or disk is full") == true, "\(summary.reason ?? "nil")")
        #expect(summary.reports.map(\.status) == [.done, .done, .done])
    }

    /// A write during the run fails: the run fails with the first error,
    /// and any subtask it did not start says why.
    @Test func test_issue_10_aFailedWriteDuringTheRunFailsIt() async throws {
        let (summary, store) = try await run(failing: """
            CREATE TRIGGER no_attempts BEFORE INSERT ON run_attempts
            BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END
            """)
        #expect(summary.status == .failed)
        #expect(summary.reason?.contains("disk I/O error") == true, "\(summary.reason ?? "nil")")
        let left = summary.reports.filter { $0.status != .done }
        #expect(left.allSatisfy { $0.error == "not started: \(summary.reason ?? "")" }, "\(left.map(\.error))")
        let status = try await store.database.read { db in try String.fetchOne(db, sql: "SELECT status FROM runs") }
        #expect(status != "completed")
    }
}

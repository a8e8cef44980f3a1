import Foundation
import GRDB
import Synchronization
import Testing
@testable import PlanRunCore

@Suite struct StateStoreTests {
    /// Removed with the suite's value; the store creates `dir` inside it.
    let temp = CachingTempDir()
    var dir: String { temp.path + "/state" }

    @Test func schemaHasTheTablesCachingUses() throws {
        let store = try StateStore(directory: dir)
        let tables = try store.database.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name")
        }
        for table in ["attempts", "file_digests", "run_subtasks", "runs", "subtask_state"] {
            #expect(tables.contains(table))
        }
        let mode = try store.database.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
    }

    @Test func executorWritesRunsSubtasksAndAttempts() async throws {
        let store = try StateStore(directory: dir)
        let plan = makePlan([task("a", retries: 1, backoff: .milliseconds(1)), task("b", ["a"]), task("c")])
        let runner = FakeCommandRunner(["a": .init(failingAttempts: [1]), "c": .init(failingAttempts: [1])])
        let graph = TaskGraph(plan: plan)
        try store.beginRun(id: "r1", plan: "test", planFile: "plan.yaml", pid: getpid(), startedAt: Date(),
                           subtasks: plan.subtasks.enumerated().map { ($1.id, $0, $1.agent) })
        let executor = Executor(graph: graph, configuration: RunConfiguration(jobs: 1, keepGoing: true, jitter: { 0 }),
                                runner: runner, store: store, runID: "r1")
        let summary = await executor.run(reporter: RecordingReporter())
        #expect(summary.status == .failed)

        let rows = try store.database.read { db in
            try Row.fetchAll(db, sql: "SELECT subtask_id, status, attempts, error FROM run_subtasks ORDER BY position")
        }
        #expect(rows.map { $0["status"] as String } == ["done", "done", "failed"])
        #expect(rows.map { $0["attempts"] as Int } == [2, 1, 1])
        #expect(rows[2]["error"] as String? == "exit status 1")
        let attempts = try store.database.read { db in
            try Row.fetchAll(db, sql: "SELECT subtask_id, attempt, status FROM attempts ORDER BY subtask_id, attempt")
        }
        #expect(attempts.map { "\($0["subtask_id"] as String)#\($0["attempt"] as Int)=\($0["status"] as String)" }
                == ["a#1=failed", "a#2=done", "b#1=done", "c#1=failed"])
        let run = try #require(try store.latestRun(buildRunning: false))
        #expect(run.status == "failed")
        #expect(run.done == 2 && run.failed == 1 && run.total == 3 && run.pending == 0)
        #expect(run.percentage == 66.7)
    }

    @Test func staleInProgressRunIsClosedAsInterrupted() throws {
        let store = try StateStore(directory: dir)
        try store.beginRun(id: "old", plan: "p", planFile: "plan.yaml", pid: 999_999, startedAt: Date(),
                           subtasks: [("a", 0, "shell"), ("b", 1, "shell")])
        try store.attemptStarted(runID: "old", subtask: "a", attempt: 1, at: Date(), reason: nil)
        // Without a build holding the lock, status reads it as interrupted, without writing.
        let shown = try #require(try store.latestRun(buildRunning: false))
        #expect(shown.status == "failed")
        #expect(shown.reason == "interrupted: process 999999 stopped before the run finished")
        #expect(shown.running == 0)
        let raw = try store.database.read { db in try String.fetchOne(db, sql: "SELECT status FROM runs") }
        #expect(raw == "in_progress")
        // The next build closes it.
        #expect(try store.closeStaleRuns() == ["old"])
        let statuses = try store.database.read { db in
            try String.fetchAll(db, sql: "SELECT status FROM run_subtasks ORDER BY position")
        }
        #expect(statuses == ["cancelled", "cancelled"])
        #expect(try store.latestRun(buildRunning: false)?.status == "failed")
    }

    /// The same events give the same rows whether each is written at once
    /// or queued and folded into one batch (a start whose attempt and
    /// subtask finish in the same batch costs no statements of its own),
    /// retries and a start left unfinished in the batch included.
    @Test func foldedBatchWritesTheSameRowsAsDirectWrites() throws {
        func events(_ store: StateStore) throws {
            try store.beginRun(id: "r", plan: "p", planFile: "plan.yaml", pid: getpid(), startedAt: Date(timeIntervalSince1970: 1),
                               subtasks: [("a", 0, "shell"), ("b", 1, "shell"), ("c", 2, "shell"), ("d", 3, "shell"),
                                          ("e", 4, "shell")])
            let t = { (x: Double) in Date(timeIntervalSince1970: x) }
            // d: cached, never started (fills in its queued row).
            try store.subtaskFinished(runID: "r", subtask: "d", status: "cached", attempts: 0, startedAt: t(5),
                                      completedAt: t(5), error: nil, result: [0x42], resultDigest: "f", cacheKey: "k3", reason: "cached")
            // a: one attempt, done.
            try store.attemptStarted(runID: "r", subtask: "a", attempt: 1, at: t(10), reason: "never ran")
            try store.attemptFinished(runID: "r", subtask: "a", attempt: 1, status: "done", startedAt: t(10.1),
                                      completedAt: t(11), exitCode: 0, error: nil, result: [0x41], resultDigest: "d", cacheKey: "k")
            try store.subtaskFinished(runID: "r", subtask: "a", status: "done", attempts: 1, startedAt: t(10),
                                      completedAt: t(11), error: nil, result: [0x41], resultDigest: "d", cacheKey: "k", reason: nil)
            // b: fails, retried, then done.
            try store.attemptStarted(runID: "r", subtask: "b", attempt: 1, at: t(20), reason: "input x changed")
            try store.attemptFinished(runID: "r", subtask: "b", attempt: 1, status: "failed", startedAt: t(20),
                                      completedAt: t(21), exitCode: 1, error: "exit status 1", result: nil, resultDigest: nil, cacheKey: "k2")
            try store.attemptStarted(runID: "r", subtask: "b", attempt: 2, at: t(22), reason: nil)
            try store.attemptFinished(runID: "r", subtask: "b", attempt: 2, status: "done", startedAt: t(22),
                                      completedAt: t(23), exitCode: 0, error: nil, result: [], resultDigest: "e", cacheKey: "k2")
            try store.subtaskFinished(runID: "r", subtask: "b", status: "done", attempts: 2, startedAt: t(20),
                                      completedAt: t(23), error: nil, result: [], resultDigest: "e", cacheKey: "k2", reason: nil)
            // c: still running.
            try store.attemptStarted(runID: "r", subtask: "c", attempt: 1, at: t(30), reason: "never ran")
            // e: blocked.
            try store.subtasksEnded(runID: "r", [("e", "blocked", "dependency `b` failed")], at: t(40))
        }
        func rows(_ store: StateStore) throws -> [String] {
            try store.database.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM run_subtasks ORDER BY position").map(\.description)
                    + Row.fetchAll(db, sql: "SELECT * FROM attempts ORDER BY subtask_id, attempt").map(\.description)
            }
        }
        let direct = try StateStore(directory: dir + "/direct")
        try events(direct)
        let batched = try StateStore(directory: dir + "/batched")
        batched.deferWrites()
        try events(batched)
        #expect(batched.hasPendingWrites)
        // Queued only: the subtasks are still as `beginRun` left them.
        #expect(try batched.database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM attempts") } == 0)
        try batched.flush()
        #expect(!batched.hasPendingWrites)
        let expected = try rows(direct)
        #expect(try rows(batched) == expected)
        #expect(expected.contains { $0.contains("\"c\"") && $0.contains("\"running\"") })
        #expect(expected.contains { $0.contains("\"a\"") && $0.contains("never ran") && $0.contains("\"done\"") })
        #expect(expected.contains { $0.contains("\"d\"") && $0.contains("\"cached\"") && $0.contains("k3") })
        #expect(expected.contains { $0.contains("\"e\"") && $0.contains("\"blocked\"") })

        // Committed in the background: the same rows once `flush` waited.
        let behind = try StateStore(directory: dir + "/behind")
        behind.deferWrites()
        try events(behind)
        behind.flushInBackground()
        #expect(!behind.hasPendingWrites)
        try behind.flush()
        #expect(try rows(behind) == expected)

        // A background commit that fails is thrown by the next flush.
        try behind.database.write { db in try db.execute(sql: "DROP TABLE run_attempts") }
        try behind.attemptStarted(runID: "r", subtask: "d", attempt: 1, at: Date(), reason: nil)
        behind.flushInBackground()
        #expect(throws: (any Error).self) { try behind.flush() }
        try behind.flush()  // reported once
    }

    #if os(Linux)
    /// Background commits (`flushInBackground`) run below the priority of
    /// the executor loop's thread (nice 0): a trigger on the rows they
    /// insert reads the committing thread's nice value, 2 for `.utility`
    /// (or a higher one Dispatch cannot lower); GRDB's default would be -2.
    @Test func backgroundCommitsRunBelowTheCallersPriority() throws {
        let store = try StateStore(directory: dir)
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        let seen = Mutex<[Int32]>([])
        let probe = DatabaseFunction("nice_probe", argumentCount: 0, pure: false) { _ in
            seen.withLock { $0.append(getpriority(which, 0)) }
            return nil
        }
        try store.database.writeWithoutTransaction { db in
            db.add(function: probe)
            try db.execute(sql: "CREATE TEMP TRIGGER probe AFTER INSERT ON run_attempts BEGIN SELECT nice_probe(); END")
        }
        try store.beginRun(id: "r", plan: "p", planFile: "plan.yaml", pid: getpid(), startedAt: Date(), subtasks: [("a", 0, "shell")])
        store.deferWrites()
        try store.attemptStarted(runID: "r", subtask: "a", attempt: 1, at: Date(), reason: nil)
        store.flushInBackground()
        try store.flush()
        let committed = seen.withLock { $0 }
        #expect(committed.count == 1)
        #expect(committed.allSatisfy { $0 >= 2 })
    }
    #endif

    /// Finishes attempt `attempt` of `subtask` in run `run`.
    private func finish(_ store: StateStore, run: String, _ subtask: String, attempt: Int = 1, status: String,
                        from start: Double, to end: Double) throws {
        try store.attemptFinished(runID: run, subtask: subtask, attempt: attempt, status: status,
                                  startedAt: Date(timeIntervalSince1970: start), completedAt: Date(timeIntervalSince1970: end),
                                  exitCode: status == "done" ? 0 : 1, error: nil, result: nil, resultDigest: nil, cacheKey: nil)
    }

    /// While writes are deferred, `beginRun` writes the run's row at once
    /// and queues its subtasks' rows: a status read in between counts every
    /// selected subtask as pending; after the flush, the rows are there.
    @Test func subtaskRowsQueuedByBeginRunCountAsPending() throws {
        let store = try StateStore(directory: dir)
        store.deferWrites()
        try store.beginRun(id: "r", plan: "p", planFile: "plan.yaml", pid: getpid(), startedAt: Date(),
                           subtasks: [("a", 0, "shell"), ("b", 1, "shell"), ("c", 2, "shell")])
        let reader = try #require(try StateStore(readingDirectory: dir))
        let early = try #require(try reader.latestRun(buildRunning: true))
        #expect(early.status == "in_progress")
        #expect(early.total == 3 && early.pending == 3 && early.done == 0)
        try store.subtaskFinished(runID: "r", subtask: "a", status: "cached", attempts: 0, startedAt: Date(),
                                  completedAt: Date(), error: nil, result: [], resultDigest: "d", cacheKey: "k", reason: "cached")
        try store.flush()
        let later = try #require(try reader.latestRun(buildRunning: true))
        #expect(later.total == 3 && later.done == 1 && later.pending == 2)
    }

    @Test func lastDurationsAreTheLatestSuccessfulAttempts() throws {
        let store = try StateStore(directory: dir)
        #expect(try store.lastDurations().isEmpty)
        try store.beginRun(id: "r1", plan: "p", planFile: "plan.yaml", pid: getpid(), startedAt: Date(),
                           subtasks: [("a", 0, "shell"), ("b", 1, "shell"), ("c", 2, "shell")])
        try store.beginRun(id: "r2", plan: "p", planFile: "plan.yaml", pid: getpid(), startedAt: Date(),
                           subtasks: [("a", 0, "shell"), ("b", 1, "shell"), ("c", 2, "shell")])
        try finish(store, run: "r1", "a", status: "done", from: 100, to: 102)
        try finish(store, run: "r2", "a", status: "done", from: 200, to: 205)   // later: wins
        try finish(store, run: "r1", "b", status: "done", from: 300, to: 303)
        try finish(store, run: "r2", "b", status: "done", from: 150, to: 151)   // written later, completed earlier
        try finish(store, run: "r2", "b", attempt: 2, status: "failed", from: 400, to: 450) // failures never count
        try finish(store, run: "r1", "c", status: "timed_out", from: 100, to: 130)
        // A run's durations count once it ends.
        #expect(try store.lastDurations().isEmpty)
        try store.finishRun(id: "r2", status: "failed", reason: nil, at: Date())
        #expect(try store.lastDurations() == ["a": 5, "b": 1])
        try store.finishRun(id: "r1", status: "failed", reason: nil, at: Date())
        #expect(try store.lastDurations() == ["a": 5, "b": 3])
        // Deferred writes land with the flush, in order.
        try store.beginRun(id: "r3", plan: "p", planFile: "plan.yaml", pid: getpid(), startedAt: Date(),
                           subtasks: [("c", 2, "shell")])
        store.deferWrites()
        try finish(store, run: "r3", "c", status: "done", from: 500, to: 500.25)
        try store.finishRun(id: "r3", status: "completed", reason: nil, at: Date())
        #expect(try store.lastDurations()["c"] == nil)
        try store.flush()
        #expect(try store.lastDurations() == ["a": 5, "b": 3, "c": 0.25])
    }

    @Test func aKilledRunsDurationsCountWhenItIsClosed() throws {
        let store = try StateStore(directory: dir)
        try store.beginRun(id: "killed", plan: "p", planFile: "plan.yaml", pid: 999_999, startedAt: Date(),
                           subtasks: [("a", 0, "shell"), ("b", 1, "shell")])
        try finish(store, run: "killed", "a", status: "done", from: 10, to: 12.5)
        try store.attemptStarted(runID: "killed", subtask: "b", attempt: 1, at: Date(), reason: nil)
        #expect(try store.closeStaleRuns() == ["killed"])
        #expect(try store.lastDurations() == ["a": 2.5])
    }

    @Test func durationsMigrateFromAnExistingHistory() throws {
        // A database at schema v1 (before `subtask_durations`) with history.
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let old = try DatabaseQueue(path: (dir as NSString).appendingPathComponent("state.db"))
        try StateStore.migrator.migrate(old, upTo: "v1")
        try old.write { db in
            try db.execute(sql: """
                INSERT INTO runs (id, plan, plan_file, status, pid, started_at) VALUES ('r', 'p', 'plan.yaml', 'completed', 1, 0);
                INSERT INTO attempts (run_id, subtask_id, attempt, status, started_at, completed_at) VALUES
                    ('r', 'a', 1, 'done', 10, 14), ('r', 'a', 2, 'done', 20, 21),
                    ('r', 'b', 1, 'failed', 10, 40), ('r', 'c', 1, 'done', 10, NULL);
                """)
        }
        try old.close()
        let store = try StateStore(directory: dir)
        #expect(try store.lastDurations() == ["a": 1])
    }

    @Test func cancelRequestIsRecordedForTheRunningRun() throws {
        let store = try StateStore(directory: dir)
        #expect(try store.requestCancel(reason: "nobody") == false)
        try store.beginRun(id: "r", plan: "p", planFile: "plan.yaml", pid: getpid(), startedAt: Date(), subtasks: [])
        #expect(try store.requestCancel(reason: "stop now") == true)
        #expect(try store.cancelRequest(runID: "r") == "stop now")
    }

    @Test func readOnlyOpenOfMissingStateIsNil() throws {
        #expect(try StateStore(readingDirectory: dir + "/none") == nil)
    }

    /// Bounded state: pruning gives the space of the
    /// deleted runs back; the file does not stay at its high point. Also
    /// for a database made without incremental auto-vacuum (converted once).
    @Test(arguments: [false, true])
    func test_issue_10_prunedRunsGiveTheirSpaceBack(oldDatabase: Bool) throws {
        if oldDatabase {
            // What an earlier planrun made: no auto-vacuum.
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let queue = try DatabaseQueue(path: dir + "/state.db")
            try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
            try StateStore.migrator.migrate(queue)
            #expect(try queue.read { db in try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") } == 0)
        }
        func fileSize() throws -> Int {
            let store = try StateStore(directory: dir)
            try store.database.writeWithoutTransaction { db in _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            return try #require(FileManager.default.attributesOfItem(atPath: dir + "/state.db")[.size] as? Int)
        }
        // A result of its own per row: rows with equal results share one copy.
        func result(_ run: Int, _ n: Int) -> [UInt8] { Array("\(run)-\(n)-".utf8) + [UInt8](repeating: 0x61, count: 2000) }
        do {
            let store = try StateStore(directory: dir)
            for run in 0..<8 {
                let id = "run-\(run)"
                try store.beginRun(id: id, plan: "p", planFile: "plan.yaml", pid: getpid(),
                                   startedAt: Date(timeIntervalSince1970: Double(1000 + run)),
                                   subtasks: (0..<200).map { ("s\($0)", $0, "shell") })
                for n in 0..<200 {
                    try store.subtaskFinished(runID: id, subtask: "s\(n)", status: "done", attempts: 1, startedAt: Date(),
                                              completedAt: Date(), error: nil, result: result(run, n), resultDigest: nil,
                                              cacheKey: nil, reason: nil)
                }
                try store.finishRun(id: id, status: "completed", reason: nil, at: Date())
            }
        }
        let high = try fileSize()
        #expect(high > 8 * 200 * 2000)
        let store = try StateStore(directory: dir)
        #expect(try store.pruneRuns(keeping: 1, slack: 0).count == 7)
        #expect(try store.database.read { db in try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") } == 2)
        let after = try fileSize()
        #expect(after < high / 4)
    }
}

import Foundation
import GRDB
import Testing
@testable import PlanRunCore

/// The compact run tables (`v4-compact-runs`): what a v3 database held reads
/// back the same after the migration, rows share their outcome, pruning
/// takes the names and outcomes no run uses, and a failed transaction
/// leaves no id behind that names nothing.
@Suite struct StateCompactTests {
    /// Removed with the suite's value; the store creates `dir` inside it.
    let temp = CachingTempDir()
    var dir: String { temp.path + "/state" }

    static let key = String(repeating: "0123456789abcdef", count: 4)
    static let digest = String(repeating: "fedcba9876543210", count: 4)

    /// Every row of both views, as text, times to the microsecond.
    private func rows(_ db: Database) throws -> [String] {
        func text(_ row: Row) -> String {
            row.columnNames.map { name -> String in
                let value: DatabaseValue = row[name]
                switch value.storage {
                case .double(let d): return "\(name)=\((d * 1e6).rounded() / 1e6)"
                case .blob(let data): return "\(name)=x\(data.map { String($0, radix: 16) }.joined())"
                default: return "\(name)=\(value)"
                }
            }.joined(separator: " ")
        }
        return try Row.fetchAll(db, sql: "SELECT * FROM run_subtasks ORDER BY run_id, position").map(text)
            + Row.fetchAll(db, sql: "SELECT * FROM attempts ORDER BY run_id, subtask_id, attempt").map(text)
    }

    @Test func aV3DatabaseKeepsItsHistoryThroughTheMigration() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let old = try DatabaseQueue(path: dir + "/state.db")
        try StateStore.migrator.migrate(old, upTo: "v3-durations-per-run")
        try old.write { db in
            try db.execute(sql: """
                INSERT INTO runs (id, plan, plan_file, status, reason, pid, started_at, completed_at, total)
                VALUES ('20260101-000000-aaaaaa', 'p', 'plan.yaml', 'completed', NULL, 7, 1767225600.125, 1767225610.5, 3),
                       ('20260102-000000-bbbbbb', 'p', 'plan.yaml', 'failed', 'subtask failed', 8, 1767312000.25, 1767312009.75, 3);
                INSERT INTO run_subtasks (run_id, subtask_id, position, agent, status, attempts, started_at, completed_at,
                    error, result, result_digest, cache_key, reason) VALUES
                    ('20260101-000000-aaaaaa', 'build', 0, 'shell', 'done', 1, 1767225600.5, 1767225601.25, NULL, X'6f6b',
                        '\(Self.digest)', '\(Self.key)', 'never ran'),
                    ('20260101-000000-aaaaaa', 'test', 1, 'tester', 'done', 2, 1767225601.5, 1767225605.0, NULL, X'',
                        'd', 'k1', 'input a changed'),
                    ('20260101-000000-aaaaaa', 'ship', 2, 'shell', 'cached', 0, 1767225605.5, 1767225605.5, NULL, X'',
                        '\(Self.digest)', '\(Self.key)', 'cached'),
                    ('20260102-000000-bbbbbb', 'build', 0, 'shell', 'cached', 0, 1767312000.5, 1767312000.5, NULL, X'6f6b',
                        '\(Self.digest)', '\(Self.key)', 'cached'),
                    ('20260102-000000-bbbbbb', 'test', 1, 'tester', 'failed', 1, 1767312001.0, 1767312002.0,
                        'exit status 1', NULL, NULL, 'k2', 'input a changed'),
                    ('20260102-000000-bbbbbb', 'ship', 2, 'shell', 'blocked', 0, NULL, 1767312002.0,
                        'dependency `test` failed', NULL, NULL, NULL, NULL);
                INSERT INTO attempts (run_id, subtask_id, attempt, status, started_at, completed_at, exit_code, error,
                    result, result_digest, cache_key) VALUES
                    ('20260101-000000-aaaaaa', 'build', 1, 'done', 1767225600.5, 1767225601.25, 0, NULL, X'6f6b',
                        '\(Self.digest)', '\(Self.key)'),
                    ('20260101-000000-aaaaaa', 'test', 1, 'failed', 1767225601.5, 1767225602.0, 1, 'exit status 1', NULL,
                        NULL, 'k1'),
                    ('20260101-000000-aaaaaa', 'test', 2, 'done', 1767225603.0, 1767225605.0, 0, NULL, X'', 'd', 'k1'),
                    ('20260102-000000-bbbbbb', 'test', 1, 'failed', 1767312001.0, 1767312002.0, 1, 'exit status 1', NULL,
                        NULL, 'k2');
                """)
        }
        let before = try old.read(rows)
        try old.close()

        let store = try StateStore(directory: dir)
        #expect(try store.database.read(rows) == before)
        let (rowCount, blobKeys, names) = try store.database.read { db in
            (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM run_rows"),
             try Int.fetchAll(db, sql: "SELECT length(cache_key) FROM outcomes WHERE typeof(cache_key) = 'blob'"),
             try String.fetchAll(db, sql: "SELECT name FROM names ORDER BY id"))
        }
        #expect(rowCount == 6)
        // The hex key is stored as its 32 bytes: once for build's two rows and its attempt, once for
        // ship's row (another result).
        #expect(blobKeys == [32, 32])
        #expect(names == ["build", "test", "ship", "shell", "tester"])
        let last = try #require(try store.latestRun(buildRunning: false))
        #expect(last.runID == "20260102-000000-bbbbbb" && last.total == 3 && last.done == 1 && last.failed == 1)
        let shown = try #require(try store.subtaskStatus(
            runID: "20260101-000000-aaaaaa", subtask: task("test", agent: "tester")))
        #expect(shown.status == "done" && shown.attempts == 2 && shown.agent == "tester" && shown.reason == "input a changed")
        #expect(shown.durationSeconds == 3.5)
        #expect(try store.unfinishedSubtasksOfLastRun()?.ids == ["test", "ship"])
    }

    @Test func cachedRowsOfManyRunsShareOneOutcome() throws {
        let store = try StateStore(directory: dir)
        store.deferWrites()
        for run in 0..<3 {
            let id = "run-\(run)"
            try store.beginRun(id: id, plan: "p", planFile: "plan.yaml", pid: getpid(), startedAt: Date(),
                               subtasks: (0..<50).map { ("s\($0)", $0, "shell") })
            for n in 0..<50 {
                // A cached row starts and ends at one instant.
                let now = Date()
                try store.subtaskFinished(runID: id, subtask: "s\(n)", status: "cached", attempts: 0, startedAt: now,
                                          completedAt: now, error: nil, result: Array("result \(n)".utf8),
                                          resultDigest: Self.digest, cacheKey: "\(n)" + Self.key.dropFirst("\(n)".count),
                                          reason: "cached")
            }
            try store.finishRun(id: id, status: "completed", reason: nil, at: Date())
            try store.flush()
        }
        let (counts, s7) = try store.database.read { db in
            (try Int.fetchAll(db, sql: """
                SELECT (SELECT COUNT(*) FROM run_rows) UNION ALL SELECT (SELECT COUNT(*) FROM outcomes)
                UNION ALL SELECT (SELECT COUNT(*) FROM names)
                """),
             try Row.fetchAll(db, sql: """
                SELECT cache_key, result_digest, result, started_at = completed_at AS instant, reason,
                    (SELECT COUNT(*) FROM run_rows WHERE reason IS NOT NULL) AS stored_reasons
                FROM run_subtasks WHERE subtask_id = 's7'
                """))
        }
        // 150 rows, one outcome per subtask, 50 subtask ids and the agent.
        #expect(counts == [150, 50, 51])
        #expect(s7.count == 3)
        for row in s7 {
            #expect(row["cache_key"] as String == "7" + Self.key.dropFirst())
            #expect(row["result_digest"] as String == Self.digest)
            #expect(row["result"] as Data == Data("result 7".utf8))
            #expect(row["instant"] as Bool)
            // Shown as written, stored as nothing.
            #expect(row["reason"] as String? == "cached")
            #expect(row["stored_reasons"] as Int == 0)
        }
    }

    @Test func pruningTakesTheNamesAndOutcomesNoRunUses() throws {
        let store = try StateStore(directory: dir)
        func run(_ id: String, at start: Double, _ subtasks: [String]) throws {
            try store.beginRun(id: id, plan: "p", planFile: "plan.yaml", pid: getpid(),
                               startedAt: Date(timeIntervalSince1970: start),
                               subtasks: subtasks.enumerated().map { ($1, $0, "agent-\(id)") })
            for s in subtasks {
                try store.attemptStarted(runID: id, subtask: s, attempt: 1, at: Date(), reason: nil)
                try store.attemptFinished(runID: id, subtask: s, attempt: 1, status: "done", startedAt: Date(),
                                          completedAt: Date(), exitCode: 0, error: nil, result: Array("\(id) \(s)".utf8),
                                          resultDigest: "d-\(id)-\(s)", cacheKey: "k-\(s)")
                try store.subtaskFinished(runID: id, subtask: s, status: "done", attempts: 1, startedAt: nil,
                                          completedAt: Date(), error: nil, result: Array("\(id) \(s)".utf8),
                                          resultDigest: "d-\(id)-\(s)", cacheKey: "k-\(s)", reason: nil)
            }
            try store.finishRun(id: id, status: "completed", reason: nil, at: Date())
        }
        try run("old", at: 1000, ["a", "b"])
        try run("new", at: 2000, ["a", "c"])
        #expect(try store.pruneRuns(keeping: 1, slack: 0) == ["old"])
        let (names, keys, orphans, attempts) = try store.database.read { db in
            (try String.fetchAll(db, sql: "SELECT name FROM names ORDER BY name"),
             try String.fetchAll(db, sql: "SELECT cache_key FROM outcomes ORDER BY cache_key"),
             try Int.fetchOne(db, sql: """
                SELECT (SELECT COUNT(*) FROM run_rows WHERE run NOT IN (SELECT seq FROM runs))
                    + (SELECT COUNT(*) FROM run_attempts WHERE run NOT IN (SELECT seq FROM runs))
                """),
             try String.fetchAll(db, sql: "SELECT subtask_id FROM attempts ORDER BY subtask_id"))
        }
        #expect(names == ["a", "agent-new", "c"])
        #expect(keys == ["k-a", "k-c"])
        #expect(orphans == 0)
        #expect(attempts == ["a", "c"])
        // Names taken by the pruning come back when used again.
        try run("newer", at: 3000, ["b"])
        #expect(try store.database.read { db in
            try String.fetchAll(db, sql: "SELECT subtask_id || ':' || agent FROM run_subtasks WHERE run_id = 'newer'")
        } == ["b:agent-newer"])
    }

    /// A batch that fails rolls back the names it added; later rows must
    /// not refer to them.
    @Test func aFailedBatchLeavesNoIdThatNamesNothing() throws {
        let store = try StateStore(directory: dir)
        store.deferWrites()
        try store.beginRun(id: "r1", plan: "p", planFile: "plan.yaml", pid: getpid(), startedAt: Date(),
                           subtasks: [("fresh", 0, "new-agent")])
        // No such run: the batch fails after `fresh` and `new-agent` were added in it.
        try store.attemptStarted(runID: "gone", subtask: "x", attempt: 1, at: Date(), reason: nil)
        #expect(throws: (any Error).self) { try store.flush() }
        try store.beginRun(id: "r2", plan: "p", planFile: "plan.yaml", pid: getpid(), startedAt: Date(),
                           subtasks: [("fresh", 0, "new-agent")])
        try store.flush()
        #expect(try store.database.read { db in
            try String.fetchAll(db, sql: "SELECT run_id || ' ' || subtask_id || ' ' || agent FROM run_subtasks")
        } == ["r2 fresh new-agent"])
    }
}

import Foundation
import GRDB

/// The statements that write a run's rows into the compact tables
/// (`run_rows`, `run_attempts`; see `v4-compact-runs`), with text turned
/// into ids (`StateRefs`) and times into microseconds from the run's start.
extension StateStore {
    static func insertRunRows(_ db: Database, runID: String, _ rows: [RunRow], _ refs: StateRefs) throws {
        let run = try refs.run(db, runID)
        let outcomes = try StateRefs.Outcomes(db)
        let statement = try db.makeStatement(sql: """
            INSERT INTO run_rows (run, subtask, position, agent, status, attempts, started, ended, error, outcome, reason)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for row in rows {
            let started = row.startedAt.map(run.offset)
            try statement.execute(arguments: [
                run.seq, refs.name(db, row.subtask), row.position, refs.name(db, row.agent), row.status, row.attempts,
                started, row.completedAt.map { run.offset($0) - (started ?? 0) }, row.error,
                outcomes.id(key: row.cacheKey, digest: row.resultDigest, result: row.result),
                storedReason(row.reason, status: row.status),
            ])
        }
    }

    /// The `reason` a row stores: none for the most common pair, a
    /// subtask `cached` because it was up to date (the `run_subtasks` view
    /// gives it back).
    static func storedReason(_ reason: String?, status: String) -> String? {
        status == "cached" && reason == RunReason.cached.description ? nil : reason
    }

    static func writeStart(_ db: Database, _ start: PendingStart, _ refs: StateRefs) throws {
        let run = try refs.run(db, start.runID)
        let subtask = try refs.name(db, start.subtask)
        let time = run.offset(start.time)
        try db.cachedStatement(sql: """
            UPDATE run_rows SET status = 'running', attempts = ?,
                started = COALESCE(started, ?), reason = COALESCE(?, reason)
            WHERE run = ? AND subtask = ?
            """).execute(arguments: [start.attempt, time, start.reason, run.seq, subtask])
        guard !start.attemptRowReplaced else { return }
        try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO run_attempts (run, subtask, attempt, status, started)
            VALUES (?, ?, ?, 'running', ?)
            """).execute(arguments: [run.seq, subtask, start.attempt, time])
    }

    /// An attempt's whole row. Its length is kept exact (from the two
    /// times, not from their offsets): it is what `subtask_durations` holds.
    static func writeAttempt(
        _ db: Database, _ refs: StateRefs, runID: String, subtask: String, attempt: Int, status: String,
        startedAt: Double, completedAt: Double, exitCode: Int?, error: String?, result: Data?,
        resultDigest: String?, cacheKey: String?
    ) throws {
        let run = try refs.run(db, runID)
        try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO run_attempts (run, subtask, attempt, status, started, ended, exit_code, error, outcome)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [
                run.seq, refs.name(db, subtask), attempt, status, run.offset(startedAt),
                Int64(((completedAt - startedAt) * 1e6).rounded()), exitCode, error,
                StateRefs.outcome(db, key: cacheKey, digest: resultDigest, result: result),
            ])
    }

    /// A subtask's final values. `ended` counts from the row's `started`
    /// as it is after this update (SQLite evaluates every `SET` against
    /// the row as it was).
    static func writeFinish(
        _ db: Database, _ refs: StateRefs, runID: String, subtask: String, status: String, attempts: Int,
        startedAt: Double?, completedAt: Double, error: String?, result: Data?, resultDigest: String?,
        cacheKey: String?, reason: String?
    ) throws {
        let run = try refs.run(db, runID)
        let started = startedAt.map(run.offset)
        try db.cachedStatement(sql: """
            UPDATE run_rows SET status = ?, attempts = ?, started = COALESCE(started, ?),
                ended = ? - COALESCE(started, ?, 0), error = ?, outcome = ?, reason = COALESCE(?, reason)
            WHERE run = ? AND subtask = ?
            """).execute(arguments: [
                status, attempts, started, run.offset(completedAt), started, error,
                StateRefs.outcome(db, key: cacheKey, digest: resultDigest, result: result),
                storedReason(reason, status: status), run.seq, refs.name(db, subtask),
            ])
    }

    /// Subtasks that end without running (blocked, cancelled) at `time`.
    static func writeEnded(
        _ db: Database, _ refs: StateRefs, runID: String, _ entries: [(id: String, status: String, error: String?)],
        at time: Double
    ) throws {
        let run = try refs.run(db, runID)
        let statement = try db.makeStatement(sql: """
            UPDATE run_rows SET status = ?, error = ?, ended = ? - COALESCE(started, 0)
            WHERE run = ? AND subtask = ?
            """)
        for e in entries {
            try statement.execute(arguments: [e.status, e.error, run.offset(time), run.seq, refs.name(db, e.id)])
        }
    }

    /// Closes run `id` left `in_progress` by a build that stopped at `time`:
    /// its unfinished subtasks and attempts become `cancelled`.
    static func writeInterrupted(_ db: Database, _ refs: StateRefs, runID id: String, pid: Int, at time: Double) throws {
        let run = try refs.run(db, id)
        let end = run.offset(time)
        try db.execute(sql: "UPDATE runs SET status = 'failed', completed_at = ?, reason = ? WHERE seq = ?",
                       arguments: [time, "interrupted: process \(pid) stopped before the run finished", run.seq])
        try db.execute(sql: """
            UPDATE run_rows SET status = 'cancelled', ended = ? - COALESCE(started, 0),
                error = COALESCE(error, 'interrupted')
            WHERE run = ? AND status IN ('pending', 'running')
            """, arguments: [end, run.seq])
        try db.execute(sql: """
            UPDATE run_attempts SET status = 'cancelled', ended = ? - started, error = 'interrupted'
            WHERE run = ? AND status = 'running'
            """, arguments: [end, run.seq])
    }

    /// Copies the successful attempts of run `id` into `subtask_durations`
    /// (the latest completion wins), in one statement.
    static func recordDurations(_ db: Database, _ refs: StateRefs, runID id: String) throws {
        let run = try refs.run(db, id)
        try db.execute(sql: """
            INSERT INTO subtask_durations (subtask_id, seconds, completed_at)
                SELECT n.name, MAX(0, a.ended / 1e6), ? + (a.started + a.ended) / 1e6
                FROM run_attempts a JOIN names n ON n.id = a.subtask
                WHERE a.run = ? AND a.status = 'done' AND a.ended IS NOT NULL
            ON CONFLICT(subtask_id) DO UPDATE SET seconds = excluded.seconds, completed_at = excluded.completed_at
                WHERE excluded.completed_at >= subtask_durations.completed_at
            """, arguments: [run.startedAt, run.seq])
    }
}

import GRDB

/// The state database's schema, as migrations applied in order when the
/// database is opened for writing. A migration is never edited once
/// released: a change is a new migration.
extension StateStore {
    package static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE runs (
                    id TEXT PRIMARY KEY NOT NULL,
                    plan TEXT NOT NULL,
                    plan_file TEXT NOT NULL,
                    status TEXT NOT NULL,
                    reason TEXT,
                    pid INTEGER NOT NULL,
                    started_at REAL NOT NULL,
                    completed_at REAL,
                    total INTEGER NOT NULL DEFAULT 0,
                    cancel_request TEXT
                );
                CREATE INDEX runs_started ON runs(started_at);
                CREATE TABLE run_subtasks (
                    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                    subtask_id TEXT NOT NULL,
                    position INTEGER NOT NULL,
                    agent TEXT NOT NULL,
                    status TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    started_at REAL,
                    completed_at REAL,
                    error TEXT,
                    result BLOB,
                    result_digest TEXT,
                    cache_key TEXT,
                    reason TEXT,
                    PRIMARY KEY (run_id, subtask_id)
                );
                CREATE TABLE attempts (
                    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                    subtask_id TEXT NOT NULL,
                    attempt INTEGER NOT NULL,
                    status TEXT NOT NULL,
                    started_at REAL NOT NULL,
                    completed_at REAL,
                    exit_code INTEGER,
                    error TEXT,
                    result BLOB,
                    result_digest TEXT,
                    cache_key TEXT,
                    PRIMARY KEY (run_id, subtask_id, attempt)
                );
                CREATE TABLE subtask_state (
                    subtask_id TEXT PRIMARY KEY NOT NULL,
                    cache_key TEXT,
                    result_digest TEXT,
                    result BLOB,
                    outputs TEXT,
                    updated_at REAL
                );
                CREATE TABLE file_digests (
                    path TEXT PRIMARY KEY NOT NULL,
                    size INTEGER NOT NULL,
                    mtime_ns INTEGER NOT NULL,
                    inode INTEGER NOT NULL,
                    ctime_ns INTEGER NOT NULL,
                    digest TEXT NOT NULL
                );
                """)
        }
        // The duration of each subtask's latest successful attempt, so
        // `lastDurations` reads one row per subtask instead of grouping the
        // whole attempt history, which grows with every build.
        migrator.registerMigration("v2-durations") { db in
            try db.execute(sql: """
                CREATE TABLE subtask_durations (
                    subtask_id TEXT PRIMARY KEY NOT NULL,
                    seconds REAL NOT NULL,
                    completed_at REAL NOT NULL
                );
                INSERT INTO subtask_durations (subtask_id, seconds, completed_at)
                    SELECT subtask_id, MAX(0, completed_at - started_at), MAX(completed_at)
                    FROM attempts WHERE status = 'done' AND completed_at IS NOT NULL GROUP BY subtask_id;
                CREATE TRIGGER attempts_done_duration AFTER INSERT ON attempts
                WHEN NEW.status = 'done' AND NEW.completed_at IS NOT NULL
                BEGIN
                    INSERT INTO subtask_durations (subtask_id, seconds, completed_at)
                    VALUES (NEW.subtask_id, MAX(0, NEW.completed_at - NEW.started_at), NEW.completed_at)
                    ON CONFLICT(subtask_id) DO UPDATE SET seconds = excluded.seconds, completed_at = excluded.completed_at
                    WHERE excluded.completed_at >= subtask_durations.completed_at;
                END;
                """)
        }
        // A trigger would cost a statement per finished attempt: the run's
        // durations are copied in one statement when it ends instead
        // (`recordDurations`).
        migrator.registerMigration("v3-durations-per-run") { db in
            try db.execute(sql: "DROP TRIGGER IF EXISTS attempts_done_duration")
        }
        migrator.registerMigration("v4-compact-runs", migrate: compactRuns)
        return migrator
    }

    /// A build records a row per selected subtask, and the newest runs are
    /// kept: for a large plan nearly all of those rows are `cached` ones
    /// that repeat the last run's values. `v4` stores them compactly:
    /// - `names(id, name)`: each subtask id and agent name once;
    /// - `outcomes(id, cache_key, result_digest, result)`: each distinct
    ///   (key, result digest, result) once, keys and digests as 32-byte
    ///   blobs (`StateDigest`), shared by every row that has it;
    /// - `runs` gains `seq`, an integer the rows refer to;
    /// - `run_rows(run, subtask, position, agent, status, attempts, started,
    ///   ended, error, outcome, reason)` and `run_attempts(run, subtask,
    ///   attempt, status, started, ended, exit_code, error, outcome)`,
    ///   keyed by those integers (`WITHOUT ROWID`: the key is the row's
    ///   place, no second index). Times are integer microseconds: `started`
    ///   after the run's `started_at`, `ended` after `started` (after the
    ///   run's start when the subtask never started), so a cached row's
    ///   two times take no bytes. A `cached` row skipped as up to date has
    ///   no `reason` (the view shows `cached`, what was written).
    /// `run_subtasks` and `attempts` become views with the columns they had
    /// (times in seconds, digests in hex), which is what the readers query:
    /// they read a database of either version the same way, and a
    /// read-only command never migrates.
    private static func compactRuns(_ db: Database) throws {
        db.add(function: StateDigest.sqlFunction)
        try db.execute(sql: """
            CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
            CREATE TABLE outcomes (id INTEGER PRIMARY KEY, cache_key BLOB, result_digest BLOB, result BLOB);
            CREATE INDEX outcomes_lookup ON outcomes(cache_key, result_digest);
            DROP INDEX runs_started;
            ALTER TABLE runs RENAME TO runs_v3;
            CREATE TABLE runs (
                seq INTEGER PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                plan TEXT NOT NULL,
                plan_file TEXT NOT NULL,
                status TEXT NOT NULL,
                reason TEXT,
                pid INTEGER NOT NULL,
                started_at REAL NOT NULL,
                completed_at REAL,
                total INTEGER NOT NULL DEFAULT 0,
                cancel_request TEXT
            );
            CREATE INDEX runs_started ON runs(started_at);
            INSERT INTO runs (id, plan, plan_file, status, reason, pid, started_at, completed_at, total, cancel_request)
                SELECT id, plan, plan_file, status, reason, pid, started_at, completed_at, total, cancel_request
                FROM runs_v3 ORDER BY started_at, rowid;
            CREATE TABLE run_rows (
                run INTEGER NOT NULL REFERENCES runs(seq) ON DELETE CASCADE,
                subtask INTEGER NOT NULL,
                position INTEGER NOT NULL,
                agent INTEGER NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                started INTEGER,
                ended INTEGER,
                error TEXT,
                outcome INTEGER,
                reason TEXT,
                PRIMARY KEY (run, subtask)
            ) WITHOUT ROWID;
            CREATE TABLE run_attempts (
                run INTEGER NOT NULL REFERENCES runs(seq) ON DELETE CASCADE,
                subtask INTEGER NOT NULL,
                attempt INTEGER NOT NULL,
                status TEXT NOT NULL,
                started INTEGER NOT NULL,
                ended INTEGER,
                exit_code INTEGER,
                error TEXT,
                outcome INTEGER,
                PRIMARY KEY (run, subtask, attempt)
            ) WITHOUT ROWID;
            INSERT OR IGNORE INTO names (name)
                SELECT subtask_id FROM run_subtasks ORDER BY run_id DESC, position;
            INSERT OR IGNORE INTO names (name) SELECT subtask_id FROM attempts;
            INSERT OR IGNORE INTO names (name) SELECT agent FROM run_subtasks;
            CREATE TEMP TABLE old_outcomes AS
                SELECT DISTINCT planrun_digest(cache_key) AS cache_key, planrun_digest(result_digest) AS result_digest, result
                FROM (SELECT cache_key, result_digest, result FROM run_subtasks
                      UNION ALL SELECT cache_key, result_digest, result FROM attempts)
                WHERE cache_key IS NOT NULL OR result_digest IS NOT NULL OR result IS NOT NULL;
            INSERT INTO outcomes (cache_key, result_digest, result) SELECT * FROM old_outcomes;
            DROP TABLE old_outcomes;
            INSERT INTO run_rows (run, subtask, position, agent, status, attempts, started, ended, error, outcome, reason)
                SELECT r.seq, s.id, t.position, a.id, t.status, t.attempts,
                    CAST(round((t.started_at - r.started_at) * 1e6) AS INTEGER),
                    CAST(round((t.completed_at - r.started_at) * 1e6) AS INTEGER)
                        - COALESCE(CAST(round((t.started_at - r.started_at) * 1e6) AS INTEGER), 0),
                    t.error,
                    (SELECT o.id FROM outcomes o WHERE o.cache_key IS planrun_digest(t.cache_key)
                        AND o.result_digest IS planrun_digest(t.result_digest) AND o.result IS t.result),
                    CASE WHEN t.status = 'cached' AND t.reason = 'cached' THEN NULL ELSE t.reason END
                FROM run_subtasks t JOIN runs r ON r.id = t.run_id
                JOIN names s ON s.name = t.subtask_id JOIN names a ON a.name = t.agent;
            INSERT INTO run_attempts (run, subtask, attempt, status, started, ended, exit_code, error, outcome)
                SELECT r.seq, s.id, t.attempt, t.status,
                    CAST(round((t.started_at - r.started_at) * 1e6) AS INTEGER),
                    CAST(round((t.completed_at - t.started_at) * 1e6) AS INTEGER),
                    t.exit_code, t.error,
                    (SELECT o.id FROM outcomes o WHERE o.cache_key IS planrun_digest(t.cache_key)
                        AND o.result_digest IS planrun_digest(t.result_digest) AND o.result IS t.result)
                FROM attempts t JOIN runs r ON r.id = t.run_id JOIN names s ON s.name = t.subtask_id;
            DROP TABLE run_subtasks;
            DROP TABLE attempts;
            DROP TABLE runs_v3;
            CREATE VIEW run_subtasks AS
                SELECT r.id AS run_id, s.name AS subtask_id, t.position, a.name AS agent, t.status, t.attempts,
                    r.started_at + t.started / 1e6 AS started_at,
                    r.started_at + (COALESCE(t.started, 0) + t.ended) / 1e6 AS completed_at,
                    t.error, o.result,
                    CASE typeof(o.result_digest) WHEN 'blob' THEN lower(hex(o.result_digest)) ELSE o.result_digest END
                        AS result_digest,
                    CASE typeof(o.cache_key) WHEN 'blob' THEN lower(hex(o.cache_key)) ELSE o.cache_key END AS cache_key,
                    COALESCE(t.reason, CASE t.status WHEN 'cached' THEN 'cached' END) AS reason
                FROM run_rows t JOIN runs r ON r.seq = t.run
                JOIN names s ON s.id = t.subtask JOIN names a ON a.id = t.agent
                LEFT JOIN outcomes o ON o.id = t.outcome;
            CREATE VIEW attempts AS
                SELECT r.id AS run_id, s.name AS subtask_id, t.attempt, t.status,
                    r.started_at + t.started / 1e6 AS started_at,
                    r.started_at + (t.started + t.ended) / 1e6 AS completed_at,
                    t.exit_code, t.error, o.result,
                    CASE typeof(o.result_digest) WHEN 'blob' THEN lower(hex(o.result_digest)) ELSE o.result_digest END
                        AS result_digest,
                    CASE typeof(o.cache_key) WHEN 'blob' THEN lower(hex(o.cache_key)) ELSE o.cache_key END AS cache_key
                FROM run_attempts t JOIN runs r ON r.seq = t.run
                JOIN names s ON s.id = t.subtask
                LEFT JOIN outcomes o ON o.id = t.outcome;
            """)
    }
}

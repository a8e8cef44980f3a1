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
        return migrator
    }
}

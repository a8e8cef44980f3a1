import GRDB

extension StateStore {
    /// What `planrun retry` reruns: the subtasks of the last run that did
    /// not finish well (`failed`, `blocked`, and those a cancellation or a
    /// kill left `cancelled`, `pending` or `running`), in plan order. nil
    /// when no run is recorded.
    package func unfinishedSubtasksOfLastRun() throws -> (runID: String, status: String, ids: [String])? {
        try database.read { db in
            guard let run = try Row.fetchOne(db, sql: "SELECT id, status FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1") else {
                return nil
            }
            let runID: String = run["id"]
            let ids = try String.fetchAll(db, sql: """
                SELECT subtask_id FROM run_subtasks
                WHERE run_id = ? AND status IN ('failed', 'blocked', 'cancelled', 'pending', 'running')
                ORDER BY position
                """, arguments: [runID])
            return (runID, run["status"], ids)
        }
    }
}

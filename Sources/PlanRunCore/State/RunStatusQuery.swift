import Foundation
import GRDB

/// Progress of the current or last run, as `planrun status` shows it.
/// Reading never changes the state: a run left `in_progress`
/// by a build that died is shown as `failed` (interrupted) without writing.
package struct RunStatusReport: Sendable {
    package var plan: String
    package var runID: String
    package var status: String
    package var reason: String?
    package var pid: Int
    package var startedAt: Date
    package var completedAt: Date?
    /// Running subtasks, in plan order.
    package var current: [String]
    package var total: Int
    /// Succeeded or cached: `ran + skipped + restored`.
    package var done: Int
    /// Ran and succeeded in this run.
    package var ran = 0
    /// Cached: skipped as up to date.
    package var skipped = 0
    /// Cached: outputs and result restored from the cache store.
    package var restored = 0
    package var failed: Int
    package var running: Int
    /// Not done, failed or running (blocked and cancelled included).
    package var pending: Int

    package var percentage: Double {
        total == 0 ? 100 : (Double(done) / Double(total) * 1000).rounded() / 10
    }

    package var json: JSONText {
        .object([
            ("plan", .string(plan)),
            ("run_id", .string(runID)),
            ("status", .string(status)),
            ("reason", reason.map(JSONText.string) ?? .null),
            ("started_at", .string(StatusTime.iso(startedAt))),
            ("completed_at", completedAt.map { .string(StatusTime.iso($0)) } ?? .null),
            ("current", .array(current.map(JSONText.string))),
            ("progress", .object([
                ("total", .int(total)),
                ("done", .int(done)),
                ("ran", .int(ran)),
                ("skipped", .int(skipped)),
                ("restored", .int(restored)),
                ("failed", .int(failed)),
                ("running", .int(running)),
                ("pending", .int(pending)),
                ("percentage", .double(percentage)),
            ])),
        ])
    }
}

/// One subtask in the current or last run.
package struct SubtaskStatusReport: Sendable {
    package var subtaskID: String
    package var description: String?
    package var agent: String
    package var status: String
    /// Why it ran or was skipped (`cached`, `restored from cache`, `input src/a.c changed`...).
    package var reason: String?
    /// The command line (`SubtaskCommandLine`) of the subtask in the plan as it is now.
    package var command: String?
    package var dependencies: [String]
    package var attempts: Int
    package var result: String?
    package var error: String?
    package var startedAt: Date?
    package var completedAt: Date?

    package init(subtaskID: String, description: String? = nil, agent: String, status: String, reason: String? = nil,
                 command: String? = nil, dependencies: [String], attempts: Int, result: String? = nil,
                 error: String? = nil, startedAt: Date? = nil, completedAt: Date? = nil) {
        self.subtaskID = subtaskID
        self.reason = reason
        self.command = command
        self.description = description
        self.agent = agent
        self.status = status
        self.dependencies = dependencies
        self.attempts = attempts
        self.result = result
        self.error = error
        self.startedAt = startedAt
        self.completedAt = completedAt
    }

    package var durationSeconds: Double? {
        guard let startedAt, let completedAt else { return nil }
        return (max(0, completedAt.timeIntervalSince(startedAt)) * 1000).rounded() / 1000
    }

    package var json: JSONText {
        .object([
            ("subtask_id", .string(subtaskID)),
            ("description", description.map(JSONText.string) ?? .null),
            ("agent", .string(agent)),
            ("status", .string(status)),
            ("reason", reason.map(JSONText.string) ?? .null),
            ("command", command.map(JSONText.string) ?? .null),
            ("dependencies", .array(dependencies.map(JSONText.string))),
            ("attempts", .int(attempts)),
            ("result", result.map(JSONText.string) ?? .null),
            ("error", error.map(JSONText.string) ?? .null),
            ("started_at", startedAt.map { .string(StatusTime.iso($0)) } ?? .null),
            ("completed_at", completedAt.map { .string(StatusTime.iso($0)) } ?? .null),
            ("duration_seconds", durationSeconds.map(JSONText.double) ?? .null),
        ])
    }
}

/// ISO 8601 times with milliseconds, UTC.
package enum StatusTime {
    package static func iso(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}

extension StateStore {
    /// The most recent run, or nil when none was recorded. `buildRunning`
    /// says whether a build holds the lock now; without one, a run still
    /// marked `in_progress` is reported as interrupted.
    package func latestRun(buildRunning: Bool) throws -> RunStatusReport? {
        try database.read { db in
            guard let run = try Row.fetchOne(db, sql: "SELECT * FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1") else {
                return nil
            }
            let runID: String = run["id"]
            var report = RunStatusReport(
                plan: run["plan"], runID: runID, status: run["status"], reason: run["reason"], pid: run["pid"],
                startedAt: Date(timeIntervalSince1970: run["started_at"]),
                completedAt: (run["completed_at"] as Double?).map(Date.init(timeIntervalSince1970:)),
                current: [], total: 0, done: 0, failed: 0, running: 0, pending: 0)
            let rows = try Row.fetchAll(db, sql: "SELECT subtask_id, status, reason FROM run_subtasks WHERE run_id = ? ORDER BY position",
                                        arguments: [runID])
            let stale = report.status == "in_progress" && !buildRunning
            for row in rows {
                let status: String = row["status"]
                report.total += 1
                switch status {
                case "done":
                    report.done += 1
                    report.ran += 1
                case "cached":
                    report.done += 1
                    if (row["reason"] as String?) == RunReason.restored.description { report.restored += 1 } else { report.skipped += 1 }
                case "failed": report.failed += 1
                case "running" where !stale:
                    report.running += 1
                    report.current.append(row["subtask_id"])
                default: report.pending += 1
                }
            }
            // Rows a build has queued but not written yet (`beginRun`).
            if let declared = run["total"] as Int?, declared > report.total {
                report.pending += declared - report.total
                report.total = declared
            }
            if stale {
                report.status = "failed"
                report.reason = "interrupted: process \(report.pid) stopped before the run finished"
            }
            return report
        }
    }

    /// One subtask's row in run `runID`; nil when the run did not select it.
    package func subtaskStatus(runID: String, subtask: Subtask) throws -> SubtaskStatusReport? {
        try database.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM run_subtasks WHERE run_id = ? AND subtask_id = ?",
                                             arguments: [runID, subtask.id]) else { return nil }
            let result = (row["result"] as Data?).map { String(decoding: $0, as: UTF8.self) }
            return SubtaskStatusReport(
                subtaskID: subtask.id, description: subtask.description, agent: row["agent"], status: row["status"],
                reason: row["reason"], dependencies: subtask.dependsOn, attempts: row["attempts"], result: result, error: row["error"],
                startedAt: (row["started_at"] as Double?).map(Date.init(timeIntervalSince1970:)),
                completedAt: (row["completed_at"] as Double?).map(Date.init(timeIntervalSince1970:)))
        }
    }
}

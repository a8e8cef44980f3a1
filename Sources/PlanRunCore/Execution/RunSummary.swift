import Foundation

/// The outcome of a run: per-subtask reports in plan order and
/// the counts of the summary JSON.
package struct RunSummary: Sendable {
    package var plan: String
    package var runID: String
    package var status: RunStatus
    /// Why the run was cancelled or stopped, if it was.
    package var reason: String?
    package var reports: [SubtaskReport]
    package var startedAt: Date
    package var completedAt: Date

    package init(plan: String, runID: String, status: RunStatus, reason: String?, reports: [SubtaskReport],
                 startedAt: Date, completedAt: Date) {
        self.plan = plan
        self.runID = runID
        self.status = status
        self.reason = reason
        self.reports = reports
        self.startedAt = startedAt
        self.completedAt = completedAt
    }

    package func count(_ status: SubtaskStatus) -> Int { reports.count { $0.status == status } }
    package var total: Int { reports.count }
    package var durationSeconds: Double { max(0, completedAt.timeIntervalSince(startedAt)) }
    /// Share of subtasks that succeeded (ran or cached); 1 for an empty run.
    package var successRate: Double {
        total == 0 ? 1 : Double(count(.done) + count(.cached)) / Double(total)
    }

    /// The exit code: 0 success, 1 a subtask failed, 130 cancelled.
    package var exitCode: Int32 {
        switch status {
        case .completed: 0
        case .cancelled: 130
        case .failed, .inProgress: 1
        }
    }

    /// The summary object `build --json` prints, keys in a fixed order (the
    /// order is part of the interface).
    package var json: JSONText {
        func rounded(_ d: Double) -> JSONText { .double((d * 1000).rounded() / 1000) }
        let results: [(String, JSONText)] = reports.map { r in
            (r.id, .object([
                ("status", .string(r.status.rawValue)),
                ("attempts", .int(r.attempts)),
                ("duration_seconds", rounded(r.durationSeconds)),
                ("result", r.status.isSuccess ? .string(r.resultText) : .null),
            ]))
        }
        let errors: [(String, JSONText)] = reports.compactMap { r in r.error.map { (r.id, .string($0)) } }
        return .object([
            ("plan", .string(plan)),
            ("run_id", .string(runID)),
            ("status", .string(status.rawValue)),
            ("completed", .int(count(.done))),
            ("failed", .int(count(.failed))),
            ("blocked", .int(count(.blocked))),
            ("cached", .int(count(.cached))),
            ("cancelled", .int(count(.cancelled))),
            ("total", .int(total)),
            ("success_rate", rounded(successRate)),
            ("duration_seconds", rounded(durationSeconds)),
            ("results", .object(results)),
            ("errors", .object(errors)),
        ])
    }
}

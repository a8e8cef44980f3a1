import Foundation

/// A subtask's status within one run, as recorded in the state and shown
/// by `status`.
package enum SubtaskStatus: String, Sendable, Hashable, CaseIterable {
    case pending, running, done, failed, blocked, cached, cancelled

    /// Succeeded or skipped as up to date.
    package var isSuccess: Bool { self == .done || self == .cached }
}

/// A run's status, as recorded in the state and shown by `status`.
package enum RunStatus: String, Sendable, Hashable {
    case inProgress = "in_progress"
    case completed, failed, cancelled
}

/// Where one subtask ended up in a run.
package struct SubtaskReport: Sendable {
    package var id: String
    package var agent: String
    package var status: SubtaskStatus
    package var attempts: Int
    package var startedAt: Date?
    package var completedAt: Date?
    package var result: [UInt8]
    package var error: String?
    /// Why it ran or was skipped (from the cache).
    package var reason: RunReason?
    /// The last attempt's captured output (for display).
    package var output: [UInt8]

    package init(id: String, agent: String, status: SubtaskStatus = .pending, attempts: Int = 0,
                 startedAt: Date? = nil, completedAt: Date? = nil, result: [UInt8] = [],
                 error: String? = nil, reason: RunReason? = nil, output: [UInt8] = []) {
        self.id = id
        self.agent = agent
        self.status = status
        self.attempts = attempts
        self.startedAt = startedAt
        self.completedAt = completedAt
        self.result = result
        self.error = error
        self.reason = reason
        self.output = output
    }

    package var durationSeconds: Double {
        guard let startedAt, let completedAt else { return 0 }
        return max(0, completedAt.timeIntervalSince(startedAt))
    }

    /// The result as text (invalid UTF-8 replaced).
    package var resultText: String { String(decoding: result, as: UTF8.self) }
}

/// What happens during a run, in order. Each `.started` is followed by
/// exactly one `.finished` for the same subtask; subtasks that never start
/// (cached, blocked, cancelled before starting) get one `.skipped`.
package enum RunEvent: Sendable {
    case runStarted(runID: String, total: Int)
    /// The subtask's first attempt starts.
    case started(id: String)
    /// An attempt failed and another follows after `delay`.
    case retrying(id: String, attempt: Int, error: String, delay: Duration)
    case finished(SubtaskReport)
    case skipped(SubtaskReport)
    case runFinished(RunSummary)
}

/// Counts at the time of an event, for status lines.
package struct RunProgress: Sendable, Hashable {
    package var total: Int
    /// Subtasks in a final status (any of done, failed, cached, blocked, cancelled).
    package var finished: Int
    package var cached: Int
    package var failed: Int
    /// Running subtasks, in the order they started.
    package var running: [String]

    package init(total: Int, finished: Int = 0, cached: Int = 0, failed: Int = 0, running: [String] = []) {
        self.total = total
        self.finished = finished
        self.cached = cached
        self.failed = failed
        self.running = running
    }
}

/// Receives run events. The executor calls it only from its scheduling
/// loop, one event at a time, so implementations need no locking.
package protocol ProgressReporter {
    func report(_ event: RunEvent, progress: RunProgress)
    /// Writes out what `report` buffered: the loop calls it before it
    /// waits and when the run ends, so a burst of events (a thousand
    /// cached subtasks) costs a few writes, not one each. Default: nothing.
    func flush()
}

extension ProgressReporter {
    package func flush() {}
}

/// A reporter that records events (tests) or ignores them.
package final class RecordingReporter: ProgressReporter {
    package private(set) var events: [RunEvent] = []
    package init() {}
    package func report(_ event: RunEvent, progress: RunProgress) { events.append(event) }
}

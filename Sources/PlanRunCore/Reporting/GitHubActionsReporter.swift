import Foundation

/// Progress for GitHub Actions logs: wraps another reporter (the
/// `TextReporter`) and moves each finished subtask's output into a
/// collapsible group titled `ID (STATUS)`, printed right after the
/// subtask's line. A failed subtask also gets an error annotation on its
/// line in the plan:
///
///     ::error title=planrun%3A ID failed,file=PLAN,line=LINE::MESSAGE
///
/// Like every reporter it is called only from the executor's loop, and
/// writes through `write` (the same stream as the wrapped reporter).
package final class GitHubActionsReporter<Inner: ProgressReporter>: ProgressReporter {
    private let inner: Inner
    private let plan: Plan
    private let planFile: String
    /// An included plan file's path (as its locations name it) as GitHub
    /// knows it.
    private let includedFile: (String) -> String
    private let write: (String) -> Void
    /// At most this many of the last lines of a failed subtask's output go
    /// into its annotation.
    package var annotationLines = 20

    /// `planFile` is the plan's path as GitHub knows it (see
    /// `GitHubActions.workspacePath`); `includedFile` does the same for the
    /// files of included subtasks.
    package init(
        wrapping inner: Inner, plan: Plan, planFile: String, includedFile: @escaping (String) -> String = { $0 },
        write: @escaping (String) -> Void
    ) {
        self.inner = inner
        self.plan = plan
        self.planFile = planFile
        self.includedFile = includedFile
        self.write = write
    }

    package func flush() { inner.flush() }

    package func report(_ event: RunEvent, progress: RunProgress) {
        switch event {
        case .finished(var report):
            let output = report.output
            report.output = []
            inner.report(.finished(report), progress: progress)
            if !output.isEmpty {
                write(GitHubActions.command("group", message: "\(report.id) (\(report.status.rawValue))")
                    + TextReporter.block(output)
                    + GitHubActions.command("endgroup", message: ""))
            }
            if report.status == .failed { write(annotation(for: report, output: output)) }
        case .skipped(let report) where report.status == .failed:
            inner.report(event, progress: progress)
            write(annotation(for: report, output: report.output))
        default:
            inner.report(event, progress: progress)
        }
    }

    /// The error annotation of a failed subtask: its error, then the end of
    /// its output.
    package func annotation(for report: SubtaskReport, output: [UInt8]) -> String {
        // An included subtask is annotated in the file that declares it.
        let location = plan[report.id]?.locations.item
        let file = location.map { $0.file == plan.file ? planFile : includedFile($0.file) } ?? planFile
        var properties = [("title", "planrun: \(report.id) failed"), ("file", file)]
        if let line = location?.line { properties.append(("line", String(line))) }
        var message = "subtask `\(report.id)` failed: \(report.error ?? "failed")"
        let text = JUnitReport.sanitized(output)
        // `\r\n` is one Character, so split on newlines of every kind.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        var tail = Array(lines.suffix(annotationLines + 1))
        if tail.last?.isEmpty == true { tail.removeLast() }
        if tail.count > annotationLines { tail.removeFirst(tail.count - annotationLines) }
        if !tail.isEmpty { message += "\n" + tail.joined(separator: "\n") }
        return GitHubActions.command("error", properties, message: message)
    }
}

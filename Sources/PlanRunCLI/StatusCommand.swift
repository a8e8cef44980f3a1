import ArgumentParser
import Foundation
import PlanRunCore

/// `planrun status [PLAN] [SUBTASK] [--json]`: progress of the current or
/// last run, or one subtask's status. Reads only.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the progress of the current or last run, or one subtask's status."
    )

    @OptionGroup var planArguments: PlanArguments
    @Flag(help: "Print JSON.")
    var json = false
    @OptionGroup var stateFolder: StateDirOption
    @OptionGroup var output: OutputOptions
    @OptionGroup var variables: VariableOptions

    func run() async throws {
        let (path, rest) = planArguments.resolved
        guard rest.count <= 1 else { throw ValidationError("status takes at most one subtask id") }
        let plan = try PlanLoading.load(path, color: output.color, variables: variables.overrides)
        _ = try PlanLoading.select(rest, in: TaskGraph(plan: plan), color: output.color)
        if let id = rest.first { try PlanLoading.refuseGroup(id, in: plan, command: "status") }
        let directory = stateFolder.directory(for: plan)
        let store: StateStore?
        let run: RunStatusReport?
        do {
            store = try StateStore(readingDirectory: directory)
            run = try store?.latestRun(buildRunning: BuildLock.holder(directory: directory) != nil)
        } catch {
            try StateDamageReport.exitIfDamaged(directory)
            printError("error: cannot read the state in \(directory): \(error)\n")
            throw ExitCode(1)
        }
        guard let store, let run else {
            printError("error: no runs recorded for `\(path)` yet; run `planrun build` first\n")
            throw ExitCode(1)
        }
        if let id = rest.first, let subtask = plan[id] {
            var report = (try? store.subtaskStatus(runID: run.runID, subtask: subtask)) ?? SubtaskStatusReport(
                subtaskID: id, description: subtask.description, agent: subtask.agent, status: "pending",
                dependencies: subtask.dependsOn, attempts: 0)
            report.command = SubtaskCommandLine.text(of: subtask, agent: plan.agent(for: subtask))
            printOut(json ? report.json.rendered() + "\n" : StatusText.subtask(report))
        } else {
            printOut(json ? run.json.rendered() + "\n" : StatusText.run(run))
        }
    }
}

/// Text forms of `planrun status`.
enum StatusText {
    static func run(_ r: RunStatusReport) -> String {
        var text = "run \(r.runID) of \(r.plan): \(r.status)"
        if let reason = r.reason { text += " (\(reason))" }
        text += "\nstarted \(StatusTime.iso(r.startedAt))"
        if let completed = r.completedAt { text += ", completed \(StatusTime.iso(completed))" }
        text += "\nprogress: \(r.done)/\(r.total) succeeded (\(r.percentage)%): \(r.ran) ran, \(r.skipped) skipped (up to date), "
            + "\(r.restored) restored from the cache; \(r.failed) failed, \(r.running) running, \(r.pending) pending\n"
        if !r.current.isEmpty { text += "running: \(r.current.joined(separator: ", "))\n" }
        return text
    }

    /// `done (ran)`, `cached (skipped: up to date)`, `cached (restored from the cache)`, else the status.
    static func statusWords(_ s: SubtaskStatusReport) -> String {
        switch s.status {
        case "done": "done (ran)"
        case "cached" where s.reason == RunReason.restored.description: "cached (restored from the cache)"
        case "cached": "cached (skipped: up to date)"
        default: s.status
        }
    }

    static func subtask(_ s: SubtaskStatusReport) -> String {
        var text = "\(s.subtaskID): \(statusWords(s))\n"
        if let d = s.description { text += "  description: \(d)\n" }
        text += "  agent: \(s.agent)\n"
        if let command = s.command {
            let lines = command.split(separator: "\n", omittingEmptySubsequences: false)
            text += "  command: \(lines[0])\n" + lines.dropFirst().map { "    \($0)\n" }.joined()
        }
        text += "  depends on: \(s.dependencies.isEmpty ? "-" : s.dependencies.joined(separator: ", "))\n"
        text += "  attempts: \(s.attempts)\n"
        if let t = s.startedAt { text += "  started: \(StatusTime.iso(t))\n" }
        if let t = s.completedAt { text += "  completed: \(StatusTime.iso(t))\n" }
        if let d = s.durationSeconds { text += "  duration: \(String(format: "%.2fs", d))\n" }
        if let e = s.error { text += "  error: \(e)\n" }
        if let r = s.result {
            text += "  result:\n" + r.split(separator: "\n", omittingEmptySubsequences: false).map { "    \($0)" }.joined(separator: "\n")
            if !text.hasSuffix("\n") { text += "\n" }
        }
        return text
    }
}

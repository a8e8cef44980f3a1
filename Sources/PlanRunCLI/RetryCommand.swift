#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Foundation
import PlanRunCore

/// `planrun retry [PLAN] [ID...]`: runs again the subtasks of the last run
/// that failed, were blocked, or were left unfinished by a cancellation or
/// a kill (all of them, or the named ones), with what they depend on.
/// Up-to-date dependencies are skipped by the cache as in any build.
struct RetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Run again the failed and blocked subtasks of the last run."
    )

    @OptionGroup var planArguments: PlanArguments
    @OptionGroup var options: RunOptions

    func run() async throws {
        let startedAt = Date()
        let (path, arguments) = planArguments.resolved
        let plan = try PlanLoading.load(path, color: options.output.color, variables: options.variables.overrides)
        _ = try PlanLoading.select(arguments, in: TaskGraph(plan: plan), color: options.output.color)
        let directory = options.stateFolder.directory(for: plan)
        let last: (runID: String, status: String, ids: [String])?
        do {
            last = try StateStore(readingDirectory: directory)?.unfinishedSubtasksOfLastRun()
        } catch {
            try StateDamageReport.exitIfDamaged(directory)
            printError("error: cannot read the state in \(directory): \(error)\n")
            throw ExitCode(1)
        }
        guard let last else {
            printError("error: no runs recorded for `\(path)` yet; run `planrun build` first\n")
            throw ExitCode(1)
        }
        let retryable = last.ids.filter { plan[$0] != nil }
        var targets = retryable
        // A group stands for its instances that are to be retried.
        let named = arguments.flatMap { name in
            plan.index[name] == nil ? (plan.groups[name] ?? []).filter(retryable.contains) : [name]
        }
        if !arguments.isEmpty {
            if let id = named.first(where: { !retryable.contains($0) }) {
                printError("error: subtask `\(id)` did not fail in the last run (\(last.runID)); nothing to retry for it\n")
                throw ExitCode(1)
            }
            targets = named
        }
        guard !targets.isEmpty else {
            if !arguments.isEmpty {
                printOut("nothing to retry: no instance of \(arguments.map { "`\($0)`" }.joined(separator: ", ")) failed in the last run (\(last.runID))\n")
                return
            }
            printOut("nothing to retry: every subtask of the last run (\(last.runID)) succeeded\n")
            return
        }
        try await options.execute(plan: plan, targets: targets, startedAt: startedAt)
    }
}

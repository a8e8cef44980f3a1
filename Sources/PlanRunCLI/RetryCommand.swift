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
    @OptionGroup var jobs: JobsOption
    @Flag(name: [.customShort("k"), .customLong("keep-going")], help: "Keep running subtasks that do not depend on a failure.")
    var keepGoing = false
    @Flag(help: "Print the summary as JSON on standard output (progress goes to standard error).")
    var json = false
    @Option(help: "The state folder (default: .planrun beside the plan).")
    var stateDir: String?
    @OptionGroup var output: OutputOptions
    @OptionGroup var ci: CIReportOptions
    @OptionGroup var remote: RemoteCacheOptions

    func run() async throws {
        let (path, named) = planArguments.resolved
        let plan = try PlanLoading.load(path, color: output.color)
        _ = try PlanLoading.select(named, in: TaskGraph(plan: plan), color: output.color)
        let directory = CacheCommands.stateDirectory(plan: plan, stateDir: stateDir)
        let last: (runID: String, status: String, ids: [String])?
        do {
            last = try StateStore(readingDirectory: directory)?.unfinishedSubtasksOfLastRun()
        } catch {
            printError("error: cannot read the state in \(directory): \(error)\n")
            throw ExitCode(1)
        }
        guard let last else {
            printError("error: no runs recorded for `\(path)` yet; run `planrun build` first\n")
            throw ExitCode(1)
        }
        let retryable = last.ids.filter { plan[$0] != nil }
        var targets = retryable
        if !named.isEmpty {
            if let id = named.first(where: { !retryable.contains($0) }) {
                printError("error: subtask `\(id)` did not fail in the last run (\(last.runID)); nothing to retry for it\n")
                throw ExitCode(1)
            }
            targets = named
        }
        guard !targets.isEmpty else {
            printOut("nothing to retry: every subtask of the last run (\(last.runID)) succeeded\n")
            return
        }
        do { try PlanApproval.check(plan, stateDirectory: directory) } catch {
            printError("error: \(error)\n")
            throw ExitCode(1)
        }
        let progressFD = json ? STDERR_FILENO : STDOUT_FILENO
        let config = RunConfiguration(
            jobs: jobs.effective(for: plan), keepGoing: keepGoing, targets: targets,
            environment: ProcessInfo.processInfo.environment, isTerminal: isatty(progressFD) == 1,
            stateDirectory: stateDir.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
        let remoteStore = try remote.store(environment: config.environment)
        BuildSignals.install()
        let outcome = await BuildRun.run(plan: plan, configuration: config, canceller: RunCanceller(), progressFD: progressFD,
                                         annotatePlanFile: CIReportOptions.annotationPlanFile(plan), remote: remoteStore)
        switch outcome {
        case .failure(let failure):
            printError("error: \(failure)\n")
            throw ExitCode(1)
        case .success(let summary):
            let reported = ci.write(summary, plan: plan, configuration: config)
            if json { printOut(summary.json.rendered() + "\n") }
            if summary.exitCode != 0 { throw ExitCode(summary.exitCode) }
            if !reported { throw ExitCode(1) }
        }
    }
}

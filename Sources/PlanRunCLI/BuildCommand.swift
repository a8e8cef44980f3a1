#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Foundation
import PlanRunCore

/// `planrun build [PLAN] [TARGET...]`: runs the targets and what they
/// depend on. Exits 0 on success, 1 when a subtask failed,
/// 2 for an invalid plan, 130 when cancelled.
struct BuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Run a plan's subtasks (all, or the named targets and their dependencies)."
    )

    @OptionGroup var planArguments: PlanArguments
    @OptionGroup var options: RunOptions
    @Flag(name: [.customShort("n"), .long], help: "Show what would run, like `planrun plan`, without running anything.")
    var dryRun = false
    @OptionGroup var preview: PreviewOptions
    @Flag(name: [.customShort("B"), .long],
          help: "Run the named targets (all subtasks when none is named) even when they are up to date.")
    var force = false
    @Flag(help: "Run only the named subtasks; their dependencies' results come from the cache (local or remote), and the build fails before running anything when one is not there.")
    var only = false

    func validate() throws {
        if dryRun, options.ci.report != nil { throw ValidationError("`--report` cannot be used with `--dry-run`") }
        if only, dryRun { throw ValidationError("`--only` cannot be used with `--dry-run`") }
        if only, planArguments.targets.isEmpty { throw ValidationError("`--only` needs the ids of the subtasks to run") }
        if !dryRun, preview.isGiven {
            throw ValidationError("`--\(preview.format != nil ? "format" : "changed")` needs `--dry-run` (`-n`)")
        }
        if dryRun, options.json, let format = preview.format, format != .json {
            throw ValidationError("`--json` cannot be used with `--format \(format.rawValue)`")
        }
    }

    func run() async throws {
        if dryRun {
            var preview = preview
            if options.json { preview.format = .json }
            try await DryRun.show(planArguments: planArguments, jobs: options.jobs, preview: preview,
                                  state: options.stateFolder, color: options.output.color, variables: options.variables)
            return
        }
        let started = ContinuousClock.now
        let startedAt = Date()
        let (path, targets) = planArguments.resolved
        // The up-to-date stamp (see `UpToDateStamp`): when nothing the last
        // all-cached build looked at changed, answer without loading the plan.
        // (`runAsRoot` asks it first for the command lines `UpToDateProbe`
        // reads; this is the answer for every other one.)
        let stampable = !force && !only
        let probe = UpToDateProbe(path: path, targets: targets, stateDir: options.stateFolder.absolute,
                                  variables: options.variables.vars)
        if stampable, !options.json, options.ci.report == nil, probe.answer(started: started) { return }
        // Lock, state and cache records are read on another thread while
        // the plan is parsed (`BuildPreparation`).
        let preparation = BuildPreparation.start(directory: probe.stateDirectory, writeBehind: true)
        let plan = try PlanLoading.load(path, color: options.output.color, variables: options.variables.overrides)
        _ = try PlanLoading.select(targets, in: TaskGraph(plan: plan), color: options.output.color)
        guard let ids = PlanLoading.targetIDs(targets, in: plan) else { return }
        try await options.execute(plan: plan, targets: ids, forced: force && targets.isEmpty,
                                  forcedIDs: force ? Set(ids) : [], onlyTargets: only ? Set(ids) : nil,
                                  stamp: stampable ? probe.invocation : nil, preparation: preparation,
                                  startedAt: startedAt)
    }
}

/// The options `build` and `retry` share, and the run they both end with.
struct RunOptions: ParsableArguments {
    @OptionGroup var jobs: JobsOption
    @Flag(name: [.customShort("k"), .customLong("keep-going")], help: "Keep running subtasks that do not depend on a failure.")
    var keepGoing = false
    @Flag(help: "Print the summary as JSON on standard output (progress goes to standard error).")
    var json = false
    @Flag(name: [.customShort("v"), .long], help: "Print each subtask's command line before its output.")
    var verbose = false
    @OptionGroup var stateFolder: StateDirOption
    @OptionGroup var output: OutputOptions
    @OptionGroup var ci: CIReportOptions
    @OptionGroup var remote: RemoteCacheOptions
    @OptionGroup var variables: VariableOptions

    /// Runs `targets` (and what they depend on) after the approval check,
    /// prints the summary, writes the CI report, and exits with the run's
    /// code (0, 1, 130), or 1 when the state or the report cannot be written.
    /// `stamp`: the invocation to write the up-to-date stamp for when every
    /// subtask turns out cached (nil: never, as for `retry` and `--force`).
    /// `preparation`: the state folder's set-up started ahead (`build`).
    func execute(plan: Plan, targets: [String], forced: Bool = false, forcedIDs: Set<String> = [],
                 onlyTargets: Set<String>? = nil, stamp: UpToDateStamp.Invocation? = nil,
                 preparation: BuildPreparation.Pending? = nil, startedAt: Date = Date()) async throws {
        let progressFD = json ? STDERR_FILENO : STDOUT_FILENO
        var config = RunConfiguration(
            plan: plan, jobs: jobs.jobs, keepGoing: keepGoing, targets: targets,
            environment: ProcessInfo.processInfo.environment, isTerminal: isatty(progressFD) == 1,
            stateDirectory: stateFolder.absolute,
            forced: forced, watchdogExecutable: Self.watchdogExecutable)
        config.startedAt = startedAt
        do {
            try PlanApproval.check(plan, stateDirectory: BuildSession.stateDirectory(for: plan, configuration: config))
        } catch {
            printError("error: \(error)\n")
            throw ExitCode(1)
        }
        let remoteStore = try remote.store(environment: config.environment)
        BuildSignals.install()
        let outcome = await BuildRun.run(plan: plan, configuration: config, canceller: RunCanceller(), progressFD: progressFD,
                                         annotatePlanFile: CIReportOptions.annotationPlanFile(plan),
                                         forcedIDs: forcedIDs, remote: remoteStore, onlyTargets: onlyTargets,
                                         stamp: stamp, preparation: preparation,
                                         commandLines: verbose ? Self.commandLines(of: plan) : [:])
        switch outcome {
        case .failure(let failure):
            try StateDamageReport.exitIfDamaged(BuildSession.stateDirectory(for: plan, configuration: config))
            printError("error: \(failure)\n")
            throw ExitCode(1)
        case .success(let summary):
            let reported = ci.write(summary, plan: plan, configuration: config)
            if json { printOut(summary.json.rendered() + "\n") }
            if summary.status == .failed, summary.reason != nil {
                // A run that failed for a reason of its own: a write to the state, perhaps a damaged one.
                try StateDamageReport.exitIfDamaged(BuildSession.stateDirectory(for: plan, configuration: config))
            }
            if summary.exitCode != 0 { throw ExitCode(summary.exitCode) }
            if !reported { throw ExitCode(1) }
        }
    }
}

extension RunOptions {
    /// Each subtask's command line, for `-v`.
    static func commandLines(of plan: Plan) -> [String: String] {
        var lines: [String: String] = [:]
        for subtask in plan.subtasks { lines[subtask.id] = SubtaskCommandLine.text(of: subtask, agent: plan.agent(for: subtask)) }
        return lines
    }

    /// This binary, to start as the build's watchdog: `/proc/self/exe` names
    /// it even when the file was replaced or removed since it started; nil
    /// where there is no `/proc` (no watchdog).
    static var watchdogExecutable: String? {
        access("/proc/self/exe", X_OK) == 0 ? "/proc/self/exe" : nil
    }
}

/// Runs a build next to a signal watcher: the first SIGINT or SIGTERM
/// cancels the build task, which stops every subtask and returns a
/// `cancelled` summary.
enum BuildRun {
    enum Step: Sendable {
        case finished(Result<RunSummary, BuildSession.Failure>)
        case signal(Int32)
    }

    /// `annotatePlanFile`: under GitHub Actions, the plan's path for
    /// annotations; output then goes in log groups (no live status line).
    static func run(plan: Plan, configuration: RunConfiguration, canceller: RunCanceller, progressFD: Int32,
                    annotatePlanFile: String? = nil, forcedIDs: Set<String> = [],
                    remote: RemoteCacheStore? = nil, onlyTargets: Set<String>? = nil,
                    stamp: UpToDateStamp.Invocation? = nil, preparation: BuildPreparation.Pending? = nil,
                    commandLines: [String: String] = [:]) async -> Result<RunSummary, BuildSession.Failure> {
        await withTaskGroup(of: Step?.self) { group in
            group.addTask {
                // Kept until the build is over: it holds the build lock.
                let prepared = preparation?.wait()
                let output = BufferedOutput(fd: progressFD)
                let write: (String) -> Void = { text in output.write(text) }
                let text = TextReporter(isTerminal: configuration.isTerminal && annotatePlanFile == nil,
                                        commandLines: commandLines, write: write, flush: { output.flush() })
                let reporter: any ProgressReporter = annotatePlanFile.map {
                    GitHubActionsReporter(wrapping: text, plan: plan, planFile: $0,
                                          includedFile: { GitHubActionsEnvironment.path($0) }, write: write)
                } ?? text
                let caching = BuildCacheRequest(forcedIDs: forcedIDs, remote: remote, onlyTargets: onlyTargets, stamp: stamp)
                let (outcome, warnings) = await BuildSession.runCached(
                    plan: plan, configuration: configuration, caching: caching, prepared: prepared,
                    canceller: canceller, reporter: reporter)
                // Warnings follow the progress.
                for warning in warnings { writeProgress(progressFD, "warning: \(warning)\n") }
                return .finished(outcome)
            }
            group.addTask {
                guard let signal = try? await BuildSignals.waitForSignal() else { return nil }
                return .signal(signal)
            }
            var result: Result<RunSummary, BuildSession.Failure>?
            while let step = await group.next() {
                switch step {
                case .finished(let r):
                    result = r
                    group.cancelAll() // stop the watcher
                case .signal(let signal):
                    canceller.setReason(BuildSignals.reason(for: signal))
                    group.cancelAll() // cancel the build
                case nil:
                    break
                }
            }
            return result ?? .failure(.state("the build did not finish"))
        }
    }

    /// Writes progress text with `write(2)`, straight from the string's
    /// bytes: no `FileHandle` and `Data` per event (two per subtask), and a
    /// closed reader (EPIPE, SIGPIPE is ignored) drops the text instead of
    /// raising.
    static func writeProgress(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { BufferedOutput.writeAll(fd, UnsafeRawBufferPointer($0)) }
    }
}

/// CI reporting for `build` and `retry`: `--report FILE` writes a
/// JUnit XML report of the run; under GitHub Actions (`GITHUB_ACTIONS=true`)
/// subtask output goes in log groups and failures become annotations.
struct CIReportOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Write a JUnit XML report of the run to FILE (also when it fails or is cancelled).",
                               valueName: "file"))
    var report: String?

    /// Writes the report when `--report` was given. Returns false, after
    /// printing why, when it cannot be written.
    func write(_ summary: RunSummary, plan: Plan, configuration: RunConfiguration) -> Bool {
        guard let report else { return true }
        let logs = (BuildSession.stateDirectory(for: plan, configuration: configuration) as NSString)
            .appendingPathComponent("logs/\(summary.runID)")
        do {
            try JUnitReport(summary: summary, logDirectory: logs).write(to: report)
            return true
        } catch {
            printError("error: \(error)\n")
            return false
        }
    }

    /// The plan's path for annotations when running under GitHub Actions, else nil.
    static func annotationPlanFile(_ plan: Plan) -> String? {
        GitHubActionsEnvironment.isEnabled ? GitHubActionsEnvironment.path(plan.file) : nil
    }
}

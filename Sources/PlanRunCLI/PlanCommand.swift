import Foundation
import ArgumentParser
import PlanRunCore

/// Output formats of the dry run.
enum PreviewFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, dot, mermaid
}

/// `planrun plan [PLAN] [TARGET...]`: the batches the plan would run in,
/// what would run or be skipped and why. Runs nothing, writes nothing.
struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show the batches a build would run, without running anything."
    )

    @OptionGroup var planArguments: PlanArguments
    @OptionGroup var jobs: JobsOption
    @OptionGroup var preview: PreviewOptions
    @OptionGroup var stateFolder: StateDirOption
    @OptionGroup var output: OutputOptions
    @OptionGroup var variables: VariableOptions

    func run() async throws {
        try await DryRun.show(planArguments: planArguments, jobs: jobs, preview: preview, state: stateFolder, color: output.color,
                              variables: variables)
    }
}

/// The options of the dry run, shared by `plan` and `build --dry-run`.
struct PreviewOptions: ParsableArguments {
    @Option(help: "Output format: text, json, dot or mermaid (default: text).")
    var format: PreviewFormat?
    @Flag(help: "List only the subtasks that would run.")
    var changed = false

    /// Whether an option of the dry run was given (`build` refuses them without `--dry-run`).
    var isGiven: Bool { format != nil || changed }
}

/// The dry run shared by `planrun plan` and `planrun build --dry-run`.
/// Reads the state and cache read-only: nothing on disk changes.
enum DryRun {
    static func show(planArguments: PlanArguments, jobs: JobsOption, preview options: PreviewOptions, state: StateDirOption,
                     color: ColorChoice, variables: VariableOptions) async throws {
        let (path, named) = planArguments.resolved
        let plan = try PlanLoading.load(path, color: color, variables: variables.overrides)
        let graph = TaskGraph(plan: plan)
        let selected = try PlanLoading.select(named, in: graph, color: color)
        guard let targets = PlanLoading.targetIDs(named, in: plan) else { return }
        // With neither history nor a local cache store, nothing can be
        // skipped: every subtask would run for the first time, and the keys
        // (which read every input file) need not be computed.
        let stateDirectory = state.directory(for: plan)
        let files = FileManager.default
        let fresh = !files.fileExists(atPath: stateDirectory + "/state.db") && !files.fileExists(atPath: stateDirectory + "/cache/ac")
        let reasons = fresh ? [:] : try await CacheCommands.openCache(plan: plan, state: state, readOnly: true)
            .previewReasons(graph: graph, selected: selected)
        let configuration = RunConfiguration(plan: plan, jobs: jobs.jobs, targets: targets)
        var preview = PlanPreview(graph: graph, selected: selected, maxParallel: configuration.jobs) { subtask in
            reasons[subtask.id] ?? (subtask.cache ? .neverRan : .cacheDisabled)
        }
        preview.changedOnly = options.changed
        switch options.format ?? .text {
        case .text: printOut(preview.text)
        case .json: printOut(preview.json.rendered() + "\n")
        case .dot: printOut(preview.dot)
        case .mermaid: printOut(preview.mermaid)
        }
    }
}

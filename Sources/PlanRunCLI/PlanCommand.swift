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
    @Option(help: "Output format: text, json, dot or mermaid.")
    var format: PreviewFormat = .text
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try DryRun.show(planArguments: planArguments, jobs: jobs, format: format, color: output.color)
    }
}

/// The dry run shared by `planrun plan` and `planrun build --dry-run`.
enum DryRun {
    /// Gives each subtask's own verdict for the preview. Without recorded
    /// history every subtask would run.
    nonisolated(unsafe) static var reasonProvider: (Plan) -> (Subtask) -> RunReason = { _ in
        { subtask in subtask.cache ? .neverRan : .cacheDisabled }
    }

    static func show(planArguments: PlanArguments, jobs: JobsOption, format: PreviewFormat, color: ColorChoice) throws {
        let (path, targets) = planArguments.resolved
        let plan = try PlanLoading.load(path, color: color)
        let graph = TaskGraph(plan: plan)
        let selected = try PlanLoading.select(targets, in: graph, color: color)
        let preview = PlanPreview(graph: graph, selected: selected, maxParallel: jobs.effective(for: plan), reason: reasonProvider(plan))
        switch format {
        case .text: printOut(preview.text)
        case .json: printOut(preview.json.rendered() + "\n")
        case .dot: printOut(preview.dot)
        case .mermaid: printOut(preview.mermaid)
        }
    }
}

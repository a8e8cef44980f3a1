import ArgumentParser
import Foundation
import PlanRunCore

extension WorkflowEngine: ExpressibleByArgument {}

/// `planrun export [PLAN] --to github-actions|argo [-o FILE]`: a CI
/// workflow with one job per subtask, each running
/// `planrun build PLAN ID --only` against the shared remote cache.
/// Run it from the repository root: the jobs name the plan by the path
/// given here.
struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a CI workflow (GitHub Actions or Argo) with one job per subtask.",
        discussion: """
            Each job runs `planrun build PLAN ID --only` and takes the results of its \
            dependencies from the remote cache named by PLANRUN_REMOTE_CACHE. Run export \
            from the repository root: the jobs name the plan by the path given here.
            """
    )

    @OptionGroup var planArguments: PlanArguments
    @Option(help: "The engine: github-actions or argo.")
    var to: WorkflowEngine
    @Option(name: [.customShort("o"), .customLong("output")], help: "Write the workflow to FILE (default: standard output).")
    var output: String?
    @OptionGroup var outputOptions: OutputOptions
    @OptionGroup var variables: VariableOptions

    func validate() throws {
        if !planArguments.targets.isEmpty {
            throw ValidationError("export takes no subtask ids (got `\(planArguments.targets.joined(separator: " "))`)")
        }
    }

    func run() async throws {
        let path = planArguments.planPath
        let plan = try PlanLoading.load(path, color: outputOptions.color, variables: variables.overrides)
        let text = WorkflowExport(plan: plan, planPath: Self.repositoryPath(path), variables: variables.vars).render(to)
        guard let output else {
            printOut(text)
            return
        }
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
        } catch {
            printError("error: cannot write `\(output)`: \((error as NSError).localizedDescription)\n")
            throw ExitCode(1)
        }
    }

    /// The plan's path as the jobs should name it: relative to the current
    /// folder (the repository root) when it lies inside it, without `./`.
    static func repositoryPath(_ path: String) -> String {
        var result = (path as NSString).standardizingPath
        if result.hasPrefix("/") {
            let cwd = (FileManager.default.currentDirectoryPath as NSString).standardizingPath
            let prefix = cwd.hasSuffix("/") ? cwd : cwd + "/"
            if result.hasPrefix(prefix) { result = String(result.dropFirst(prefix.count)) }
        }
        while result.hasPrefix("./") { result.removeFirst(2) }
        return result.isEmpty ? path : result
    }
}

import ArgumentParser
import Foundation
import PlanRunCore

/// `planrun explain [PLAN] ID`: why a subtask would run or be skipped (its
/// first differing cache-key component), with its current and last keys.
/// Reads only: never changes the cache, the state or any file.
struct ExplainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Explain why a subtask would run or be skipped."
    )

    @OptionGroup var planArguments: PlanArguments
    @OptionGroup var stateFolder: StateDirOption
    @OptionGroup var output: OutputOptions
    @OptionGroup var variables: VariableOptions

    func run() async throws {
        let (path, rest) = planArguments.resolved
        guard rest.count == 1, let id = rest.first else { throw ValidationError("explain takes one subtask id") }
        let plan = try PlanLoading.load(path, color: output.color, variables: variables.overrides)
        let graph = TaskGraph(plan: plan)
        _ = try PlanLoading.select(rest, in: graph, color: output.color)
        try PlanLoading.refuseGroup(id, in: plan, command: "explain")
        let cache = try CacheCommands.openCache(plan: plan, state: stateFolder, readOnly: true)
        let explanation = try await cache.explain(graph: graph, id: id)
        printOut(explanation.text)
        if case .failure = explanation.decision { throw ExitCode(1) }
    }
}

/// Helpers shared by the cache commands (explain, clean, approve, retry).
enum CacheCommands {
    /// The plan's content cache; a state that cannot be opened exits 1 with
    /// a message.
    static func openCache(plan: Plan, state: StateDirOption, readOnly: Bool) throws -> ContentCache {
        do {
            return try ContentCache.open(
                plan: plan, stateDirectory: state.directory(for: plan),
                callerEnvironment: ProcessInfo.processInfo.environment, readOnly: readOnly)
        } catch {
            try StateDamageReport.exitIfDamaged(state.directory(for: plan))
            printError("error: \(error)\n")
            printError(StateDamageReport.hint)
            throw ExitCode(1)
        }
    }

    /// Exits 1 when a build of the plan is running (commands that change state).
    static func refuseWhileBuilding(_ directory: String, plan: Plan) throws {
        if let pid = BuildLock.holder(directory: directory) {
            printError("error: a build of `\(plan.file)` is running (pid \(pid)); wait for it or run `planrun cancel`\n")
            throw ExitCode(1)
        }
    }
}

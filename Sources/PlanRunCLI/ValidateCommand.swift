import ArgumentParser
import PlanRunCore

/// `planrun validate [PLAN...]`: checks plans and reports every problem;
/// never runs anything or writes state. Exit 0 valid, 2 invalid. Beyond
/// loading, it reports inputs that are plain paths naming no file and no
/// subtask's output (a build would fail on them).
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check plan files and report every problem found."
    )

    @Argument(help: "Plan files (default: plan.yaml).")
    var plans: [String] = []

    @OptionGroup var output: OutputOptions
    @OptionGroup var variables: VariableOptions

    func run() async throws {
        var invalid = 0
        for path in plans.isEmpty ? ["plan.yaml"] : plans {
            do throws(PlanDiagnostics) {
                let plan = try PlanLoader.load(path: path, variables: variables.overrides)
                let missing = MissingInput.diagnostics(for: plan)
                guard missing.isEmpty else { throw PlanDiagnostics(missing) }
                let agents = Set(plan.subtasks.map(\.agent)).count
                printOut("\(path): valid (\(plan.subtasks.count) subtask\(plan.subtasks.count == 1 ? "" : "s"), \(agents) agent\(agents == 1 ? "" : "s"))\n")
            } catch {
                if error.isUsageError { throw PlanLoading.failure(error, color: output.color) }
                invalid += 1
                PlanLoading.report(error.diagnostics, color: output.color)
            }
        }
        if invalid > 0 { throw ExitCode(2) }
    }
}

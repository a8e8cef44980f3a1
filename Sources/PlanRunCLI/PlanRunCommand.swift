import ArgumentParser
import PlanRunCore

/// The `planrun` root command. Each subcommand builds a configuration,
/// calls PlanRunCore, renders the outcome and maps it to an exit code:
/// 0 success, 1 a subtask failed, 2 invalid plan, 64 bad command line,
/// 130 cancelled.
package struct PlanRunCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "planrun",
        abstract: "A declarative, Makefile-like runner for YAML plan files.",
        discussion: """
            PLAN defaults to plan.yaml in the current folder. When the first argument \
            ends in .yaml or .yml, it is the plan; any other word is a subtask id \
            (even when a file of that name exists). `-f PLAN` names the plan \
            explicitly.
            """,
        version: "0.1.0",
        subcommands: [
            ValidateCommand.self,
            PlanCommand.self,
            ListCommand.self,
            BuildCommand.self,
            StatusCommand.self,
            CancelCommand.self,
            RetryCommand.self,
            ExplainCommand.self,
            CleanCommand.self,
            ApproveCommand.self,
            ExportCommand.self,
            CompletionsCommand.self,
        ]
    )

    package init() {}
}

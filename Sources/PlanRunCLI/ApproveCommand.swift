import ArgumentParser
import Foundation
import PlanRunCore

/// `planrun approve [PLAN]`: records the plan's current content digest as
/// approved; `build` refuses an `approval: required` plan until then, and
/// again after any change to the file.
struct ApproveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Approve the plan's current content, for plans with `approval: required`."
    )

    @OptionGroup var planArguments: PlanArguments
    @OptionGroup var stateFolder: StateDirOption
    @OptionGroup var output: OutputOptions
    @OptionGroup var variables: VariableOptions

    func run() async throws {
        let (path, rest) = planArguments.resolved
        guard rest.isEmpty else { throw ValidationError("approve takes no subtask ids") }
        let plan = try PlanLoading.load(path, color: output.color, variables: variables.overrides)
        let directory = stateFolder.directory(for: plan)
        do {
            let digest = try PlanApproval.approve(plan, stateDirectory: directory)
            var text = "approved `\(plan.file)` (sha256 \(digest))\n"
            if plan.approval != .required { text += "note: the plan does not set `approval: required`; builds do not need this approval\n" }
            printOut(text)
        } catch {
            printError("error: \(error)\n")
            throw ExitCode(1)
        }
    }
}

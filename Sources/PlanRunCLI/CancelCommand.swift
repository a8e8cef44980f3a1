#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Foundation
import PlanRunCore

/// `planrun cancel [PLAN] --reason TEXT`: asks the running build of a plan
/// to stop: records the reason in the state, sends the build
/// SIGTERM, and waits until it has stopped every subtask.
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel the running build of a plan."
    )

    @OptionGroup var planArguments: PlanArguments
    @Option(help: "Why the run is cancelled (recorded in the state).")
    var reason: String = "cancelled by `planrun cancel`"
    @OptionGroup var stateFolder: StateDirOption
    @Option(help: "Seconds to wait for the build to stop.")
    var wait: Int = 60
    @OptionGroup var output: OutputOptions
    @OptionGroup var variables: VariableOptions

    func run() async throws {
        let (path, rest) = planArguments.resolved
        guard rest.isEmpty else { throw ValidationError("cancel takes no subtask ids") }
        let plan = try PlanLoading.load(path, color: output.color, variables: variables.overrides)
        let directory = stateFolder.directory(for: plan)
        guard let pid = BuildLock.holder(directory: directory) else {
            printError("error: no build of `\(path)` is running\n")
            throw ExitCode(1)
        }
        do {
            _ = try StateStore(directory: directory).requestCancel(reason: reason)
        } catch {
            printError("error: cannot record the cancellation in \(directory): \(error)\n")
            throw ExitCode(1)
        }
        guard kill(pid, SIGTERM) == 0 else {
            printError("error: cannot signal the build (pid \(pid)): \(String(cString: strerror(errno)))\n")
            throw ExitCode(1)
        }
        let deadline = ContinuousClock.now + .seconds(wait)
        while BuildLock.holder(directory: directory) != nil {
            if ContinuousClock.now > deadline {
                printError("error: the build (pid \(pid)) is still stopping after \(wait)s\n")
                throw ExitCode(1)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        printOut("cancelled the build of `\(path)` (pid \(pid)): \(reason)\n")
    }
}

import ArgumentParser
import PlanRunCore

extension PlanRunCommand {
    /// The asynchronous entry point (what `AsyncParsableCommand.main()`
    /// does): parse, run the chosen command, exit with its code. Called from
    /// top-level code, where `main()` would pick the synchronous overload.
    package static func runAsRoot(_ arguments: [String]? = nil) async {
        // The build's watchdog (`OrphanGuard`): the same binary, started
        // again by a build with a hidden first argument.
        let given = arguments ?? Array(CommandLine.arguments.dropFirst())
        if given.first == OrphanGuard.watchdogArgument {
            let milliseconds = given.count > 1 ? Int64(given[1]) ?? 500 : 500
            OrphanGuard.runWatchdog(grace: .milliseconds(milliseconds), runID: given.count > 2 ? given[2] : nil)
        }
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

import ArgumentParser
import PlanRunCore

extension PlanRunCommand {
    /// The asynchronous entry point (what `AsyncParsableCommand.main()`
    /// does): parse, run the chosen command, exit with its code. Called from
    /// top-level code, where `main()` would pick the synchronous overload.
    package static func runAsRoot(_ arguments: [String]? = nil) async {
        let started = ContinuousClock.now
        let arguments = arguments ?? Array(CommandLine.arguments.dropFirst())
        // The build's watchdog (`OrphanGuard`): the same binary, started
        // again by a build with a hidden first argument.
        if arguments.first == OrphanGuard.watchdogArgument {
            let milliseconds = arguments.count > 1 ? Int64(arguments[1]) ?? 500 : 500
            OrphanGuard.runWatchdog(grace: .milliseconds(milliseconds), runID: arguments.count > 2 ? arguments[2] : nil)
        }
        // A no-op `build` answered from the up-to-date stamp, before the
        // command line costs more than the answer (see `UpToDateProbe`).
        if let probe = UpToDateProbe(commandLine: arguments), probe.answer(started: started) { return }
        if let message = unknownSubcommandMessage(arguments) {
            printError(message)
            exit(withError: ExitCode.validationFailure)
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

    /// The error for a first argument that is no subcommand (`planrun
    /// biuld`), with the closest subcommand when one is near, or nil when
    /// the first argument is an option or a subcommand. ArgumentParser's own
    /// error ("Unexpected argument") names no command to use instead.
    static func unknownSubcommandMessage(_ arguments: [String]) -> String? {
        guard let first = arguments.first, !first.hasPrefix("-") else { return nil }
        let names = configuration.subcommands.compactMap { $0.configuration.commandName } + ["help"]
        guard !names.contains(first) else { return nil }
        var message = "error: unknown command `\(first)`"
        if let suggestion = Suggestion.closest(to: first, in: names) {
            message += "; did you mean `\(suggestion)`?"
        }
        return message + "\ncommands: \(names.joined(separator: ", "))\nsee `planrun --help`\n"
    }
}

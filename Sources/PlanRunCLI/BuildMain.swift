import ArgumentParser

extension PlanRunCommand {
    /// The asynchronous entry point (what `AsyncParsableCommand.main()`
    /// does): parse, run the chosen command, exit with its code. Called from
    /// top-level code, where `main()` would pick the synchronous overload.
    package static func runAsRoot(_ arguments: [String]? = nil) async {
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

import ArgumentParser

/// `planrun completions bash|zsh|fish`: prints the shell completion script
/// that swift-argument-parser generates from the command definitions.
struct CompletionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "completions",
        abstract: "Print a shell completion script (bash, zsh or fish).",
        discussion: """
            bash: planrun completions bash > /etc/bash_completion.d/planrun
            zsh:  planrun completions zsh > "${fpath[1]}/_planrun"
            fish: planrun completions fish > ~/.config/fish/completions/planrun.fish
            """
    )

    /// The shells argument-parser generates scripts for.
    enum Shell: String, ExpressibleByArgument, CaseIterable {
        case bash, zsh, fish
    }

    @Argument(help: "The shell: bash, zsh or fish.")
    var shell: Shell

    func run() async throws {
        guard let completionShell = CompletionShell(rawValue: shell.rawValue) else { throw ExitCode.validationFailure }
        printOut(PlanRunCommand.completionScript(for: completionShell))
    }
}

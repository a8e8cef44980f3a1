import Foundation

/// The command line of a subtask as `-v`, its log and `status SUBTASK` show
/// it: what runs, written so a user can run it by hand.
///
/// - a shell subtask under the default shell (`/bin/sh -c`): its `run`
///   text, as make prints a recipe;
/// - a shell subtask under another shell: the shell's argv and `run`,
///   each word quoted for `sh` where needed;
/// - a `command` agent: `agent NAME: ARGV` (the context comes on standard
///   input);
/// - an `http` agent: `agent NAME: POST URL`.
package enum SubtaskCommandLine {
    package static func text(of subtask: Subtask, agent: AgentDefinition) -> String {
        switch agent.kind {
        case .shell:
            let run = subtask.run ?? ""
            if agent.shell == AgentDefinition.defaultShell { return run }
            return (agent.shell + [run]).map(shellQuoted).joined(separator: " ")
        case .command:
            return "agent \(agent.name): " + agent.command.map(shellQuoted).joined(separator: " ")
        case .http:
            return "agent \(agent.name): POST \(agent.url ?? "")"
        }
    }

    /// `word` as one `sh` word: unchanged when it holds only characters
    /// that need no quoting, else in single quotes (`'` written `'\''`).
    package static func shellQuoted(_ word: String) -> String {
        let plain = !word.isEmpty && word.unicodeScalars.allSatisfy { c in
            switch c {
            case "a"..."z", "A"..."Z", "0"..."9", "-", "_", ".", "/", ",", ":", "=", "+", "@", "%": true
            default: false
            }
        }
        return plain ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Foundation
import PlanRunCore

/// `planrun list [PLAN]`: subtasks with descriptions, agents, dependencies,
/// one line each, fitted to the terminal's width.
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the subtasks of a plan."
    )

    @OptionGroup var planArguments: PlanArguments
    @Flag(help: "Print a JSON array instead of a table.")
    var json = false
    @OptionGroup var output: OutputOptions
    @OptionGroup var variables: VariableOptions

    func run() async throws {
        let plan = try PlanLoading.load(planArguments.planPath, color: output.color, variables: variables.overrides)
        if json {
            let items: [JSONText] = plan.subtasks.map { s in
                .object([
                    ("id", .string(s.id)),
                    ("description", s.description.map(JSONText.string) ?? .null),
                    ("agent", .string(s.agent)),
                    ("depends_on", .array(s.dependsOn.map(JSONText.string))),
                ])
            }
            printOut(JSONText.array(items).rendered() + "\n")
            return
        }
        printOut(ListTable.text(plan.subtasks, width: TerminalWidth.current()))
    }
}

/// The table of `planrun list`, fitted to `width` columns: a
/// long dependency list is shortened to the ids that fit and a count
/// (`a,b,c +30 more`), and a description that does not fit is cut with `…`.
/// Ids and agents are never shortened.
enum ListTable {
    static func text(_ subtasks: [Subtask], width: Int) -> String {
        let idWidth = max(2, subtasks.map(\.id.count).max() ?? 0)
        let agentWidth = max(5, subtasks.map(\.agent.count).max() ?? 0)
        // Dependencies take at most half of what ids and agents leave (at least 16).
        let dependsWidth = max(16, (width - idWidth - agentWidth - 6) / 2)
        let rows = [["ID", "AGENT", "DEPENDS ON", "DESCRIPTION"]] + subtasks.map { s in
            [s.id, s.agent, dependencies(s.dependsOn, width: dependsWidth), s.description ?? ""]
        }
        let widths = (0..<3).map { c in rows.map { $0[c].count }.max() ?? 0 }
        let descriptionWidth = max(12, width - widths.reduce(0, +) - 6)
        var out = ""
        for row in rows {
            var line = ""
            for c in 0..<3 { line += row[c] + String(repeating: " ", count: widths[c] - row[c].count) + "  " }
            let description = row[3].split(whereSeparator: \.isNewline).joined(separator: " ")
            line += description.count > descriptionWidth ? description.prefix(descriptionWidth - 1) + "…" : description
            while line.hasSuffix(" ") { line.removeLast() }
            out += line + "\n"
        }
        return out
    }

    /// `ids` joined with `,`, or as many as fit in `width` followed by
    /// ` +N more`; `-` for none.
    static func dependencies(_ ids: [String], width: Int) -> String {
        if ids.isEmpty { return "-" }
        let all = ids.joined(separator: ",")
        if all.count <= width { return all }
        var shown = ""
        var count = 0
        for id in ids {
            let candidate = shown.isEmpty ? id : shown + "," + id
            if candidate.count + " +\(ids.count - count - 1) more".count > width { break }
            shown = candidate
            count += 1
        }
        return (shown.isEmpty ? "" : shown + " ") + "+\(ids.count - count) more"
    }
}

/// The width to fit text to: `COLUMNS` when set to a positive number, else
/// the terminal's width on standard output, else 80.
enum TerminalWidth {
    static func current() -> Int {
        if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init), columns > 0 { return columns }
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }
}

import ArgumentParser
import PlanRunCore

/// `planrun list [PLAN]`: subtasks with descriptions, agents, dependencies.
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the subtasks of a plan."
    )

    @OptionGroup var planArguments: PlanArguments
    @Flag(help: "Print a JSON array instead of a table.")
    var json = false
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let plan = try PlanLoading.load(planArguments.planPath, color: output.color)
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
        let rows = [["ID", "AGENT", "DEPENDS ON", "DESCRIPTION"]] + plan.subtasks.map { s in
            [s.id, s.agent, s.dependsOn.isEmpty ? "-" : s.dependsOn.joined(separator: ","), s.description ?? ""]
        }
        let widths = (0..<3).map { c in rows.map { $0[c].count }.max() ?? 0 }
        var out = ""
        for row in rows {
            var line = ""
            for c in 0..<3 { line += row[c] + String(repeating: " ", count: widths[c] - row[c].count) + "  " }
            line += row[3]
            while line.hasSuffix(" ") { line.removeLast() }
            out += line + "\n"
        }
        printOut(out)
    }
}

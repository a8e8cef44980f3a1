import ArgumentParser
import Foundation
import PlanRunCore

/// `planrun clean [PLAN] [--outputs] [--state] [--cache]`: removes declared
/// outputs, the state (database and logs) and/or the cache store; all
/// three when no flag is given. The approval record is kept. Refuses while
/// a build of the plan is running, and never removes anything outside the
/// plan's folder, nor through a link in the state folder (a link in place
/// of `state.db`, `logs` or `cache` is removed as a link: `FileManager`
/// never follows links when removing, so this is how a state folder that
/// builds refuse is repaired), nor the state folder as an output. Removing
/// outputs also removes the temporary files a killed restore left beside
/// them (see docs/DESIGN.md, Trust rules).
struct CleanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clean",
        abstract: "Remove outputs, state and/or the cache (all three by default)."
    )

    @OptionGroup var planArguments: PlanArguments
    @Flag(help: "Remove the subtasks' declared outputs.")
    var outputs = false
    @Flag(help: "Remove the state database and logs.")
    var state = false
    @Flag(help: "Remove the cache store.")
    var cache = false
    @OptionGroup var stateFolder: StateDirOption
    @OptionGroup var output: OutputOptions
    @OptionGroup var variables: VariableOptions

    func run() async throws {
        let (path, rest) = planArguments.resolved
        guard rest.isEmpty else { throw ValidationError("clean takes no subtask ids") }
        let plan = try PlanLoading.load(path, color: output.color, variables: variables.overrides)
        let directory = stateFolder.directory(for: plan)
        try CacheCommands.refuseWhileBuilding(directory, plan: plan)
        let all = !outputs && !state && !cache
        do { try UpToDateStamp.remove(stateDirectory: directory) } catch {
            printError("error: \(error)\n")
            throw ExitCode(1)
        }
        var lines: [String] = []
        var failed = false
        func remove(_ full: String) -> Bool {
            guard FileStat.of(full, followSymlinks: false) != nil else { return false }
            do {
                try FileManager.default.removeItem(atPath: full)
                return true
            } catch {
                printError("error: cannot remove \(full): \(error.localizedDescription)\n")
                failed = true
                return false
            }
        }
        if all || outputs {
            var count = 0
            let realState = PathSafety.realPath(directory)
            var parents = Set<String>()
            for subtask in plan.subtasks {
                for output in subtask.outputs {
                    do {
                        guard let full = try PathSafety.existingPath(output, root: plan.directory) else { continue }
                        parents.insert((full as NSString).deletingLastPathComponent)
                        if let realState, full == realState || realState.hasPrefix(full + "/") || full.hasPrefix(realState + "/") {
                            printError("error: not removing output `\(output)` of `\(subtask.id)`: it holds or is inside the state folder \(directory)\n")
                            failed = true
                            continue
                        }
                        if remove(full) { count += 1 }
                    } catch {
                        printError("error: \(error)\n")
                        failed = true
                    }
                }
            }
            // Temporary files of restores killed midway: those the journals
            // name, and any beside a declared output.
            LocalCacheStore(root: (directory as NSString).appendingPathComponent("cache"))
                .removeLeftovers(planDirectory: plan.directory)
            if let planRoot = PathSafety.realPath(plan.directory) {
                for parent in parents { LocalCacheStore.removeTemporaries(in: parent, planRoot: planRoot) }
            }
            lines.append("removed \(count) output\(count == 1 ? "" : "s")")
        }
        if all || state {
            var removed = false
            for name in ["state.db", "state.db-wal", "state.db-shm", "state.db-checked", "logs"] {
                if remove((directory as NSString).appendingPathComponent(name)) { removed = true }
            }
            lines.append(removed ? "removed the state" : "no state to remove")
        }
        if all || cache {
            let removed = remove((directory as NSString).appendingPathComponent("cache"))
            lines.append(removed ? "removed the cache" : "no cache to remove")
        }
        printOut(lines.joined(separator: "\n") + "\n")
        if failed { throw ExitCode(1) }
    }
}

import ArgumentParser
import Foundation
import PlanRunCore

/// The plan file and target subtasks, shared by the commands that take them.
/// `planrun build [PLAN] [TARGET...]`, like make's optional Makefile:
/// the first argument is the plan only when it ends in
/// `.yaml` or `.yml`; any other word is a subtask id of `plan.yaml`, even
/// when a file of that name exists (`planrun build lua` builds `lua`).
struct PlanArguments: ParsableArguments {
    @Option(name: [.customShort("f"), .customLong("file")], help: "The plan file (default: plan.yaml).")
    var file: String?

    @Argument(help: ArgumentHelp("The plan file (a path ending in .yaml or .yml), then subtask ids.",
                                 valueName: "plan-or-subtask"))
    var arguments: [String] = []

    /// The plan path and the target ids.
    var resolved: (plan: String, targets: [String]) { Self.resolve(file: file, arguments: arguments) }

    /// The plan path and the target ids of `-f FILE` (when given) and the
    /// positional arguments.
    static func resolve(file: String?, arguments: [String]) -> (plan: String, targets: [String]) {
        if let file { return (file, arguments) }
        if let first = arguments.first, isPlanPath(first) {
            return (first, Array(arguments.dropFirst()))
        }
        return ("plan.yaml", arguments)
    }

    var planPath: String { resolved.plan }
    var targets: [String] { resolved.targets }

    /// A plan path ends in `.yaml` or `.yml` (in any case); subtask ids may
    /// contain `/` (included plans) and may name files, so nothing else
    /// decides.
    static func isPlanPath(_ argument: String) -> Bool {
        let lowered = argument.lowercased()
        return lowered.hasSuffix(".yaml") || lowered.hasSuffix(".yml")
    }
}

/// `--var NAME=VALUE` (repeatable): overrides a variable the plan declares.
struct VariableOptions: ParsableArguments {
    @Option(name: .customLong("var"), help: ArgumentHelp(
        "Override the plan variable NAME with VALUE (repeatable; a list variable's VALUE is split on whitespace).",
        valueName: "name=value"))
    var vars: [String] = []

    var overrides: VariableOverrides {
        (try? VariableOverrides.parse(vars).get()) ?? VariableOverrides()
    }

    func validate() throws {
        if case .failure(let error) = VariableOverrides.parse(vars) { throw ValidationError(error.description) }
    }
}

/// `-j N`: how many subtasks run at once. Core resolves it against the
/// plan (`RunConfiguration(plan:jobs:)`).
struct JobsOption: ParsableArguments {
    @Option(name: [.customShort("j", allowingJoined: true), .customLong("jobs")], help: "Run at most N subtasks at once (default: the plan's max_parallel, else the number of CPUs).")
    var jobs: Int?

    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("-j must be at least 1") }
    }
}

/// When to colour diagnostics.
enum ColorChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, always, never

    func enabled(for fd: Int32) -> Bool {
        switch self {
        case .always: true
        case .never: false
        case .auto: isatty(fd) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        }
    }
}

/// `--state-dir`, shared by every command that reads or writes the state.
struct StateDirOption: ParsableArguments {
    @Option(help: "The state folder (default: .planrun beside the plan).")
    var stateDir: String?

    /// `--state-dir` as an absolute, standardized path.
    var absolute: String? { stateDir.map { URL(fileURLWithPath: $0).standardizedFileURL.path } }

    /// `--state-dir`, else `.planrun` beside the plan.
    func directory(for plan: Plan) -> String { directory(planDirectory: plan.directory) }

    func directory(planDirectory: String) -> String {
        BuildSession.stateDirectory(planDirectory: planDirectory, configured: absolute)
    }
}

struct OutputOptions: ParsableArguments {
    @Option(help: "Colour diagnostics: auto, always or never.")
    var color: ColorChoice = .auto
}

/// Writes text to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}

/// Writes text to standard output without buffering surprises.
func printOut(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

/// Loading a plan for a command: diagnostics go to standard error and the
/// command exits 2 (invalid plan).
enum PlanLoading {
    static func load(_ path: String, color: ColorChoice = .auto, variables: VariableOverrides = VariableOverrides()) throws -> Plan {
        do {
            return try PlanLoader.load(path: path, variables: variables)
        } catch {
            throw failure(error, color: color)
        }
    }

    /// Reports a plan's problems; the exit code is 2, or 64 for a `--var`
    /// the plan does not declare (a command-line error).
    static func failure(_ error: PlanDiagnostics, color: ColorChoice) -> ExitCode {
        if error.isUsageError {
            for diagnostic in error.diagnostics { printError("error: \(diagnostic.message)\n") }
            return ExitCode.validationFailure
        }
        report(error.diagnostics, color: color)
        return ExitCode(2)
    }

    static func report(_ diagnostics: [Diagnostic], color: ColorChoice) {
        var renderer = DiagnosticRenderer(useColor: color.enabled(for: STDERR_FILENO))
        printError(renderer.render(diagnostics))
        let errors = diagnostics.filter { $0.severity == .error }.count
        if errors > 1 { printError("\(errors) errors\n") }
        if GitHubActionsEnvironment.isEnabled {
            printError(GitHubActions.annotations(for: diagnostics, path: GitHubActionsEnvironment.path))
        }
    }

    /// The subtask ids `targets` stand for (a group: its instances), after
    /// `select` accepted them. nil when targets were named and all of them
    /// are empty groups: then there is nothing to build, which is said.
    static func targetIDs(_ targets: [String], in plan: Plan) -> [String]? {
        let ids = plan.targetIDs(targets)
        if !targets.isEmpty, ids.isEmpty {
            let names = targets.map { "`\($0)`" }.joined(separator: ", ")
            printOut("nothing to build: \(names) \(targets.count == 1 ? "is a group" : "are groups") without instances\n")
            return nil
        }
        return ids
    }

    /// Exits 2 when `id` names a group: commands about one subtask take
    /// one of its instances, of which one is named as an example.
    static func refuseGroup(_ id: String, in plan: Plan, command: String) throws {
        guard plan.index[id] == nil, let instances = plan.groups[id] else { return }
        if let example = instances.first {
            printError("error: `\(id)` is a group of \(instances.count) instance\(instances.count == 1 ? "" : "s"); "
                + "\(command) takes one instance, such as `\(example)`\n")
        } else {
            printError("error: `\(id)` is a group without instances; \(command) takes one subtask\n")
        }
        throw ExitCode(2)
    }

    /// The targets' selection, or exit 2 with "no subtask named ...".
    static func select(_ targets: [String], in graph: TaskGraph, color: ColorChoice) throws -> [Bool] {
        do {
            return try graph.selection(targets: targets)
        } catch {
            report(error.diagnostics, color: color)
            throw ExitCode(2)
        }
    }
}

/// Whether the CLI runs under GitHub Actions (`GITHUB_ACTIONS=true`), and
/// file paths as GitHub names them (relative to `GITHUB_WORKSPACE`). Core
/// gets the decision, never the environment.
enum GitHubActionsEnvironment {
    static var isEnabled: Bool { ProcessInfo.processInfo.environment["GITHUB_ACTIONS"] == "true" }

    static func path(_ path: String) -> String {
        GitHubActions.workspacePath(path, workspace: ProcessInfo.processInfo.environment["GITHUB_WORKSPACE"],
                                    currentDirectory: FileManager.default.currentDirectoryPath)
    }
}

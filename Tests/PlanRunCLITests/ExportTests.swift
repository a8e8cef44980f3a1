import Foundation
import Testing

/// `planrun export`: the built binary writes workflows for the examples and
/// for plans with awkward ids and many dependencies; the output is read back
/// with PyYAML and checked against the plan (`planrun list --json`), the
/// GitHub workflow with check-jsonschema's GitHub workflow schema and with
/// actionlint. Those tools come from `tests/run.sh`; a test whose tool is
/// missing is skipped with the reason (`TestTools`).
@Suite struct ExportTests {
    /// Plans to export, relative to the package root (where the tests run
    /// export, as users run it from their repository root).
    static let plans = [
        "examples/agents/plan.yaml",
        "examples/c-program/plan.yaml",
        "examples/data-pipeline/plan.yaml",
        "examples/matrix/plan.yaml",
        "Tests/Fixtures/export-github/plan.yaml",
    ]

    // MARK: GitHub Actions

    @Test(.enabled(if: TestTools.hasPyYAML, TestTools.noPyYAML), arguments: plans)
    func githubWorkflowHasOneJobPerSubtask(_ plan: String) throws {
        try checkGitHub(plan: plan, in: PlanRunBinary.packageRoot)
    }

    @Test(.enabled(if: TestTools.hasPyYAML, TestTools.noPyYAML))
    func githubWorkflowForManyDependencies() throws {
        let dir = try makeProject(Self.manyDependenciesPlan)
        defer { try? FileManager.default.removeItem(at: dir) }
        try checkGitHub(plan: "plan.yaml", in: dir)
    }

    @Test(.enabled(if: TestTools.path(of: "actionlint") != nil, TestTools.noActionlint), arguments: plans)
    func githubWorkflowPassesActionlint(_ plan: String) throws {
        let dir = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("planrun.yml")
        let export = try PlanRunBinary.run(["export", plan, "--to", "github-actions", "-o", file.path], in: PlanRunBinary.packageRoot)
        #expect(export.status == 0, "\(export.stderr)")
        let lint = try Self.runTool(try #require(TestTools.path(of: "actionlint")), ["-no-color", file.path], in: dir)
        #expect(lint.status == 0, "\(lint.output)")
    }

    /// Job ids are mapped to ids GitHub accepts, unique regardless of case,
    /// in plan order; the job's `name` keeps the subtask id.
    @Test(.enabled(if: TestTools.hasPyYAML, TestTools.noPyYAML))
    func githubJobIDsForAwkwardSubtaskIDs() throws {
        let doc = try exportedYAML("Tests/Fixtures/export-github/plan.yaml", to: "github-actions", in: PlanRunBinary.packageRoot)
        #expect(doc.keys == ["build_x", "build_x_2", "_1st", "Build_X_3", "true", "_-dash", "all"])
        let jobs = try #require(doc.root["jobs"] as? [String: Any])
        let all = try #require(jobs["all"] as? [String: Any])
        #expect(all["needs"] as? [String] == ["build_x", "build_x_2", "_1st", "Build_X_3", "true", "_-dash"])
        let dash = try #require(jobs["_-dash"] as? [String: Any])
        #expect(Self.lastRun(dash) == "planrun build Tests/Fixtures/export-github/plan.yaml --only -- -dash")
    }

    /// GitHub's workflow schema (SchemaStore, vendored by check-jsonschema).
    @Test(.enabled(if: TestTools.path(of: "check-jsonschema") != nil, TestTools.noCheckJSONSchema), arguments: plans)
    func githubWorkflowMatchesGitHubSchema(_ plan: String) throws {
        try checkGitHubSchema(plan: plan, in: PlanRunBinary.packageRoot)
    }

    @Test(.enabled(if: TestTools.path(of: "check-jsonschema") != nil, TestTools.noCheckJSONSchema))
    func githubWorkflowForManyDependenciesMatchesGitHubSchema() throws {
        let dir = try makeProject(Self.manyDependenciesPlan)
        defer { try? FileManager.default.removeItem(at: dir) }
        try checkGitHubSchema(plan: "plan.yaml", in: dir)
    }

    /// Exports `plan` (relative to `dir`) and checks the workflow with check-jsonschema.
    func checkGitHubSchema(plan: String, in dir: URL) throws {
        let scratch = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let file = scratch.appendingPathComponent("planrun.yml")
        let export = try PlanRunBinary.run(["export", plan, "--to", "github-actions", "-o", file.path], in: dir)
        #expect(export.status == 0, "\(export.stderr)")
        let checker = try #require(TestTools.path(of: "check-jsonschema"))
        let check = try Self.runTool(checker, ["--builtin-schema", "vendor.github-workflows", file.path], in: scratch)
        #expect(check.status == 0, "\(check.output)")
    }

    // MARK: Argo

    @Test(.enabled(if: TestTools.hasPyYAML, TestTools.noPyYAML), arguments: plans)
    func argoWorkflowHasOneTaskPerSubtask(_ plan: String) throws {
        try checkArgo(plan: plan, in: PlanRunBinary.packageRoot)
    }

    @Test(.enabled(if: TestTools.hasPyYAML, TestTools.noPyYAML))
    func argoWorkflowForManyDependencies() throws {
        let dir = try makeProject(Self.manyDependenciesPlan)
        defer { try? FileManager.default.removeItem(at: dir) }
        try checkArgo(plan: "plan.yaml", in: dir)
    }

    @Test(.enabled(if: TestTools.hasPyYAML, TestTools.noPyYAML))
    func argoTaskNamesForAwkwardSubtaskIDs() throws {
        let doc = try exportedYAML("Tests/Fixtures/export-argo/plan.yaml", to: "argo", in: PlanRunBinary.packageRoot)
        let tasks = try Self.argoTasks(doc.root)
        #expect(tasks.map { $0["name"] as? String } == ["build-x", "build-x-2", "1st", "build-x-3", "true", "dash", "all"])
    }

    // MARK: Command line

    @Test func outputFileHoldsWhatStandardOutputWouldShow() throws {
        let dir = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("workflow.yaml")
        let plan = "examples/c-program/plan.yaml"
        let toFile = try PlanRunBinary.run(["export", plan, "--to", "argo", "-o", file.path], in: PlanRunBinary.packageRoot)
        #expect(toFile.status == 0)
        #expect(toFile.stdout == "")
        let toStdout = try PlanRunBinary.run(["export", plan, "--to", "argo"], in: PlanRunBinary.packageRoot)
        #expect(try String(contentsOf: file, encoding: .utf8) == toStdout.stdout)
        // The same plan gives the same text.
        let again = try PlanRunBinary.run(["export", plan, "--to", "argo"], in: PlanRunBinary.packageRoot)
        #expect(again.stdout == toStdout.stdout)
    }

    @Test func planPathInsideTheCurrentFolderIsMadeRelative() throws {
        let absolute = PlanRunBinary.packageRoot.appendingPathComponent("examples/c-program/plan.yaml").path
        let result = try PlanRunBinary.run(["export", absolute, "--to", "github-actions"], in: PlanRunBinary.packageRoot)
        #expect(result.status == 0)
        #expect(result.stdout.contains("run: planrun build examples/c-program/plan.yaml link --only\n"))
    }

    struct ErrorCase: Sendable, CustomTestStringConvertible {
        var name: String
        var arguments: [String]
        var status: Int32
        var stderr: String
        var testDescription: String { name }
    }

    static let errorCases = [
        ErrorCase(name: "unknown engine", arguments: ["export", "plan.yaml", "--to", "jenkins"], status: 64,
                  stderr: "Error: The value 'jenkins' is invalid for '--to <to>'. Please provide one of 'github-actions' and 'argo'."),
        ErrorCase(name: "no engine", arguments: ["export", "plan.yaml"], status: 64,
                  stderr: "Error: Missing expected argument '--to <to>'"),
        ErrorCase(name: "subtask ids", arguments: ["export", "plan.yaml", "a", "--to", "argo"], status: 64,
                  stderr: "Error: export takes no subtask ids (got `a`)"),
        ErrorCase(name: "invalid plan", arguments: ["export", "bad.yaml", "--to", "argo"], status: 2,
                  stderr: "bad.yaml:3:34: error: subtask `a` depends on unknown subtask `b`"),
        ErrorCase(name: "unwritable output", arguments: ["export", "plan.yaml", "--to", "argo", "-o", "missing/w.yaml"], status: 1,
                  stderr: "error: cannot write `missing/w.yaml`: "),
    ]

    @Test(arguments: errorCases)
    func errors(_ c: ErrorCase) throws {
        let dir = try makeProject("version: 1\nsubtasks:\n  - {id: a, run: echo a}\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        try "version: 1\nsubtasks:\n  - {id: a, run: x, depends_on: [b]}\n"
            .write(to: dir.appendingPathComponent("bad.yaml"), atomically: true, encoding: .utf8)
        let result = try PlanRunBinary.run(c.arguments, in: dir)
        #expect(result.status == c.status)
        #expect(result.stdout == "")
        #expect(result.stderr.hasPrefix(c.stderr), "\(result.stderr)")
    }

    // MARK: Checks

    /// 40 subtasks; each depends on every earlier one whose number is a
    /// multiple of 3, and on its predecessor.
    static let manyDependenciesPlan: String = {
        var yaml = "version: 1\nname: many-deps\nsubtasks:\n"
        for i in 0..<40 {
            var deps = (0..<i).filter { $0 % 3 == 0 }.map { "s.\($0)" }
            if i > 0, !deps.contains("s.\(i - 1)") { deps.append("s.\(i - 1)") }
            yaml += "  - id: s.\(i)\n    run: echo \(i)\n"
            if !deps.isEmpty { yaml += "    depends_on: [\(deps.joined(separator: ", "))]\n" }
        }
        return yaml
    }()

    struct PlanSubtask { var id: String; var dependsOn: [String] }

    /// The plan's subtasks as the binary lists them.
    func subtasks(_ plan: String, in dir: URL) throws -> [PlanSubtask] {
        let list = try PlanRunBinary.run(["list", plan, "--json"], in: dir)
        #expect(list.status == 0, "\(list.stderr)")
        let items = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        return try items.map { PlanSubtask(id: try #require($0["id"] as? String), dependsOn: $0["depends_on"] as? [String] ?? []) }
    }

    struct YAMLDocument { var root: [String: Any]; var keys: [String] }

    /// Runs `planrun export` and reads its output with PyYAML; `keys` are
    /// the keys of `jobs` in document order.
    func exportedYAML(_ plan: String, to engine: String, in dir: URL) throws -> YAMLDocument {
        let export = try PlanRunBinary.run(["export", plan, "--to", engine], in: dir)
        #expect(export.status == 0, "\(export.stderr)")
        #expect(export.stderr == "")
        let script = """
            import json, sys, yaml
            doc = yaml.safe_load(sys.stdin)
            jobs = doc.get("jobs") or {}
            print(json.dumps({"root": doc, "keys": [str(k) for k in jobs]}, default=str))
            """
        let parsed = try Self.runTool("/usr/bin/env", ["python3", "-c", script], in: dir, stdin: export.stdout)
        try #require(parsed.status == 0, "\(parsed.output)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(parsed.output.utf8)) as? [String: Any])
        return YAMLDocument(root: try #require(object["root"] as? [String: Any]), keys: try #require(object["keys"] as? [String]))
    }

    func checkGitHub(plan: String, in dir: URL) throws {
        let subtasks = try subtasks(plan, in: dir)
        let doc = try exportedYAML(plan, to: "github-actions", in: dir)
        let jobs = try #require(doc.root["jobs"] as? [String: Any])
        // One job per subtask, in plan order; `name` is the subtask id.
        try #require(doc.keys.count == subtasks.count)
        #expect(jobs.count == subtasks.count)
        var jobOf: [String: String] = [:]
        for (key, subtask) in zip(doc.keys, subtasks) {
            let job = try #require(jobs[key] as? [String: Any])
            #expect(job["name"] as? String == subtask.id)
            jobOf[subtask.id] = key
        }
        let validID = try Regex("^[A-Za-z_][A-Za-z0-9_-]*$")
        for key in doc.keys { #expect(key.wholeMatch(of: validID) != nil, "job id \(key)") }
        #expect(Set(doc.keys.map { $0.lowercased() }).count == doc.keys.count, "job ids differ only by case")
        for (key, subtask) in zip(doc.keys, subtasks) {
            let job = try #require(jobs[key] as? [String: Any])
            // `needs` follows `depends_on`.
            #expect((job["needs"] as? [String] ?? []) == subtask.dependsOn.compactMap { jobOf[$0] }, "needs of \(key)")
            #expect(job["runs-on"] as? String == "ubuntu-latest")
            let steps = try #require(job["steps"] as? [[String: Any]])
            #expect(steps.first?["uses"] as? String == "actions/checkout@v4")
            let expected = subtask.id.hasPrefix("-")
                ? "planrun build \(plan) --only -- \(subtask.id)" : "planrun build \(plan) \(subtask.id) --only"
            #expect(Self.lastRun(job) == expected)
        }
        let env = try #require(doc.root["env"] as? [String: Any])
        #expect(env["PLANRUN_REMOTE_CACHE"] as? String == "${{ vars.PLANRUN_REMOTE_CACHE }}")
    }

    func checkArgo(plan: String, in dir: URL) throws {
        let subtasks = try subtasks(plan, in: dir)
        let doc = try exportedYAML(plan, to: "argo", in: dir)
        #expect(doc.root["apiVersion"] as? String == "argoproj.io/v1alpha1")
        #expect(doc.root["kind"] as? String == "Workflow")
        let tasks = try Self.argoTasks(doc.root)
        try #require(tasks.count == subtasks.count)
        let templates = try Self.argoTemplates(doc.root)
        let dns = try Regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        var taskOf: [String: String] = [:]
        for (task, subtask) in zip(tasks, subtasks) {
            let name = try #require(task["name"] as? String)
            #expect(name.wholeMatch(of: dns) != nil && name.count <= 63, "task name \(name)")
            taskOf[subtask.id] = name
        }
        #expect(Set(taskOf.values).count == tasks.count, "task names are not unique")
        for (task, subtask) in zip(tasks, subtasks) {
            #expect((task["dependencies"] as? [String] ?? []) == subtask.dependsOn.compactMap { taskOf[$0] })
            // The command of the task's template, its parameters filled in.
            let templateName = try #require(task["template"] as? String)
            let template = try #require(templates[templateName])
            let container = try #require(template["container"] as? [String: Any])
            let arguments = (task["arguments"] as? [String: Any])?["parameters"] as? [[String: Any]] ?? []
            var command = try #require(container["command"] as? [String])
            for parameter in arguments {
                let name = try #require(parameter["name"] as? String)
                let value = try #require(parameter["value"] as? String)
                command = command.map { $0.replacingOccurrences(of: "{{inputs.parameters.\(name)}}", with: value) }
            }
            #expect(Array(command.prefix(3)) == ["planrun", "build", plan])
            #expect(command.contains("--only"))
            #expect(command.last == subtask.id || command.dropLast().last == subtask.id, "\(command)")
            let env = container["env"] as? [[String: Any]] ?? []
            #expect(env.contains { $0["name"] as? String == "PLANRUN_REMOTE_CACHE" })
        }
    }

    static func argoTemplates(_ root: [String: Any]) throws -> [String: [String: Any]] {
        let spec = try #require(root["spec"] as? [String: Any])
        let list = try #require(spec["templates"] as? [[String: Any]])
        var templates: [String: [String: Any]] = [:]
        for t in list { templates[try #require(t["name"] as? String)] = t }
        return templates
    }

    /// The tasks of the entry point's DAG.
    static func argoTasks(_ root: [String: Any]) throws -> [[String: Any]] {
        let spec = try #require(root["spec"] as? [String: Any])
        let entry = try #require(spec["entrypoint"] as? String)
        let template = try #require(try argoTemplates(root)[entry])
        let dag = try #require(template["dag"] as? [String: Any])
        return try #require(dag["tasks"] as? [[String: Any]])
    }

    static func lastRun(_ job: [String: Any]) -> String? {
        (job["steps"] as? [[String: Any]])?.last?["run"] as? String
    }

    /// Runs a program; standard output and error together.
    static func runTool(_ program: String, _ arguments: [String], in dir: URL, stdin: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        process.currentDirectoryURL = dir
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let input = Pipe()
        process.standardInput = input
        try process.run()
        // A writer thread, so a large input cannot block on a full output pipe.
        let text = stdin
        let writer = Thread {
            if let text { input.fileHandleForWriting.write(Data(text.utf8)) }
            try? input.fileHandleForWriting.close()
        }
        writer.start()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

import Foundation
import Testing

/// The JSON schema (`schema/plan.schema.json`) and the loader must agree:
/// every example passes both, and every invalid fixture fails both.
/// Runs real processes: `python3 tests/schema_check.py` (jsonschema + PyYAML)
/// and the built `planrun validate`.
@Suite struct SchemaTests {
    /// The package root, from this file's path
    /// (`<root>/Tests/PlanRunCLITests/SchemaTests.swift`).
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let binary = root.appendingPathComponent(".build/debug/planrun")
    static let checker = root.appendingPathComponent("tests/schema_check.py")
    static let invalidFixtures = root.appendingPathComponent("Tests/Fixtures/invalid-schema")

    /// The example folders that hold a `plan.yaml`.
    static let examples: [String] = {
        let folder = root.appendingPathComponent("examples")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.sorted().filter {
            FileManager.default.fileExists(atPath: folder.appendingPathComponent("\($0)/plan.yaml").path)
        }
    }()

    @Test func theExamplesExist() {
        #expect(Self.examples == ["agents", "c-program", "data-pipeline", "matrix", "monorepo"])
    }

    /// Plan files the examples include (`includes:`), which the schema
    /// describes as well: every other `plan.yaml` below an example folder.
    static let includedPlans = ["monorepo/app/plan.yaml", "monorepo/lib/plan.yaml"]

    @Test func everyIncludedExamplePlanIsListed() {
        let folder = Self.root.appendingPathComponent("examples").path
        let found = (FileManager.default.enumerator(atPath: folder)?.allObjects as? [String] ?? [])
            .filter { $0.hasSuffix("/plan.yaml") && $0.split(separator: "/").count > 2 && !$0.contains("/.") }
        #expect(found.sorted() == Self.includedPlans)
    }

    @Test(.enabled(if: TestTools.hasSchemaModules, TestTools.noSchemaModules), arguments: includedPlans)
    func includedExamplePlanMatchesSchema(_ path: String) throws {
        let plan = "examples/\(path)"
        let result = try Self.runProcess("/usr/bin/env", ["python3", Self.checker.path, plan], in: Self.root)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output == "ok \(plan)\n")
    }

    @Test(.enabled(if: TestTools.hasSchemaModules, TestTools.noSchemaModules), arguments: examples)
    func exampleMatchesSchema(_ example: String) throws {
        let plan = "examples/\(example)/plan.yaml"
        let result = try Self.runProcess("/usr/bin/env", ["python3", Self.checker.path, plan], in: Self.root)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output == "ok \(plan)\n")
    }

    @Test(arguments: examples)
    func exampleValidates(_ example: String) throws {
        let plan = "examples/\(example)/plan.yaml"
        let result = try Self.runProcess(Self.binary.path, ["validate", plan], in: Self.root)
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.contains("error:"), "\(result.output)")
    }

    /// Every fixture in the folder has a case in `invalidCases`, and the reverse.
    @Test func everyInvalidFixtureHasACase() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.invalidFixtures.path)
            .filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files == Self.invalidCases.map(\.file).sorted())
        #expect(files.count >= 8)
    }

    @Test(.enabled(if: TestTools.hasSchemaModules, TestTools.noSchemaModules), arguments: invalidCases)
    func invalidFixtureFailsSchema(_ fixture: InvalidFixture) throws {
        let result = try Self.runProcess(
            "/usr/bin/env", ["python3", Self.checker.path, fixture.file], in: Self.invalidFixtures)
        #expect(result.status == 1, "\(result.output)")
        #expect(result.output.hasPrefix("invalid \(fixture.file): "), "\(result.output)")
        #expect(result.output.contains(fixture.schemaError), "\(result.output)")
        #expect(!result.output.contains("Traceback"), "\(result.output)")
    }

    @Test(arguments: invalidCases)
    func invalidFixtureFailsValidate(_ fixture: InvalidFixture) throws {
        let result = try Self.runProcess(Self.binary.path, ["validate", fixture.file], in: Self.invalidFixtures)
        #expect(result.status == 2, "\(result.output)")
        let errors = result.output.split(separator: "\n").filter { $0.contains(": error: ") }
        #expect(errors.first.map(String.init) == fixture.diagnostic, "\(result.output)")
    }

    struct ProcessResult {
        var status: Int32
        /// Standard output and standard error, interleaved.
        var output: String
    }

    /// Runs a program to completion in `directory`; standard output and error
    /// share one pipe, read to its end before waiting, so neither can fill up.
    static func runProcess(_ executable: String, _ arguments: [String], in directory: URL) throws -> ProcessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        var environment = ProcessInfo.processInfo.environment
        environment["NO_COLOR"] = "1"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ProcessResult(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }
}

extension SchemaTests {
    /// A plan in `Tests/Fixtures/invalid-schema/` with exactly one problem, and
    /// what the schema check and `planrun validate` say about it.
    struct InvalidFixture: Sendable, CustomTestStringConvertible {
        var file: String
        /// Text in the schema checker's message.
        var schemaError: String
        /// The first error `planrun validate` reports, exactly:
        /// `FILE:LINE:COLUMN: error: MESSAGE`.
        var diagnostic: String

        var testDescription: String { file }
    }

    static let invalidCases: [InvalidFixture] = [
        InvalidFixture(file: "include-bad-namespace.yaml", schemaError: "/includes: 'web/api' does not match",
                       diagnostic: "include-bad-namespace.yaml:3:3: error: invalid value `web/api` for `includes`; expected a namespace of letters, digits, `_`, `.` and `-`"),
        InvalidFixture(file: "include-without-plan.yaml", schemaError: "/includes/web: {'vars': {'mode': 'fast'}} is not valid under any of the given schemas",
                       diagnostic: "include-without-plan.yaml:3:8: error: missing required key `plan` in include `web`"),
        InvalidFixture(file: "agent-extra-key.yaml", schemaError: "/agents/coder: Additional properties are not allowed ('comand_args' was unexpected)",
                       diagnostic: "agent-extra-key.yaml:6:5: error: unknown key `comand_args` in agent `coder`"),
        InvalidFixture(file: "bad-agent-kind.yaml", schemaError: "/agents/helper/kind: 'python' is not one of ['shell', 'command', 'http']",
                       diagnostic: "bad-agent-kind.yaml:4:11: error: invalid value `python` for `kind`; expected `shell`, `command` or `http`"),
        InvalidFixture(file: "bad-approval.yaml", schemaError: "/approval: 'maybe' is not one of ['none', 'required']",
                       diagnostic: "bad-approval.yaml:2:11: error: invalid value `maybe` for `approval`; expected `none` or `required`"),
        InvalidFixture(file: "bad-duration.yaml", schemaError: "/subtasks/0/timeout: '10 minutes' does not match",
                       diagnostic: "bad-duration.yaml:5:14: error: invalid duration `10 minutes` for `timeout`; use forms like 500ms, 10s, 5m, 2h or 1m30s"),
        InvalidFixture(file: "bad-id.yaml", schemaError: "/subtasks/0/id: 'build thing' does not match",
                       diagnostic: "bad-id.yaml:3:9: error: invalid subtask id `build thing`; use letters, digits, `_`, `.` and `-`"),
        InvalidFixture(file: "command-agent-without-command.yaml", schemaError: "/agents/coder: 'command' is a required property",
                       diagnostic: "command-agent-without-command.yaml:3:3: error: agent `coder` of kind `command` needs a non-empty `command`"),
        InvalidFixture(file: "defaults-unknown-key.yaml", schemaError: "/defaults: Additional properties are not allowed ('retry' was unexpected)",
                       diagnostic: "defaults-unknown-key.yaml:3:3: error: unknown key `retry` in `defaults`"),
        InvalidFixture(file: "empty-subtasks.yaml", schemaError: "/subtasks: [] should be non-empty",
                       diagnostic: "empty-subtasks.yaml:2:11: error: `subtasks` must list at least one subtask"),
        InvalidFixture(file: "http-agent-without-url.yaml", schemaError: "/agents/reviewer: 'url' is a required property",
                       diagnostic: "http-agent-without-url.yaml:3:3: error: missing required key `url` in agent `reviewer` of kind `http`"),
        InvalidFixture(file: "missing-id.yaml", schemaError: "/subtasks/0: 'id' is a required property",
                       diagnostic: "missing-id.yaml:3:5: error: missing required key `id` in a subtask"),
        InvalidFixture(file: "missing-subtasks.yaml", schemaError: "/: 'subtasks' is a required property",
                       diagnostic: "missing-subtasks.yaml:1:1: error: missing required key `subtasks` in the plan"),
        InvalidFixture(file: "missing-version.yaml", schemaError: "/: 'version' is a required property",
                       diagnostic: "missing-version.yaml:1:1: error: missing required key `version` in the plan"),
        InvalidFixture(file: "negative-retries.yaml", schemaError: "/subtasks/0/retries: -1 is less than the minimum of 0",
                       diagnostic: "negative-retries.yaml:5:14: error: invalid value `-1` for `retries`; expected a non-negative integer"),
        InvalidFixture(file: "subtask-unknown-key.yaml", schemaError: "/subtasks/1: Additional properties are not allowed ('depends' was unexpected)",
                       diagnostic: "subtask-unknown-key.yaml:7:5: error: unknown key `depends` in subtask `b`; did you mean `depends_on`?"),
        InvalidFixture(file: "unknown-top-level-key.yaml", schemaError: "/: Additional properties are not allowed ('nmae' was unexpected)",
                       diagnostic: "unknown-top-level-key.yaml:2:1: error: unknown key `nmae` in the plan; did you mean `name`?"),
        InvalidFixture(file: "version-2.yaml", schemaError: "/version: 1 was expected",
                       diagnostic: "version-2.yaml:1:10: error: unsupported plan version 2; only version 1 is accepted"),
        InvalidFixture(file: "wrong-type-inputs.yaml", schemaError: "/subtasks/0/inputs: {'src': 'a.c'} is not of type 'array'",
                       diagnostic: "wrong-type-inputs.yaml:5:13: error: `inputs` must be a list of strings, not a mapping"),
        InvalidFixture(file: "wrong-type-max-parallel.yaml", schemaError: "/max_parallel: 'four' is not of type 'integer'",
                       diagnostic: "wrong-type-max-parallel.yaml:2:15: error: `max_parallel` must be a positive integer, not a string"),
        InvalidFixture(file: "zero-max-parallel.yaml", schemaError: "/max_parallel: 0 is less than the minimum of 1",
                       diagnostic: "zero-max-parallel.yaml:2:15: error: invalid value `0` for `max_parallel`; expected a positive integer"),
    ]
}

import Foundation
@testable import PlanRunCore
import Testing

/// Issue 11, item 7: an input that names no file is reported with its
/// position and the closest existing name; `validate` reports plain paths
/// that are neither files nor outputs.
@Suite struct CachingMissingInputTests {
    static func load(_ yaml: String, in dir: CachingTempDir) throws -> Plan {
        try PlanLoader.load(bytes: Array(yaml.utf8), file: "plan.yaml", directory: dir.path)
    }

    @Test func validateReportsOnlyPlainPathsThatNothingProduces() throws {
        let dir = CachingTempDir()
        dir.write("src/lapi.c", "x")
        dir.write("src/lprefix.h", "x")
        let plan = try Self.load("""
            version: 1
            subtasks:
              - id: gen
                run: mkdir -p build out && touch build/a out/gen.h
                outputs: [build, out/gen.h]
              - id: use
                run: 'true'
                inputs: [src/lapi.c, src/lprefx.h, build/x/y.h, out, out/gen.h, "-opt.h", "src/*.zig", nosuch/dir.h]
            """, in: dir)
        let diagnostics = MissingInput.diagnostics(for: plan)
        #expect(diagnostics.map(\.description) == [
            "plan.yaml:8:26: error: input `src/lprefx.h` of subtask `use` does not exist and is no subtask's output; did you mean `src/lprefix.h`?",
            "plan.yaml:8:92: error: input `nosuch/dir.h` of subtask `use` does not exist and is no subtask's output; mark it optional with a leading `-` (`-nosuch/dir.h`) if it may be absent",
        ])
    }

    @Test func buildErrorNamesThePositionAndTheClosestFile() throws {
        let dir = CachingTempDir()
        dir.write("lprefix.h", "x")
        let plan = try Self.load("version: 1\nsubtasks:\n  - id: t\n    run: 'true'\n    inputs: [lprefx.h]\n", in: dir)
        #expect(throws: CacheError.inputNotFound(subtask: "t", pattern: "lprefx.h",
                                                 location: SourceLocation(file: "plan.yaml", line: 5, column: 14),
                                                 suggestion: "lprefix.h")) {
            try InputGlob.inputFiles(of: plan.subtasks[0], root: dir.path)
        }
        // A wildcard that matches nothing gets no suggestion, only the hint.
        let glob = try Self.load("version: 1\nsubtasks:\n  - id: t\n    run: 'true'\n    inputs: [\"*.zig\"]\n", in: dir)
        #expect(throws: CacheError.inputNotFound(subtask: "t", pattern: "*.zig",
                                                 location: SourceLocation(file: "plan.yaml", line: 5, column: 14))) {
            try InputGlob.inputFiles(of: glob.subtasks[0], root: dir.path)
        }
    }

    @Test func suggestionSkipsDotFilesUnlessAskedFor() {
        let dir = CachingTempDir()
        dir.write(".envrc", "x")
        dir.write("config/app.yml", "x")
        #expect(MissingInput.suggestion(for: "envrc", root: dir.path) == nil)
        #expect(MissingInput.suggestion(for: ".envr", root: dir.path) == ".envrc")
        #expect(MissingInput.suggestion(for: "config/ap.yml", root: dir.path) == "config/app.yml")
        #expect(MissingInput.suggestion(for: "confg/app.yml", root: dir.path) == nil)
    }
}

/// Issue 11, item 6: the command line `-v`, logs and `status` show.
@Suite struct ExecutionCommandLineTests {
    @Test func commandLines() {
        let run = Subtask(id: "t", run: "echo \"a b\" > out")
        #expect(SubtaskCommandLine.text(of: run, agent: AgentDefinition(name: "shell", kind: .shell)) == "echo \"a b\" > out")
        #expect(SubtaskCommandLine.text(of: run, agent: AgentDefinition(name: "bash", kind: .shell, shell: ["bash", "-eu", "-c"]))
            == "bash -eu -c 'echo \"a b\" > out'")
        let agent = AgentDefinition(name: "coder", kind: .command, command: ["python3", "agents/it's.py", "--mode=fast", ""])
        #expect(SubtaskCommandLine.text(of: Subtask(id: "c", agent: "coder"), agent: agent)
            == "agent coder: python3 'agents/it'\\''s.py' --mode=fast ''")
        let http = AgentDefinition(name: "review", kind: .http, url: "http://127.0.0.1:8080/review")
        #expect(SubtaskCommandLine.text(of: Subtask(id: "r", agent: "review"), agent: http)
            == "agent review: POST http://127.0.0.1:8080/review")
    }
}

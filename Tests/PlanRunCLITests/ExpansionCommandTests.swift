import Foundation
import Testing

/// `foreach`, `matrix`, `vars` and `--var` through the real binary: groups
/// and instances as targets, `explain` and `status` given a group, the
/// files of instances whose ids hold `/` and spaces, the context a command
/// agent gets, and keys equal to those of the hand-written plan.
@Suite(.serialized) struct ExpansionCommandTests {
    static let plan = """
        version: 1
        vars:
          greeting: hello
          names: [a, b]
        subtasks:
          - id: gen
            foreach: "${{ vars.names }}"
            run: mkdir -p out && echo ${{ vars.greeting }} ${{ item }} > out/${{ item }}.txt
            outputs: ["out/${{ item }}.txt"]
          - id: render
            foreach: { glob: "docs/*.md" }
            run: mkdir -p html && cp "${{ item }}" "html/${{ item.stem }}.html"
            inputs: ["${{ item }}"]
            outputs: ["html/${{ item.stem }}.html"]
          - id: optional
            foreach: { glob: "-gen/*.txt" }
            run: "false"
          - id: all
            depends_on: [gen, render, optional]
            run: cat out/*.txt > all.txt
            outputs: [all.txt]
        """

    func project() throws -> URL {
        let dir = try makeProject(Self.plan)
        let docs = dir.appendingPathComponent("docs")
        try FileManager.default.createDirectory(at: docs, withIntermediateDirectories: true)
        try "notes\n".write(to: docs.appendingPathComponent("My Notes.md"), atomically: true, encoding: .utf8)
        try "intro\n".write(to: docs.appendingPathComponent("intro.md"), atomically: true, encoding: .utf8)
        return dir
    }

    func ids(_ r: PlanRunBinary.Result) throws -> [String] {
        let json = try parseJSON(r.stdout)
        return ((json["subtasks"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String }
    }

    @Test func groupsAndInstancesAsTargets() throws {
        let dir = try project()
        defer { try? FileManager.default.removeItem(at: dir) }
        let list = try PlanRunBinary.run(["list", "--json"], in: dir)
        #expect(list.status == 0, "\(list.stderr)")
        let listed = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(listed.compactMap { $0["id"] as? String } == [
            "gen:a", "gen:b", "render:docs/My Notes.md", "render:docs/intro.md", "all",
        ])
        #expect(listed.last?["depends_on"] as? [String] == ["gen:a", "gen:b", "render:docs/My Notes.md", "render:docs/intro.md"])

        let group = try PlanRunBinary.run(["build", "--json", "gen"], in: dir)
        #expect(group.status == 0, "\(group.stderr)")
        #expect(try parseJSON(group.stdout)["total"] as? Int == 2)
        #expect(try String(contentsOf: dir.appendingPathComponent("out/b.txt"), encoding: .utf8) == "hello b\n")

        let instance = try PlanRunBinary.run(["build", "--json", "plan.yaml", "render:docs/My Notes.md"], in: dir)
        #expect(instance.status == 0, "\(instance.stderr)")
        #expect(try parseJSON(instance.stdout)["total"] as? Int == 1)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("html/My Notes.html").path))

        let empty = try PlanRunBinary.run(["build", "optional"], in: dir)
        #expect(empty.status == 0)
        #expect(empty.stdout == "nothing to build: `optional` is a group without instances\n")

        let unknown = try PlanRunBinary.run(["build", "rendr"], in: dir)
        #expect(unknown.status == 2)
        #expect(unknown.stderr == "error: no subtask named `rendr`; did you mean `render`?\n")

        // --only with an instance id: its dependencies come from the cache.
        let all = try PlanRunBinary.run(["build"], in: dir)
        #expect(all.status == 0, "\(all.stderr)")
        try FileManager.default.removeItem(at: dir.appendingPathComponent("out/a.txt"))
        let only = try PlanRunBinary.run(["build", "--json", "plan.yaml", "gen:a", "--only"], in: dir)
        #expect(only.status == 0, "\(only.stderr)")
        #expect(try parseJSON(only.stdout)["total"] as? Int == 1)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out/a.txt").path))
    }

    @Test func explainAndStatusTakeOneInstance() throws {
        let dir = try project()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try PlanRunBinary.run(["build"], in: dir).status == 0)
        for command in ["explain", "status"] {
            let r = try PlanRunBinary.run([command, "render"], in: dir)
            #expect(r.status == 2)
            #expect(r.stderr == "error: `render` is a group of 2 instances; \(command) takes one instance, such as `render:docs/My Notes.md`\n")
        }
        let empty = try PlanRunBinary.run(["status", "optional"], in: dir)
        #expect(empty.status == 2)
        #expect(empty.stderr == "error: `optional` is a group without instances; status takes one subtask\n")
        let explain = try PlanRunBinary.run(["explain", "render:docs/intro.md"], in: dir)
        #expect(explain.status == 0, "\(explain.stderr)")
        #expect(explain.stdout.hasPrefix("`render:docs/intro.md` would be skipped"))
        let status = try parseJSON(try PlanRunBinary.run(["status", "gen:b", "--json"], in: dir).stdout)
        #expect(status["status"] as? String == "done")
    }

    @Test func varOverridesRerunWhatChangedAndUndeclaredNamesAreUsageErrors() throws {
        let dir = try project()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try PlanRunBinary.run(["build"], in: dir).status == 0)
        let plan = try PlanRunBinary.run(["plan", "--format", "json", "--var", "greeting=bye"], in: dir)
        #expect(plan.status == 0, "\(plan.stderr)")
        let actions = (try parseJSON(plan.stdout)["batches"] as? [[[String: Any]]] ?? []).flatMap { $0 }
            .map { "\($0["id"]!) \($0["action"]!)" }
        #expect(actions.sorted() == [
            "all run", "gen:a run", "gen:b run", "render:docs/My Notes.md skip", "render:docs/intro.md skip",
        ])
        let build = try PlanRunBinary.run(["build", "--var", "greeting=bye", "--var", "names=a c"], in: dir)
        #expect(build.status == 0, "\(build.stderr)")
        #expect(try String(contentsOf: dir.appendingPathComponent("all.txt"), encoding: .utf8) == "bye a\nhello b\nbye c\n")

        // The commands that read the plan after a build take the same --var:
        // `gen:c` exists only with it.
        let unknown = try PlanRunBinary.run(["status", "gen:c"], in: dir)
        #expect(unknown.status == 2, "\(unknown.stderr)")
        let status = try PlanRunBinary.run(["status", "gen:c", "--json", "--var", "names=a c"], in: dir)
        #expect(status.status == 0, "\(status.stderr)")
        #expect(try parseJSON(status.stdout)["status"] as? String == "done")
        let clean = try PlanRunBinary.run(["clean", "--outputs", "--var", "names=a c"], in: dir)
        #expect(clean.status == 0, "\(clean.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out/c.txt").path))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out/a.txt").path))

        for command in [["build"], ["plan"], ["validate", "plan.yaml"], ["list"], ["explain", "all"], ["retry"], ["export", "--to", "argo"],
                        ["status"], ["clean", "--outputs"], ["approve"], ["cancel"]] {
            let r = try PlanRunBinary.run(command + ["--var", "greting=x"], in: dir)
            #expect(r.status == 64, "\(command)")
            #expect(r.stderr == "error: --var greting: the plan declares no variable `greting`; did you mean `greeting`?\n", "\(command)")
        }
        let malformed = try PlanRunBinary.run(["build", "--var", "greeting"], in: dir)
        #expect(malformed.status == 64)
        #expect(malformed.stderr.hasPrefix("Error: `--var greeting` must be NAME=VALUE\n"))
    }

    @Test func aBadExpressionRunsNothingAndWritesNoState() throws {
        let dir = try makeProject("""
            version: 1
            subtasks:
              - id: a
                foreach: [x]
                run: touch ran-${{ item.stme }}
            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try PlanRunBinary.run(["build"], in: dir)
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("plan.yaml:5:10: error: unknown name `item.stme`"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["plan.yaml"])
    }

    @Test func instanceFilesCopeWithSlashesAndSpaces() throws {
        let dir = try makeProject("""
            version: 1
            subtasks:
              - id: fail
                foreach: ["docs/My Notes.md", "a:b"]
                run: echo "output of ${{ item }}"; exit 3
            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        let report = dir.appendingPathComponent("junit.xml")
        let r = try PlanRunBinary.run(["build", "--keep-going", "--report", report.path], in: dir)
        #expect(r.status == 1)
        let logs = dir.appendingPathComponent(".planrun/logs")
        let run = try #require(try FileManager.default.contentsOfDirectory(atPath: logs.path).first)
        let names = try FileManager.default.contentsOfDirectory(atPath: logs.appendingPathComponent(run).path).sorted()
        #expect(names == ["fail:a:b.log", "fail:docs%2FMy Notes.md.log"])
        let log = try String(contentsOf: logs.appendingPathComponent(run).appendingPathComponent("fail:docs%2FMy Notes.md.log"), encoding: .utf8)
        #expect(log.hasSuffix("\noutput of docs/My Notes.md\n"))
        let junit = try String(contentsOf: report, encoding: .utf8)
        #expect(junit.contains("name=\"fail:docs/My Notes.md\""))
        #expect(junit.contains("output of docs/My Notes.md"))
    }

    @Test func commandAgentsGetTheirItemOrMatrix() throws {
        let dir = try makeProject("""
            version: 1
            agents:
              save:
                command: [sh, -c, 'cat > "ctx-$(printf %s "$PLANRUN_SUBTASK" | tr ":,/" "___").json"']
            subtasks:
              - id: each
                agent: save
                foreach: [src/x.c]
              - id: grid
                agent: save
                matrix: { os: [linux], py: ["3.10"] }
            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try PlanRunBinary.run(["build"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let each = try parseJSON(try String(contentsOf: dir.appendingPathComponent("ctx-each_src_x.c.json"), encoding: .utf8))
        #expect(each["item"] as? String == "src/x.c")
        #expect(each["subtask_id"] as? String == "each:src/x.c")
        #expect(each["matrix"] == nil)
        let grid = try parseJSON(try String(contentsOf: dir.appendingPathComponent("ctx-grid_linux_3.10.json"), encoding: .utf8))
        #expect(grid["matrix"] as? [String: String] == ["os": "linux", "py": "3.10"])
        #expect(grid["item"] == nil)
    }

    /// §8.6: an instance's key is the key of the same subtask written out
    /// by hand (ids are not part of a key; dependencies enter by id).
    @Test func anInstanceHasTheKeyOfTheHandWrittenSubtask() throws {
        let expanded = try makeProject("""
            version: 1
            vars:
              cc: cc -O2
            subtasks:
              - id: compile
                foreach: { glob: "src/*.c" }
                run: ${{ vars.cc }} -c ${{ item }} -o build/${{ item.stem }}.o
                inputs: ["${{ item }}"]
                outputs: ["build/${{ item.stem }}.o"]
            """)
        let written = try makeProject("""
            version: 1
            subtasks:
              - id: compile-a
                run: cc -O2 -c src/a.c -o build/a.o
                inputs: [src/a.c]
                outputs: [build/a.o]
              - id: compile-b
                run: cc -O2 -c src/b.c -o build/b.o
                inputs: [src/b.c]
                outputs: [build/b.o]
            """)
        defer {
            try? FileManager.default.removeItem(at: expanded)
            try? FileManager.default.removeItem(at: written)
        }
        for dir in [expanded, written] {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent("src"), withIntermediateDirectories: true)
            try "int a;\n".write(to: dir.appendingPathComponent("src/a.c"), atomically: true, encoding: .utf8)
            try "int b;\n".write(to: dir.appendingPathComponent("src/b.c"), atomically: true, encoding: .utf8)
        }
        func key(_ id: String, in dir: URL) throws -> String {
            let r = try PlanRunBinary.run(["explain", id], in: dir)
            let line = r.stdout.split(separator: "\n").first { $0.hasPrefix("  key:") }
            return try #require(line.map { String($0.split(separator: " ").last!) }, "\(r.stdout)\(r.stderr)")
        }
        #expect(try key("compile:src/a.c", in: expanded) == key("compile-a", in: written))
        #expect(try key("compile:src/b.c", in: expanded) == key("compile-b", in: written))
        #expect(try key("compile:src/a.c", in: expanded) != key("compile-b", in: written))
    }
}

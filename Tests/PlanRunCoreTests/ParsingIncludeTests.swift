import Foundation
import Testing
@testable import PlanRunCore

/// `includes:` (DESIGN §8.5): plan files on disk, loaded with
/// `PlanLoader.load(path:)` as the commands load them.
@Suite struct ParsingIncludeTests {
    /// A folder of plan files, removed at the end.
    final class Files {
        let root: URL
        init(_ files: [String: String]) throws {
            root = try ParsingSupport.temporaryDirectory()
            for (path, text) in files { try write(path, text) }
        }
        deinit { try? FileManager.default.removeItem(at: root) }
        var path: String { root.path }
        func write(_ path: String, _ text: String) throws {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        func load(_ file: String = "plan.yaml") throws(PlanDiagnostics) -> Plan {
            try PlanLoader.load(path: root.appendingPathComponent(file).path)
        }
        /// The diagnostics of loading `file`, as `FILE:LINE:COLUMN: MESSAGE`
        /// with FILE relative to the folder; [] when it loads.
        func problems(_ file: String = "plan.yaml") -> [String] {
            do {
                _ = try load(file)
                return []
            } catch {
                return error.diagnostics.map { d in
                    let file = d.location.map { String($0.file.dropFirst(path.count + 1)) } ?? "-"
                    return "\(file):\(d.location?.line ?? 0):\(d.location?.column ?? 0): \(d.message)"
                }
            }
        }
    }

    static let web = """
        version: 1
        max_parallel: 1
        env: { WHO: web }
        defaults: { retries: 2, agent: sh }
        agents:
          sh: { kind: shell, env: { AGENT: web } }
        subtasks:
          - id: gen
            run: gen
            inputs: [src/*.c, -opt.txt, /etc/hostname, ../shared/x.h]
            outputs: [build/gen.c, ./build/./more]
          - id: build
            depends_on: [gen]
            run: cc
            retries: 0
        """

    @Test func includedSubtasksAreNamespacedRebasedAndComeAfterTheIncludersOwn() throws {
        let files = try Files([
            "plan.yaml": """
                version: 1
                env: { WHO: top, TOP: "1" }
                defaults: { retries: 5 }
                includes:
                  web: web/plan.yaml
                subtasks:
                  - id: all
                    depends_on: [web/build]
                    run: echo
                """,
            "web/plan.yaml": Self.web,
        ])
        let plan = try files.load()
        #expect(plan.subtasks.map(\.id) == ["all", "web/gen", "web/build"])
        let gen = try #require(plan["web/gen"]), build = try #require(plan["web/build"]), all = try #require(plan["all"])
        #expect(build.dependsOn == ["web/gen"])
        #expect(gen.agent == "web/sh" && plan.agents["web/sh"]?.name == "web/sh")
        #expect(plan.agents["web/shell"] != nil)
        #expect(gen.folder == "web" && gen.namespace == "web" && all.folder == "" && all.namespace == "")
        #expect(gen.inputs == ["web/src/*.c", "-web/opt.txt", "/etc/hostname", "shared/x.h"])
        #expect(gen.outputs == ["web/build/gen.c", "web/build/more"])
        #expect(plan.directory(for: gen) == files.path + "/web")
        // The included plan's env and defaults, not the includer's.
        #expect(plan.environment(for: gen) == ["WHO": "web", "AGENT": "web"])
        #expect(plan.environment(for: all) == ["WHO": "top", "TOP": "1"])
        #expect(plan.retries(for: gen) == 2 && plan.retries(for: build) == 0 && plan.retries(for: all) == 5)
        // Its max_parallel is kept only to be reported.
        #expect(plan.maxParallel == nil && plan.scopes["web"]?.maxParallel == 1)
        #expect(plan.includedFiles == [files.path + "/web/plan.yaml"])
        // Diagnostics and reports point into the file that declares it.
        #expect(gen.locations.item.file == files.path + "/web/plan.yaml" && gen.locations.item.line == 8)
    }

    @Test func nestedIncludesComposeAndTheSameFileMayBeIncludedTwice() throws {
        let files = try Files([
            "plan.yaml": """
                version: 1
                includes:
                  a: a/plan.yaml
                  again: a/b/plan.yaml
                subtasks:
                  - id: top
                    depends_on: [a/b/x, again/x, a/y]
                    run: echo
                """,
            "a/plan.yaml": """
                version: 1
                includes: { b: b/plan.yaml }
                subtasks:
                  - { id: y, depends_on: [b/x], run: echo }
                """,
            "a/b/plan.yaml": """
                version: 1
                env: { LEVEL: b }
                subtasks:
                  - { id: x, run: echo, inputs: [x.txt] }
                """,
        ])
        let plan = try files.load()
        #expect(plan.subtasks.map(\.id) == ["top", "a/y", "a/b/x", "again/x"])
        #expect(plan["a/y"]?.dependsOn == ["a/b/x"])
        #expect(plan["a/b/x"]?.agent == "a/b/shell" && plan["a/b/x"]?.folder == "a/b")
        #expect(plan["a/b/x"]?.inputs == ["a/b/x.txt"] && plan["again/x"]?.inputs == ["a/b/x.txt"])
        #expect(plan.environment(for: plan["a/b/x"]!) == ["LEVEL": "b"])
        #expect(plan.environment(for: plan["again/x"]!) == ["LEVEL": "b"])
        #expect(plan.environment(for: plan["a/y"]!) == [:])
        #expect(Set(plan.scopes.keys) == ["a", "a/b", "again"])
        #expect(plan.includedFiles == [files.path + "/a/b/plan.yaml", files.path + "/a/plan.yaml"])
    }

    @Test func anIncludeCycleNamesTheChainOfFilesAtTheIncludeThatClosesIt() throws {
        let files = try Files([
            "plan.yaml": "version: 1\nincludes:\n  web: web/plan.yaml\nsubtasks:\n  - { id: a, run: echo }\n",
            "web/plan.yaml": "version: 1\nincludes:\n  api: ../api/plan.yaml\nsubtasks:\n  - { id: b, run: echo }\n",
            "api/plan.yaml": "version: 1\nincludes:\n  back: ../plan.yaml\nsubtasks:\n  - { id: c, run: echo }\n",
        ])
        #expect(files.problems() == [
            "api/plan.yaml:3:9: include cycle: plan.yaml -> web/plan.yaml -> api/plan.yaml -> plan.yaml",
        ])
        // A file that includes itself.
        try files.write("self.yaml", "version: 1\nincludes: { me: ./self.yaml }\nsubtasks:\n  - { id: a, run: echo }\n")
        #expect(files.problems("self.yaml") == ["self.yaml:2:17: include cycle: self.yaml -> self.yaml"])
    }

    @Test func aMissingOrUnreadableIncludeIsReportedAtItsPath() throws {
        let files = try Files([
            "plan.yaml": """
                version: 1
                includes:
                  gone: nope/plan.yaml
                  dir: { plan: web }
                subtasks:
                  - { id: a, run: echo }
                """,
            "web/plan.yaml": "version: 1\nsubtasks:\n  - { id: b, run: echo }\n",
        ])
        #expect(files.problems() == [
            "plan.yaml:3:9: included plan `nope/plan.yaml` does not exist",
            "plan.yaml:4:16: \(files.path)/web is a directory, not a plan file",
        ])
    }

    @Test func includePathsStayInsideTheTopLevelFolder() throws {
        let outside = try Files(["other.yaml": "version: 1\nsubtasks:\n  - { id: o, run: echo }\n"])
        let files = try Files([
            "plan.yaml": """
                version: 1
                includes:
                  up: ../x/plan.yaml
                  abs: \(outside.path)/other.yaml
                  link: link/other.yaml
                subtasks:
                  - { id: a, run: echo }
                """,
        ])
        try FileManager.default.createSymbolicLink(atPath: files.path + "/link", withDestinationPath: outside.path)
        let message = "is outside the top-level plan's folder; include paths must stay inside it"
        #expect(files.problems() == [
            "plan.yaml:3:7: included plan `../x/plan.yaml` \(message)",
            "plan.yaml:4:8: included plan `\(outside.path)/other.yaml` \(message)",
            "plan.yaml:5:9: included plan `link/other.yaml` \(message)",
        ])
        // A nested include may leave its own folder while it stays inside the top-level one.
        let nested = try Files([
            "plan.yaml": "version: 1\nincludes: { app: app/plan.yaml }\nsubtasks:\n  - { id: a, run: echo }\n",
            "app/plan.yaml": "version: 1\nincludes: { lib: ../lib/plan.yaml }\nsubtasks:\n  - { id: b, run: echo, depends_on: [lib/c] }\n",
            "lib/plan.yaml": "version: 1\nsubtasks:\n  - { id: c, run: echo, outputs: [out.txt] }\n",
        ])
        let plan = try nested.load()
        #expect(plan["app/lib/c"]?.folder == "lib" && plan["app/lib/c"]?.outputs == ["lib/out.txt"])
        // ...but not the top-level folder.
        try nested.write("app/plan.yaml", "version: 1\nincludes: { lib: ../../x.yaml }\nsubtasks:\n  - { id: b, run: echo }\n")
        #expect(nested.problems() == ["app/plan.yaml:2:18: included plan `../../x.yaml` \(message)"])
    }

    @Test func dependenciesOnIncludedSubtasksAreCheckedWithDidYouMean() throws {
        let files = try Files([
            "plan.yaml": """
                version: 1
                includes: { web: web/plan.yaml }
                subtasks:
                  - id: all
                    depends_on: [web/biuld, api/build, build]
                    run: echo
                """,
            "web/plan.yaml": "version: 1\nsubtasks:\n  - { id: build, run: echo }\n",
        ])
        #expect(files.problems() == [
            "plan.yaml:5:18: subtask `all` depends on unknown subtask `web/biuld`; did you mean `web/build`?",
            "plan.yaml:5:29: subtask `all` depends on unknown subtask `api/build`; did you mean `web/build`?",
            "plan.yaml:5:40: subtask `all` depends on unknown subtask `build`",
        ])
    }

    @Test func anIncludedPlanCannotReferToTheIncluder() throws {
        let files = try Files([
            "plan.yaml": """
                version: 1
                includes: { web: web/plan.yaml }
                subtasks:
                  - { id: setup, run: echo }
                """,
            "web/plan.yaml": """
                version: 1
                subtasks:
                  - id: build
                    depends_on: [setup, ../setup]
                    run: echo
                """,
        ])
        #expect(files.problems() == [
            "web/plan.yaml:4:18: subtask `build` depends on unknown subtask `setup`",
            "web/plan.yaml:4:25: subtask `build` depends on unknown subtask `../setup`",
        ])
        do {
            _ = try files.load()
        } catch {
            #expect(error.diagnostics.first?.notes == [
                "this plan is included as `web`: its subtasks may depend only on its own subtasks, not on those of the plan that includes it",
            ])
        }
    }

    @Test func problemsInAnIncludedFileNameThatFileWithLineAndColumn() throws {
        let files = try Files([
            "plan.yaml": "version: 1\nincludes: { web: web/plan.yaml, bad: bad.yaml }\nsubtasks:\n  - { id: a, run: echo }\n",
            "web/plan.yaml": """
                version: 1
                agents:
                  coder: { kind: command, command: [x] }
                subtasks:
                  - id: build
                    dependson: [x]
                    agent: codr
                    run: echo
                    outputs: [../escape.txt, .planrun/x]
                """,
            "bad.yaml": "version: 1\nsubtasks: [\n",
        ])
        let problems = files.problems()
        #expect(problems.contains { $0.hasPrefix("bad.yaml:3:1: invalid YAML") }, "\(problems)")
        #expect(Array(problems.dropFirst()) == [
            "web/plan.yaml:6:5: unknown key `dependson` in subtask `build`; did you mean `depends_on`?",
            "web/plan.yaml:7:12: agent `codr` is not defined; did you mean `coder`?",
            "web/plan.yaml:9:15: output `../escape.txt` leaves the plan's folder; use a relative path inside it",
            "web/plan.yaml:9:30: output `.planrun/x` is inside the state folder `.planrun`, which belongs to planrun; use a path outside it",
        ])
    }

    @Test func outputsOfTwoPlanFilesMayNotOverlap() throws {
        let files = try Files([
            "plan.yaml": """
                version: 1
                includes: { web: web/plan.yaml, again: web/plan.yaml }
                subtasks:
                  - { id: a, run: echo, outputs: [web/out.txt] }
                """,
            "web/plan.yaml": "version: 1\nsubtasks:\n  - { id: b, run: echo, outputs: [out.txt] }\n",
        ])
        #expect(files.problems() == [
            "web/plan.yaml:3:35: output `web/out.txt` of subtask `web/b` is already declared by subtask `a`",
            "web/plan.yaml:3:35: output `web/out.txt` of subtask `again/b` is already declared by subtask `a`",
        ])
    }

    @Test func theShapeOfIncludesIsChecked() throws {
        let files = try Files([
            "plan.yaml": """
                version: 1
                includes:
                  a/b: web/plan.yaml
                  "..": web/plan.yaml
                  list: [web/plan.yaml]
                  noplan: { vars: { x: 1 } }
                  extra: { plan: web/plan.yaml, var: {} }
                  empty: ""
                  withvars: { plan: web/plan.yaml, vars: { mode: release, list: [a, b] } }
                subtasks:
                  - { id: a, run: echo }
                """,
            "web/plan.yaml": "version: 1\nsubtasks:\n  - { id: b, run: echo }\n",
        ])
        #expect(files.problems() == [
            "plan.yaml:3:3: invalid value `a/b` for `includes`; expected a namespace of letters, digits, `_`, `.` and `-`",
            "plan.yaml:4:3: invalid value `..` for `includes`; expected a namespace of letters, digits, `_`, `.` and `-`",
            "plan.yaml:5:9: `includes.list` must be a mapping, not a list",
            "plan.yaml:6:11: missing required key `plan` in include `noplan`",
            "plan.yaml:7:33: unknown key `var` in include `extra`; did you mean `vars`?",
            "plan.yaml:8:10: invalid value `` for `includes.empty`; expected the path of a plan file",
            // No plan declares variables yet (`vars:` is not read), so every one given is undeclared.
            "plan.yaml:9:44: variable `mode` is not declared by `\(files.path)/web/plan.yaml`",
            "plan.yaml:9:59: variable `list` is not declared by `\(files.path)/web/plan.yaml`",
        ])
    }

    @Test func aPlanWithoutIncludesIsUnchanged() throws {
        let plan = try ParsingSupport.load("version: 1\nsubtasks:\n  - { id: a, run: echo, inputs: [x], outputs: [y] }\n")
        #expect(plan.scopes.isEmpty && plan.includedFiles.isEmpty)
        #expect(plan["a"]?.folder == "" && plan["a"]?.namespace == "" && plan["a"]?.inputs == ["x"])
    }
}

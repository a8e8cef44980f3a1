import Foundation
import Testing
import PlanRunTestSupport
@testable import PlanRunCore

/// `includes:` run as the real binary (DESIGN §8.5): included subtasks run
/// in their own plan's folder, are cached and restored there, and are
/// named `NS/ID` by every command.
@Suite struct IncludeTests {
    final class Folder: PlanFolder {
        @discardableResult
        func run(_ args: String..., environment: [String: String] = [:]) throws -> PlanRunBinary.Result {
            try PlanRunBinary.run(args, in: url, environment: environment)
        }

        /// `build --json ARGS`: the summary, after checking it exited 0.
        func build(_ args: String...) throws -> [String: Any] {
            let r = try PlanRunBinary.run(["build", "--json"] + args, in: url)
            #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
            return try parseJSON(r.stdout)
        }

        /// The ids of a summary's subtasks that ran (status `done`).
        func ran(_ summary: [String: Any]) -> Set<String> {
            let results = summary["results"] as? [String: [String: Any]] ?? [:]
            return Set(results.filter { $0.value["status"] as? String == "done" }.keys)
        }

        /// The folder as the subtasks' `pwd` prints it (links resolved).
        var realPath: String { PathSafety.realPath(path) ?? path }
    }

    static let plan = """
        version: 1
        env: { WHERE: top }
        includes:
          lib: lib/plan.yaml
          docs: { plan: docs/plan.yaml }
        subtasks:
          - id: dist
            depends_on: [lib/pack, docs/render]
            run: mkdir -p dist && cat lib/out/pack.txt docs/out/doc.txt > dist/all.txt
            outputs: [dist/all.txt]
        """
    static let lib = """
        version: 1
        env: { WHERE: lib }
        subtasks:
          - id: compile
            inputs: ["src/*.txt"]
            outputs: [out/obj.txt]
            run: echo compiling && mkdir -p out && { pwd; echo "$WHERE"; cat src/*.txt; } > out/obj.txt
          - id: pack
            depends_on: [compile]
            outputs: [out/pack.txt]
            run: tr a-z A-Z < out/obj.txt > out/pack.txt
        """
    static let docs = """
        version: 1
        subtasks:
          - id: render
            inputs: [index.md]
            outputs: [out/doc.txt]
            run: mkdir -p out && { pwd; echo "${WHERE:-unset}"; cat index.md; } > out/doc.txt
        """

    static func project() throws -> Folder {
        let f = try Folder(plan: plan)
        try f.write("lib/plan.yaml", lib)
        try f.write("lib/src/a.txt", "alpha\n")
        try f.write("lib/src/b.txt", "beta\n")
        try f.write("docs/plan.yaml", docs)
        try f.write("docs/index.md", "# docs\n")
        return f
    }

    @Test func includedSubtasksRunInTheirFolderAndAreCachedAndRestoredThere() throws {
        let f = try Self.project()
        let first = try f.build()
        #expect(f.ran(first) == ["lib/compile", "lib/pack", "docs/render", "dist"])
        // Each runs in its plan's folder, with its plan's env only.
        #expect(f.read("lib/out/obj.txt") == "\(f.realPath)/lib\nlib\nalpha\nbeta\n")
        #expect(f.read("docs/out/doc.txt") == "\(f.realPath)/docs\nunset\n# docs\n")
        #expect(f.read("dist/all.txt") == "\(f.realPath.uppercased())/LIB\nLIB\nALPHA\nBETA\n\(f.realPath)/docs\nunset\n# docs\n")
        #expect(!f.exists("out"))
        // The log of `lib/compile` is in a subfolder of the run's logs.
        let run = try #require(first["run_id"] as? String)
        #expect(f.read(".planrun/logs/\(run)/lib/compile.log")?.contains("compiling") == true)

        // A rerun is a no-op.
        let again = try f.build()
        #expect(f.ran(again).isEmpty && again["cached"] as? Int == 4)

        // Outputs removed from the included folder come back there from the cache.
        try FileManager.default.removeItem(atPath: f.path + "/lib/out")
        let restored = try f.build()
        #expect(f.ran(restored).isEmpty && restored["cached"] as? Int == 4)
        #expect(f.read("lib/out/obj.txt") == "\(f.realPath)/lib\nlib\nalpha\nbeta\n")
        let status = try f.run("status", "plan.yaml", "lib/compile")
        #expect(status.status == 0 && status.stdout.contains("lib/compile: cached (restored"), "\(status.stdout)")

        // A change in the included folder reruns exactly what depends on it.
        try f.write("lib/src/b.txt", "gamma\n")
        let changed = try f.build()
        #expect(f.ran(changed) == ["lib/compile", "lib/pack", "dist"])
        #expect(f.read("dist/all.txt")?.contains("GAMMA") == true)
        let explain = try f.run("explain", "docs/render")
        #expect(explain.stdout.hasPrefix("`docs/render` would be skipped: cached"), "\(explain.stdout)")
    }

    @Test func aChangedIncludedPlanFileIsNotHiddenByTheUpToDateStamp() async throws {
        let f = try Self.project()
        _ = try f.build()
        // Past the racy window, an all-cached build writes the stamp.
        try await Task.sleep(for: .milliseconds(2200))
        #expect(try f.run("build").status == 0)
        #expect(f.exists(".planrun/uptodate"))
        try f.write("docs/plan.yaml", Self.docs.replacingOccurrences(of: "cat index.md", with: "cat index.md index.md"))
        // Without --json, so that the stamp is consulted.
        let r = try f.run("build")
        #expect(r.status == 0 && r.stdout.contains("done docs/render"), "\(r.stdout)")
        #expect(f.read("docs/out/doc.txt") == "\(f.realPath)/docs\nunset\n# docs\n# docs\n")
    }

    @Test func targetsOnlyAndTheReadOnlyCommandsTakeNamespacedIDs() throws {
        let f = try Self.project()
        let target = try f.build("plan.yaml", "lib/pack")
        #expect(f.ran(target) == ["lib/compile", "lib/pack"] && target["total"] as? Int == 2)
        // The plan-file argument may be left out: `web/test` is an id, not a path.
        let bare = try f.build("docs/render")
        #expect(f.ran(bare) == ["docs/render"])
        let only = try f.build("plan.yaml", "lib/pack", "--only")
        #expect(f.ran(only).isEmpty && only["cached"] as? Int == 2)
        try f.write("lib/src/a.txt", "ALPHA\n")
        let stale = try f.run("build", "lib/pack", "--only")
        #expect(stale.status == 1 && stale.stderr.contains("dependency `lib/compile` of `lib/pack` is not in the cache"))

        let list = try f.run("list")
        #expect(list.stdout.contains("lib/compile") && list.stdout.contains("docs/render"))
        let json = try parseJSON(try f.run("plan", "--format", "json").stdout)
        let ids = (json["batches"] as? [[[String: Any]]] ?? []).joined().compactMap { $0["id"] as? String }
        #expect(Set(ids) == ["lib/compile", "lib/pack", "docs/render", "dist"])
        let dot = try f.run("plan", "--format", "dot").stdout
        #expect(dot.contains("\"lib/compile\" -> \"lib/pack\";"), "\(dot)")
        let mermaid = try f.run("plan", "--format", "mermaid").stdout
        #expect(mermaid.contains("[\"lib/compile\"]"), "\(mermaid)")
        let unknown = try f.run("build", "lib/pak")
        #expect(unknown.status == 2 && unknown.stderr.contains("no subtask named `lib/pak`; did you mean `lib/pack`?"))
    }

    @Test func theSameFileUnderTwoNamespacesRunsTwiceInItsFolder() throws {
        let f = try Folder(plan: """
            version: 1
            includes: { one: tool/plan.yaml, two: tool/plan.yaml }
            subtasks:
              - { id: all, depends_on: [one/hello, two/hello], run: echo all }
            """)
        try f.write("tool/plan.yaml", """
            version: 1
            subtasks:
              - { id: hello, run: 'echo "$PLANRUN_SUBTASK in $(pwd)"' }
              - { id: result, run: 'echo "result of $PLANRUN_SUBTASK" > "$PLANRUN_RESULT"' }
            """)
        let summary = try f.build()
        #expect(f.ran(summary) == ["one/hello", "one/result", "two/hello", "two/result", "all"])
        let results = summary["results"] as? [String: [String: Any]] ?? [:]
        #expect(results["one/hello"]?["result"] as? String == "one/hello in \(f.realPath)/tool\n")
        #expect(results["two/hello"]?["result"] as? String == "two/hello in \(f.realPath)/tool\n")
        // The result file of an id with `/` is in a subfolder of the run's work folder.
        #expect(results["two/result"]?["result"] as? String == "result of two/result\n")
    }

    @Test func exportNamesJobsOfIncludedSubtasksSafely() throws {
        let f = try Self.project()
        let github = try f.run("export", "plan.yaml", "--to", "github-actions")
        #expect(github.status == 0, "\(github.stderr)")
        #expect(github.stdout.contains("  lib_pack:\n    name: lib/pack\n    needs: [lib_compile]\n"), "\(github.stdout)")
        #expect(github.stdout.contains("run: planrun build plan.yaml lib/pack --only\n"))
        let argo = try f.run("export", "plan.yaml", "--to", "argo")
        #expect(argo.status == 0 && argo.stdout.contains("- name: lib-pack\n"), "\(argo.stdout)")
        #expect(argo.stdout.contains("dependencies: [lib-compile]"))
    }

    @Test func aFailedIncludedSubtaskIsReportedInItsOwnFile() throws {
        let f = try Folder(plan: "version: 1\nincludes: { lib: lib/plan.yaml }\nsubtasks:\n  - { id: top, run: echo top }\n")
        try f.write("lib/plan.yaml", "version: 1\nsubtasks:\n  - id: ok\n    run: echo ok\n  - id: fail\n    run: echo it broke; exit 3\n")
        let environment = ["GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": f.path]
        let r = try f.run("build", "-k", "--report", "junit.xml", environment: environment)
        #expect(r.status == 1)
        #expect(r.stdout.contains("::error title=planrun%3A lib/fail failed,file=lib/plan.yaml,line=5::"), "\(r.stdout)")
        let junit = try #require(f.read("junit.xml"))
        #expect(junit.contains("name=\"lib/fail\""))
        #expect(junit.contains("it broke"), "\(junit)")
    }

    @Test func anApprovalCoversTheIncludedPlans() throws {
        let f = try Folder(plan: "version: 1\napproval: required\nincludes: { lib: lib/plan.yaml }\nsubtasks:\n  - { id: top, run: echo top }\n")
        try f.write("lib/plan.yaml", "version: 1\nsubtasks:\n  - { id: a, run: echo a }\n")
        #expect(try f.run("approve").status == 0)
        #expect(try f.run("build").status == 0)
        try f.write("lib/plan.yaml", "version: 1\nsubtasks:\n  - { id: a, run: echo changed }\n")
        let refused = try f.run("build")
        #expect(refused.status != 0 && refused.stderr.contains("plan is not approved"), "\(refused.stderr)")
        #expect(try f.run("approve").status == 0)
        #expect(try f.run("build").status == 0)
    }

    @Test func validateNamesTheIncludedFileAndTheCycle() throws {
        let f = try Folder(plan: "version: 1\nincludes:\n  web: web/plan.yaml\nsubtasks:\n  - { id: a, run: echo }\n")
        try f.write("web/plan.yaml", "version: 1\nincludes:\n  back: ../plan.yaml\nsubtasks:\n  - { id: b, run: echo }\n")
        let r = try f.run("validate", "plan.yaml")
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("web/plan.yaml:3:9: error: include cycle: plan.yaml -> web/plan.yaml -> plan.yaml\n"), "\(r.stderr)")
        #expect(!f.exists(".planrun"))
    }
}

import Foundation
import Testing

/// Issue 11, "The first hour": the command-line conventions,
/// end to end on the built binary.
@Suite struct FirstHourTests {
    /// Two independent subtasks with inputs and outputs, and one that depends on the second.
    static let plan = """
        version: 1
        name: first
        subtasks:
          - id: a
            run: cat a.txt > out-a.txt
            inputs: [a.txt]
            outputs: [out-a.txt]
          - id: b
            run: cat b.txt > out-b.txt
            inputs: [b.txt]
            outputs: [out-b.txt]
          - id: c
            depends_on: [b]
            run: echo c
        """

    static func project() throws -> URL {
        let dir = try makeProject(plan)
        try "a1\n".write(to: dir.appendingPathComponent("a.txt"), atomically: true, encoding: .utf8)
        try "b1\n".write(to: dir.appendingPathComponent("b.txt"), atomically: true, encoding: .utf8)
        return dir
    }

    static func statuses(_ result: PlanRunBinary.Result) throws -> [String: String] {
        let results = try #require(try parseJSON(result.stdout)["results"] as? [String: [String: Any]])
        return results.compactMapValues { $0["status"] as? String }
    }

    // MARK: item 2: make's flags

    @Test(arguments: [["build", "-j2"], ["build", "-j", "2"], ["build", "--jobs=2"], ["build", "--jobs", "2"]])
    func jobsInEveryForm(_ arguments: [String]) throws {
        let dir = try Self.project()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try PlanRunBinary.run(arguments, in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let plan = try PlanRunBinary.run(["plan"] + arguments.dropFirst(), in: dir)
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stdout.hasPrefix("plan `first`: 3 subtasks in 2 batches (max_parallel 2); 0 to run, 3 to skip\n"))
    }

    @Test func dashNIsADryRunAndDashBForces() throws {
        let dir = try Self.project()
        defer { try? FileManager.default.removeItem(at: dir) }
        let dry = try PlanRunBinary.run(["build", "-n"], in: dir)
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout == (try PlanRunBinary.run(["plan"], in: dir)).stdout)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent(".planrun").path))
        #expect(try PlanRunBinary.run(["build"], in: dir).status == 0)
        let forced = try PlanRunBinary.run(["build", "-B", "a", "--json"], in: dir)
        #expect(try Self.statuses(forced) == ["a": "done"])
    }

    // MARK: item 3: did-you-mean for subcommands

    @Test func misspelledSubcommandGetsASuggestion() throws {
        let dir = try Self.project()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try PlanRunBinary.run(["biuld"], in: dir)
        #expect(r.status == 64)
        #expect(r.stdout == "")
        #expect(r.stderr.hasPrefix("error: unknown command `biuld`; did you mean `build`?\ncommands: validate, plan, list, build,"))
        let far = try PlanRunBinary.run(["zzzzzz"], in: dir)
        #expect(far.status == 64)
        #expect(far.stderr.hasPrefix("error: unknown command `zzzzzz`\ncommands: "))
    }

    // MARK: item 4: a target named like a file

    @Test func targetNamedLikeAFileIsATarget() throws {
        let dir = try makeProject("""
            version: 1
            subtasks:
              - id: lua
                run: printf 'built' > lua
                outputs: [lua]
              - id: lapi.o
                run: echo api
            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        // A binary file named like the target, as after a first build.
        try Data([0x7F, 0x45, 0x4C, 0x46, 0xFF, 0xFE, 0x00]).write(to: dir.appendingPathComponent("lua"))
        try Data([0xFF, 0x00]).write(to: dir.appendingPathComponent("lapi.o"))
        let build = try PlanRunBinary.run(["build", "lua", "--json"], in: dir)
        #expect(build.status == 0, "\(build.stderr)")
        #expect(try Self.statuses(build) == ["lua": "done"])
        let explain = try PlanRunBinary.run(["explain", "lapi.o"], in: dir)
        #expect(explain.status == 0, "\(explain.stderr)")
        #expect(explain.stdout.contains("lapi.o"))
        // Ids may contain `/` (included plans): never read as a plan path.
        let slash = try PlanRunBinary.run(["build", "web/test"], in: dir)
        #expect(slash.status == 2)
        #expect(slash.stderr.contains("no subtask named `web/test`"), "\(slash.stderr)")
        // A `.yaml` path, or `-f`, is the plan.
        let other = dir.appendingPathComponent("sub")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        try "version: 1\nsubtasks:\n  - id: x\n    run: true\n".write(
            to: other.appendingPathComponent("p.yml"), atomically: true, encoding: .utf8)
        #expect(try PlanRunBinary.run(["plan", "sub/p.yml", "x"], in: dir).status == 0)
        #expect(try PlanRunBinary.run(["plan", "-f", "sub/p.yml", "x"], in: dir).status == 0)
    }

    // MARK: item 5: `build --dry-run` takes the options of `plan`

    @Test(arguments: ["json", "dot", "mermaid", "text"])
    func dryRunTakesFormat(_ format: String) throws {
        let dir = try Self.project()
        defer { try? FileManager.default.removeItem(at: dir) }
        let dry = try PlanRunBinary.run(["build", "--dry-run", "--format", format], in: dir)
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout == (try PlanRunBinary.run(["plan", "--format", format], in: dir)).stdout)
        #expect(!dry.stdout.isEmpty)
    }

    @Test func planOptionsNeedDryRun() throws {
        let dir = try Self.project()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try PlanRunBinary.run(["build", "--format", "json"], in: dir)
        #expect(r.status == 64)
        #expect(r.stderr.contains("`--format` needs `--dry-run` (`-n`)"), "\(r.stderr)")
        let changed = try PlanRunBinary.run(["build", "--changed"], in: dir)
        #expect(changed.status == 64)
        #expect(changed.stderr.contains("`--changed` needs `--dry-run` (`-n`)"), "\(changed.stderr)")
    }

    // MARK: item 6: -v

    @Test func verbosePrintsCommandLinesAndLogsAndStatusShowThem() throws {
        let dir = try makeProject("""
            version: 1
            agents:
              tool:
                kind: command
                command: [sh, -c, "cat > /dev/null; echo from tool", "an arg"]
            subtasks:
              - id: hello
                run: echo "hi there"
              - id: agent
                agent: tool
            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try PlanRunBinary.run(["build", "-v", "-j1"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("done hello (") && r.stdout.contains("s)\n$ echo \"hi there\"\nhi there\n"), "\(r.stdout)")
        #expect(r.stdout.contains("$ agent tool: sh -c 'cat > /dev/null; echo from tool' 'an arg'\nfrom tool\n"), "\(r.stdout)")
        let quiet = try PlanRunBinary.run(["build", "-B", "--verbose"], in: dir)
        #expect(quiet.stdout.contains("$ echo \"hi there\"\n"))
        let plain = try PlanRunBinary.run(["build", "-B"], in: dir)
        #expect(!plain.stdout.contains("$ echo"))
        // The log's first line, and `status SUBTASK`.
        let runID = try #require(try parseJSON(try PlanRunBinary.run(["status", "--json"], in: dir).stdout)["run_id"] as? String)
        let log = try String(contentsOf: dir.appendingPathComponent(".planrun/logs/\(runID)/hello.log"), encoding: .utf8)
        #expect(log == "$ echo \"hi there\"\nhi there\n")
        let status = try PlanRunBinary.run(["status", "hello"], in: dir)
        #expect(status.stdout.contains("  command: echo \"hi there\"\n"), "\(status.stdout)")
        let json = try parseJSON(try PlanRunBinary.run(["status", "agent", "--json"], in: dir).stdout)
        #expect(json["command"] as? String == "agent tool: sh -c 'cat > /dev/null; echo from tool' 'an arg'")
    }

    // MARK: item 7: a misspelled input

    @Test func misspelledInputIsReportedByValidateAndBuild() throws {
        let dir = try makeProject("""
            version: 1
            subtasks:
              - id: gen
                run: echo x > gen/config.h
                outputs: [gen/config.h]
              - id: lapi
                inputs: [lapi.c, lprefx.h, gen/config.h, "-local.h"]
                run: cat lapi.c
            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["lapi.c", "lprefix.h", "lua.h"] {
            try "x\n".write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("gen"), withIntermediateDirectories: true)
        let validate = try PlanRunBinary.run(["validate"], in: dir)
        #expect(validate.status == 2)
        #expect(validate.stderr.hasPrefix(
            "plan.yaml:7:22: error: input `lprefx.h` of subtask `lapi` does not exist and is no subtask's output; did you mean `lprefix.h`?\n"),
            "\(validate.stderr)")
        // Neither an output of another subtask nor an optional input is reported.
        #expect(validate.stderr.split(separator: "\n").filter { $0.contains(": error: ") }.count == 1, "\(validate.stderr)")
        let build = try PlanRunBinary.run(["build", "lapi"], in: dir)
        #expect(build.status == 1)
        #expect(build.stdout.contains(
            "plan.yaml:7:22: input `lprefx.h` of subtask `lapi` matches no file; did you mean `lprefix.h`?"), "\(build.stdout)")
    }

    // MARK: item 8: plan --changed

    @Test func planChangedListsOnlyWhatWouldRun() throws {
        let dir = try Self.project()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try PlanRunBinary.run(["build"], in: dir).status == 0)
        try "a2\n".write(to: dir.appendingPathComponent("a.txt"), atomically: true, encoding: .utf8)
        let text = try PlanRunBinary.run(["plan", "--changed", "-j3"], in: dir)
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout == """
            plan `first`: 3 subtasks in 2 batches (max_parallel 3); 1 to run, 2 to skip
            batch 1:
              run   a  shell  input a.txt changed

            """, "\(text.stdout)")
        let json = try parseJSON(try PlanRunBinary.run(["build", "-n", "--changed", "--format", "json", "-j3"], in: dir).stdout)
        let batches = try #require(json["batches"] as? [[[String: Any]]])
        #expect(batches.map { $0.compactMap { $0["id"] as? String } } == [["a"]])
        #expect(json["total"] as? Int == 3)
    }

    // MARK: item 9: ran, skipped and restored

    @Test func statusTellsRanSkippedAndRestoredApart() throws {
        let dir = try Self.project()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try PlanRunBinary.run(["build"], in: dir).status == 0)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("out-b.txt"))
        try "a2\n".write(to: dir.appendingPathComponent("a.txt"), atomically: true, encoding: .utf8)
        let build = try PlanRunBinary.run(["build", "-j1"], in: dir)
        #expect(build.status == 0, "\(build.stderr)")
        #expect(build.stdout.contains("] restored b\n"), "\(build.stdout)")
        #expect(build.stdout.contains("build completed: 1 done, 1 cached, 1 restored of 3 in "), "\(build.stdout)")
        let status = try PlanRunBinary.run(["status"], in: dir)
        #expect(status.stdout.contains(
            "progress: 3/3 succeeded (100.0%): 1 ran, 1 skipped (up to date), 1 restored from the cache; 0 failed, 0 running, 0 pending\n"),
            "\(status.stdout)")
        #expect(try PlanRunBinary.run(["status", "a"], in: dir).stdout.hasPrefix("a: done (ran)\n"))
        #expect(try PlanRunBinary.run(["status", "b"], in: dir).stdout.hasPrefix("b: cached (restored from the cache)\n"))
        #expect(try PlanRunBinary.run(["status", "c"], in: dir).stdout.hasPrefix("c: cached (skipped: up to date)\n"))
        let progress = try #require(try parseJSON(try PlanRunBinary.run(["status", "--json"], in: dir).stdout)["progress"] as? [String: Any])
        #expect(progress["done"] as? Int == 3)
        #expect(progress["ran"] as? Int == 1)
        #expect(progress["skipped"] as? Int == 1)
        #expect(progress["restored"] as? Int == 1)
    }

    // MARK: item 10: list fits the width

    @Test(arguments: [60, 80, 160])
    func listFitsTheWidth(_ columns: Int) throws {
        var yaml = "version: 1\nsubtasks:\n"
        for i in 0..<33 { yaml += "  - id: compile-file-\(i)\n    run: 'true'\n" }
        yaml += "  - id: link\n    description: Link every object file into the final program\n    depends_on: ["
        yaml += (0..<33).map { "compile-file-\($0)" }.joined(separator: ", ") + "]\n    run: 'true'\n"
        let dir = try makeProject(yaml)
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try PlanRunBinary.run(["list"], in: dir, environment: ["COLUMNS": "\(columns)"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 35)
        for line in lines { #expect(line.count <= columns, "\(line)") }
        let link = try #require(lines.last)
        #expect(link.hasPrefix("link "))
        #expect(link.contains(" more ") && link.contains("  Link every"), "\(link)")
        if columns >= 160 { #expect(link.contains("compile-file-0,compile-file-1,"), "\(link)") }
    }

    // MARK: item 11: completions

    @Test(arguments: ["bash", "zsh", "fish"])
    func completionScripts(_ shell: String) throws {
        let dir = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try PlanRunBinary.run(["completions", shell], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        for word in ["planrun", "build", "explain", "keep-going", "dry-run"] {
            #expect(r.stdout.contains(word), "\(word)")
        }
        if shell == "bash" {
            let file = dir.appendingPathComponent("planrun.bash")
            try r.stdout.write(to: file, atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-n", file.path]
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
        }
    }

    @Test func completionsForAnUnknownShell() throws {
        let dir = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try PlanRunBinary.run(["completions", "tcsh"], in: dir)
        #expect(r.status == 64)
        #expect(r.stderr.contains("tcsh"))
    }
}

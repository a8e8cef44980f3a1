import Foundation
import Testing
@testable import PlanRunCore

@Suite struct ParsingLoaderTests {
    static let designExample = """
        version: 1                       # required; only 1 is accepted
        name: release                    # optional; default: file name without extension
        goal: Build and test the release # optional; given to agents as plan_goal
        max_parallel: 4                  # optional; default: number of CPUs; `-j N` overrides
        approval: required               # optional: none (default) | required

        env:                             # optional; environment for every subtask
          LC_ALL: C

        defaults:                        # optional; per-subtask defaults
          agent: shell
          retries: 0                     # extra attempts after the first
          retry_backoff: 1s              # first delay; doubles each attempt, with jitter
          timeout: 30m                   # per attempt; none by default

        agents:                          # optional; `shell` always exists
          shell:
            kind: shell                  # runs `run` through the shell
            shell: [/bin/sh, -c]         # default
          coder:
            kind: command                # an external agent program
            command: [python3, agents/coder.py]
            max_parallel: 1              # this agent's own concurrency pool
            retries: 3
            timeout: 10m
            env: { MODEL: small }

        subtasks:                        # required; a non-empty list
          - id: schema                   # required; [A-Za-z0-9_.-]+, unique
            description: Create the database schema
            run: sqlite3 build/app.db < db/schema.sql   # for shell agents
            inputs: [db/*.sql]           # files and globs (`**` allowed), relative to the plan's folder
            outputs: [build/app.db]      # files and folders the subtask produces
          - id: feature-x
            description: Implement feature X
            agent: coder
            depends_on: [schema]
            with: { files: [src/x.swift] }   # free-form metadata given to the agent
            cache: true                  # default true; false = always run (like .PHONY)
            env: { VERBOSE: "1" }
            env_inputs: [CC, CFLAGS]     # values taken from the caller's environment and hashed
        """

    @Test func designExampleLoadsWithEveryField() throws {
        let plan = try ParsingSupport.load(Self.designExample)
        #expect(plan.file == "plan.yaml")
        #expect(plan.directory == "/plans")
        #expect(plan.version == 1)
        #expect(plan.name == "release")
        #expect(plan.goal == "Build and test the release")
        #expect(plan.maxParallel == 4)
        #expect(plan.approval == .required)
        #expect(plan.env == ["LC_ALL": "C"])
        #expect(plan.defaults == SubtaskDefaults(agent: "shell", retries: 0, retryBackoff: .seconds(1), timeout: .seconds(1800)))
        #expect(Set(plan.agents.keys) == ["shell", "coder"])
        let shell = try #require(plan.agents["shell"])
        #expect(shell.kind == .shell)
        #expect(shell.shell == ["/bin/sh", "-c"])
        #expect(shell.location == SourceLocation(file: "plan.yaml", line: 17, column: 3))
        let coder = try #require(plan.agents["coder"])
        #expect(coder.kind == .command)
        #expect(coder.command == ["python3", "agents/coder.py"])
        #expect(coder.maxParallel == 1)
        #expect(coder.retries == 3)
        #expect(coder.timeout == .seconds(600))
        #expect(coder.env == ["MODEL": "small"])
        #expect(coder.location == SourceLocation(file: "plan.yaml", line: 20, column: 3))

        #expect(plan.subtasks.map(\.id) == ["schema", "feature-x"])
        let schema = try #require(plan["schema"])
        #expect(schema.description == "Create the database schema")
        #expect(schema.agent == "shell")
        #expect(schema.run == "sqlite3 build/app.db < db/schema.sql")
        #expect(schema.inputs == ["db/*.sql"])
        #expect(schema.outputs == ["build/app.db"])
        #expect(schema.dependsOn == [])
        #expect(schema.cache)
        #expect(schema.locations.item == SourceLocation(file: "plan.yaml", line: 29, column: 5))
        #expect(schema.locations.id == SourceLocation(file: "plan.yaml", line: 29, column: 9))
        #expect(schema.locations.inputs == [SourceLocation(file: "plan.yaml", line: 32, column: 14)])
        #expect(schema.locations.outputs == [SourceLocation(file: "plan.yaml", line: 33, column: 15)])

        let feature = try #require(plan["feature-x"])
        #expect(feature.agent == "coder")
        #expect(feature.run == nil)
        #expect(feature.dependsOn == ["schema"])
        #expect(feature.locations.dependsOn == [SourceLocation(file: "plan.yaml", line: 37, column: 18)])
        #expect(feature.locations.agent == SourceLocation(file: "plan.yaml", line: 36, column: 12))
        #expect(feature.with == .object(["files": .array([.string("src/x.swift")])]))
        #expect(feature.cache == true)
        #expect(feature.env == ["VERBOSE": "1"])
        #expect(feature.envInputs == ["CC", "CFLAGS"])
        #expect(plan.retries(for: feature) == 3)
        #expect(plan.timeout(for: feature) == .seconds(600))
        #expect(plan.timeout(for: schema) == .seconds(1800))
        #expect(plan.environment(for: feature) == ["LC_ALL": "C", "MODEL": "small", "VERBOSE": "1"])
    }

    @Test func minimalPlanGetsDefaults() throws {
        let plan = try ParsingSupport.load("version: 1\nsubtasks: [{id: a, run: make}]\n", file: "dir/nightly.build.yaml")
        #expect(plan.name == "nightly.build")
        #expect(plan.goal == nil)
        #expect(plan.maxParallel == nil)
        #expect(plan.approval == ApprovalMode.none)
        #expect(plan.agents.keys.sorted() == ["shell"])
        let a = try #require(plan["a"])
        #expect(a.agent == "shell")
        #expect(a.cache)
        #expect(a.with == nil)
        #expect(plan.retries(for: a) == 0)
        #expect(plan.retryBackoff(for: a) == .seconds(1))
        #expect(plan.timeout(for: a) == nil)
    }

    @Test func subtaskBeatsAgentBeatsDefaults() throws {
        let plan = try ParsingSupport.load("""
            version: 1
            defaults:
              agent: worker
              retries: 1
              retry_backoff: 2s
              timeout: 1h
            agents:
              worker:
                kind: shell
                shell: [/bin/bash, -c]
                retries: 2
                timeout: 10m
                env: {WHO: agent, LEVEL: agent}
            env: {WHO: plan, PLAN_ONLY: "yes"}
            subtasks:
              - id: plain
                run: echo
              - id: own
                run: echo
                retries: 5
                timeout: 1m30s
                retry_backoff: 250ms
                env: {LEVEL: subtask}
              - id: on-shell
                agent: shell
                run: echo
            """)
        let plain = try #require(plan["plain"])
        let own = try #require(plan["own"])
        let onShell = try #require(plan["on-shell"])
        #expect(plain.agent == "worker")
        #expect(plan.agent(for: plain).shell == ["/bin/bash", "-c"])
        #expect(plan.retries(for: plain) == 2)
        #expect(plan.timeout(for: plain) == .seconds(600))
        #expect(plan.retryBackoff(for: plain) == .seconds(2))
        #expect(plan.retries(for: own) == 5)
        #expect(plan.timeout(for: own) == .seconds(90))
        #expect(plan.retryBackoff(for: own) == .milliseconds(250))
        #expect(plan.environment(for: own) == ["WHO": "agent", "LEVEL": "subtask", "PLAN_ONLY": "yes"])
        #expect(onShell.agent == "shell")
        #expect(plan.retries(for: onShell) == 1)
        #expect(plan.timeout(for: onShell) == .seconds(3600))
    }

    @Test func mergeKeysAndAliases() throws {
        // Unknown keys are errors, so anchors are set where first used.
        let plan = try ParsingSupport.load("""
            version: 1
            subtasks:
              - &common
                id: base
                run: make
                retries: 2
                cache: false
              - &more
                id: more
                run: make more
                retries: 7
                timeout: 5s
                inputs: &sources [src/a.c, "src/*.h"]
              - <<: *common
                id: a
                retries: 4
                inputs: *sources
              - <<: [*more, *common]
                id: b
                description: explicit
              - id: c
                <<: *common
            """)
        let a = try #require(plan["a"])
        #expect(a.run == "make")
        #expect(a.retries == 4)       // explicit key wins over the merged one
        #expect(a.cache == false)
        #expect(a.inputs == ["src/a.c", "src/*.h"])
        let b = try #require(plan["b"])
        #expect(b.retries == 7)       // earlier merged mapping wins
        #expect(b.timeout == .seconds(5))
        #expect(b.run == "make more")
        #expect(b.cache == false)     // only in the later mapping
        #expect(b.inputs == ["src/a.c", "src/*.h"])
        #expect(b.description == "explicit")
        let c = try #require(plan["c"])
        #expect(c.run == "make")
        #expect(c.retries == 2)
    }

    @Test func unknownKeysInsideAMergedMappingPointAtTheAnchor() {
        // `x-` keys are not part of the format: they are reported too.
        let found = ParsingSupport.triples(ParsingSupport.problems("""
            version: 1
            subtasks:
              - &base {id: a, run: make, colr: red}
              - <<: *base
                id: b
            """))
        #expect(found == [
            Expected(3, 30, "unknown key `colr` in subtask `a`"),
            Expected(3, 30, "unknown key `colr` in subtask `b`"),
        ])
    }

    @Test func envValuesAreTakenAsWritten() throws {
        let plan = try ParsingSupport.load("""
            version: 1
            env: {VERBOSE: 1, DEBUG: true, RATIO: 1.50, HEX: 0x1F, QUOTED: "007", TEXT: hello world}
            subtasks: [{id: a, run: make}]
            """)
        #expect(plan.env == ["VERBOSE": "1", "DEBUG": "true", "RATIO": "1.50", "HEX": "0x1F", "QUOTED": "007", "TEXT": "hello world"])
    }

    @Test func withBecomesTypedJSON() throws {
        let plan = try ParsingSupport.load("""
            version: 1
            subtasks:
              - id: a
                run: make
                with:
                  n: 3
                  ratio: 0.5
                  on: true
                  off: "false"
                  none: ~
                  list: [1, two, {three: 3}]
                  block: |
                    line one
                    line two
            """)
        let with = try #require(plan["a"]?.with)
        #expect(with == .object([
            "n": .int(3), "ratio": .double(0.5), "on": .bool(true), "off": .string("false"), "none": .null,
            "list": .array([.int(1), .string("two"), .object(["three": .int(3)])]),
            "block": .string("line one\nline two"),
        ]))
    }

    @Test(arguments: [
        ("", YAMLScalar.Value.null), ("~", .null), ("null", .null), ("true", .bool(true)), ("False", .bool(false)),
        ("42", .int(42)), ("-7", .int(-7)), ("+3", .int(3)), ("0x1f", .int(31)), ("0o17", .int(15)),
        ("1.5", .double(1.5)), ("-2e3", .double(-2000)), (".5", .double(0.5)), (".inf", .double(.infinity)),
        ("yes", .string("yes")), ("1.2.3", .string("1.2.3")), ("12abc", .string("12abc")), ("-", .string("-")),
        ("1e", .string("1e")), ("src/*.c", .string("src/*.c")),
    ])
    func plainScalarResolution(_ text: String, _ expected: YAMLScalar.Value) {
        #expect(YAMLScalar(text: text, isPlain: true).value == expected)
        #expect(YAMLScalar(text: text, isPlain: false).value == .string(text))
    }

    @Test func readerKeepsKeyOrderStylesAndPositions() throws {
        var collector = DiagnosticCollector()
        let outcome = YAMLReader.read("b: 1\na: 'x'\nc: !!str 5\nd: |\n  text\n", file: "f.yaml", diagnostics: &collector)
        guard case .document(let doc) = outcome else {
            Issue.record("expected a document, got \(outcome)")
            return
        }
        let pairs = try #require(doc.root.flatMap { doc.pairs($0) })
        #expect(pairs.compactMap { doc.keyText($0) } == ["b", "a", "c", "d"])
        #expect(pairs.map { doc.scalar($0.value)?.isPlain } == [true, false, false, false])
        #expect(pairs.map { [doc.location($0.value).line, doc.location($0.value).column] } == [[1, 4], [2, 4], [3, 4], [4, 4]])
        #expect(collector.diagnostics.isEmpty)
    }

    // MARK: Files

    @Test func loadsFromDiskWithAbsoluteStandardizedDirectory() throws {
        let dir = try ParsingSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("deploy.yml")
        try Data("version: 1\nsubtasks: [{id: a, run: make}]\n".utf8).write(to: file)
        let given = dir.path + "/sub/../deploy.yml"
        let plan = try PlanLoader.load(path: given)
        #expect(plan.file == given)
        #expect(plan.directory == dir.standardizedFileURL.path)
        #expect(plan.name == "deploy")

        // A relative path resolves against the current directory.
        let previous = FileManager.default.currentDirectoryPath
        #expect(FileManager.default.changeCurrentDirectoryPath(dir.path))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        let relative = try PlanLoader.load(path: "deploy.yml")
        #expect(relative.file == "deploy.yml")
        #expect(relative.directory == dir.standardizedFileURL.path)
    }

    @Test func fileProblemsAreDiagnostics() throws {
        let dir = try ParsingSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func messages(_ path: String) -> [String] {
            do {
                _ = try PlanLoader.load(path: path)
                return []
            } catch {
                return error.diagnostics.map(\.description)
            }
        }
        let missing = dir.appendingPathComponent("nope.yaml").path
        #expect(messages(missing) == ["error: no such file: \(missing)"])
        #expect(messages(dir.path) == ["error: \(dir.path) is a directory, not a plan file"])
        let loop = dir.appendingPathComponent("loop.yaml").path
        try FileManager.default.createSymbolicLink(atPath: loop, withDestinationPath: loop)
        #expect(messages(loop) == ["error: cannot read \(loop): Too many levels of symbolic links"])
        let empty = dir.appendingPathComponent("empty.yaml")
        try Data().write(to: empty)
        #expect(messages(empty.path) == [
            "\(empty.path):1:1: error: the plan file is empty; expected a mapping with `version` and `subtasks`",
        ])
    }

    // MARK: Scale

    /// A plan of `count` subtasks, each depending on up to three earlier ones.
    static func bigPlan(_ count: Int) -> String {
        var out = "version: 1\nname: big\nsubtasks:\n"
        out.reserveCapacity(count * 220)
        for i in 0..<count {
            out += "  - id: task-\(i)\n    description: Compile module \(i)\n    run: cc -O2 -c src/module_\(i).c\n"
            if i > 0 {
                let deps = Set([i / 2, i - 1, (i * 7) % i]).sorted().map { "task-\($0)" }
                out += "    depends_on: [\(deps.joined(separator: ", "))]\n"
            }
            out += "    inputs: [\"src/module_\(i).c\", \"include/**/*.h\"]\n    outputs: [build/module_\(i).o]\n"
            out += "    env: { OPT: \"2\", MODE: release }\n"
        }
        return out
    }

    @Test func tenThousandSubtasksLoad() throws {
        let text = Self.bigPlan(10_000)
        let clock = ContinuousClock()
        var plan: Plan?
        let elapsed = try clock.measure { plan = try ParsingSupport.load(text) }
        let loaded = try #require(plan)
        #expect(loaded.subtasks.count == 10_000)
        #expect(loaded["task-9999"]?.dependsOn == ["task-0", "task-4999", "task-9998"])
        // A generous bound for debug builds; parsing speed is measured on
        // release builds (`bench/parse.sh`).
        #expect(elapsed < .seconds(20))
    }

    @Test func aCycleInALargePlanIsFound() {
        var text = Self.bigPlan(2_000)
        text = text.replacingOccurrences(of: "  - id: task-0\n", with: "  - id: task-0\n    depends_on: [task-1999]\n")
        let found = ParsingSupport.problems(text)
        #expect(found.count == 1)
        #expect(found.first?.message.hasPrefix("cycle: task-0 -> task-1999 -> ") == true)
        #expect(found.first?.message.hasSuffix(" -> task-0") == true)
    }
}

import Foundation
import Testing
@testable import PlanRunCore

/// Plans with `vars`, expressions, `foreach` and `matrix` (DESIGN §8.1–8.3, 8.6)
/// that must be refused, with every diagnostic they produce.
let expansionErrorCases: [PlanErrorCase] = [
    PlanErrorCase("unknown variable, with a suggestion", """
        version: 1
        vars:
          cflags: -O2
        subtasks:
          - id: a
            run: cc ${{ vars.cflag }}
        """, [Expected(6, 10, "unknown name `vars.cflag`; did you mean `vars.cflags`?")]),
    PlanErrorCase("unknown name", """
        version: 1
        subtasks:
          - id: a
            run: echo ${{ itme }}
        """, [Expected(4, 10, "unknown name `itme`")]),
    PlanErrorCase("unknown item part, with a suggestion", """
        version: 1
        subtasks:
          - id: a
            foreach: [x]
            run: echo ${{ item.stm }}
        """, [Expected(5, 10, "unknown name `item.stm`; did you mean `item.stem`?")]),
    PlanErrorCase("item outside a foreach", """
        version: 1
        subtasks:
          - id: a
            run: echo ${{ item }}
        """, [Expected(4, 10, "`item` is defined only in a subtask with `foreach`")]),
    PlanErrorCase("matrix outside a matrix", """
        version: 1
        subtasks:
          - id: a
            run: echo ${{ matrix.os }}
        """, [Expected(4, 10, "`matrix.os` is defined only in a subtask with `matrix`")]),
    PlanErrorCase("unknown matrix key", """
        version: 1
        subtasks:
          - id: a
            matrix: { python: ["3.12"] }
            run: echo ${{ matrix.pyton }}
        """, [Expected(5, 10, "unknown name `matrix.pyton`; did you mean `matrix.python`?")]),
    PlanErrorCase("forward reference", """
        version: 1
        vars:
          a: ${{ vars.b }} x
          b: y
        subtasks:
          - id: a
            run: echo
        """, [Expected(3, 6, "`vars.b` is used before it is defined; a variable may use only variables defined above it")]),
    PlanErrorCase("cycle", """
        version: 1
        vars:
          a: ${{ vars.a }}
        subtasks:
          - id: a
            run: echo
        """, [Expected(3, 6, "`vars.a` is used before it is defined; a variable may use only variables defined above it")]),
    PlanErrorCase("unterminated and empty expressions", """
        version: 1
        subtasks:
          - id: a
            run: echo ${{ vars.x
            description: ${{ }}
        """, [
            Expected(4, 10, "unterminated expression: `${{` without a closing `}}`"),
            Expected(5, 18, "empty expression `${{ }}`"),
        ]),
    PlanErrorCase("expressions outside the fields that expand them", """
        version: 1
        vars:
          j: 2
        max_parallel: ${{ vars.j }}
        subtasks:
          - id: a${{ vars.j }}
            run: echo
          - id: b
            agent: ${{ vars.j }}
            run: echo
            env_inputs: ["${{ vars.j }}"]
            cache: ${{ vars.j }}
            with: { "${{ vars.j }}": 1 }
        """, [
            Expected(4, 15, "expressions are not allowed here; write `$${{` for a literal `${{`"),
            Expected(6, 9, "expressions are not allowed here; write `$${{` for a literal `${{`"),
            Expected(9, 12, "expressions are not allowed here; write `$${{` for a literal `${{`"),
            Expected(11, 18, "expressions are not allowed here; write `$${{` for a literal `${{`"),
            Expected(12, 12, "expressions are not allowed here; write `$${{` for a literal `${{`"),
            Expected(13, 13, "expressions are not allowed here; write `$${{` for a literal `${{`"),
        ]),
    PlanErrorCase("item in an agent", """
        version: 1
        agents:
          tool:
            command: [tool, "${{ item }}"]
        subtasks:
          - id: a
            agent: tool
        """, [Expected(4, 21, "`item` cannot be used here; only `vars.*` can")]),
    PlanErrorCase("unquoted expression in a flow list", """
        version: 1
        subtasks:
          - id: a
            foreach: [x]
            run: echo
            outputs: [build/${{ item }}.o]
        """, [Expected(6, 15, "`${{` inside `[...]` or `{...}` is read as YAML syntax; quote the string: \"build/${{ item }}.o\"")]),
    PlanErrorCase("foreach and matrix together", """
        version: 1
        subtasks:
          - id: a
            foreach: [x]
            matrix: { k: [1] }
            run: echo
        """, [Expected(5, 5, "a subtask has at most one of `foreach` and `matrix`")]),
    PlanErrorCase("exclude without matrix", """
        version: 1
        subtasks:
          - id: a
            exclude: [{ k: 1 }]
            run: echo
        """, [Expected(4, 5, "`exclude` needs `matrix`")]),
    PlanErrorCase("exclude names an unknown key", """
        version: 1
        subtasks:
          - id: a
            matrix: { python: ["3.12"], mode: [fast] }
            exclude: [{ pyhton: "3.12" }]
            run: echo
        """, [Expected(5, 17, "`exclude` names `pyhton`, which is not a key of `matrix`; did you mean `python`?")]),
    PlanErrorCase("foreach of a scalar variable", """
        version: 1
        vars:
          one: x
        subtasks:
          - id: a
            foreach: ${{ vars.one }}
            run: echo
        """, [Expected(6, 14, "`foreach` needs a list; `vars.one` is not a list variable")]),
    PlanErrorCase("foreach of a plain string", """
        version: 1
        subtasks:
          - id: a
            foreach: src/a.c
            run: echo
        """, [Expected(4, 14, "`foreach` must be a list, a list variable or `{glob: PATTERN}`, not a string")]),
    PlanErrorCase("foreach mapping without glob", """
        version: 1
        subtasks:
          - id: a
            foreach: { glbo: "*.c" }
            run: echo
        """, [
            Expected(4, 14, "missing required key `glob` in `foreach`"),
            Expected(4, 16, "unknown key `glbo` in `foreach`; did you mean `glob`?"),
        ]),
    PlanErrorCase("empty instance key", """
        version: 1
        subtasks:
          - id: a
            foreach: ["", x]
            run: echo
        """, [Expected(3, 9, "group `a` has an instance with an empty key")]),
    PlanErrorCase("control character in an instance key", """
        version: 1
        subtasks:
          - id: a
            foreach: ["x\\ty"]
            run: echo
        """, [Expected(3, 9, "instance id `a:x\\ty` contains a control character")]),
    PlanErrorCase("duplicate instance", """
        version: 1
        vars:
          l: [x, y]
        subtasks:
          - id: a
            foreach: [x, "${{ vars.l }}"]
            run: echo
        """, [Expected(5, 9, "instance `a:x` appears more than once")]),
    PlanErrorCase("a group and a subtask with one id", """
        version: 1
        subtasks:
          - id: a
            run: echo
          - id: a
            foreach: [x]
            run: echo
        """, [Expected(5, 9, "duplicate subtask id `a` (first defined on line 3)")]),
    PlanErrorCase("unknown dependency suggests a group", """
        version: 1
        subtasks:
          - id: compile
            foreach: [a, b]
            run: echo
          - id: link
            depends_on: [compil]
            run: echo
        """, [Expected(7, 18, "subtask `link` depends on unknown subtask `compil`; did you mean `compile`?")]),
    PlanErrorCase("unknown instance in a per-instance dependency", """
        version: 1
        subtasks:
          - id: gen
            foreach: [a]
            run: echo
          - id: use
            foreach: [a, b]
            depends_on: ["gen:${{ item }}"]
            run: echo
        """, [Expected(8, 18, "subtask `use:b` depends on unknown subtask `gen:b`; did you mean `gen:a`?")]),
    PlanErrorCase("a cycle through instances, in full", """
        version: 1
        subtasks:
          - id: a
            foreach: [x]
            depends_on: [b]
            run: echo
          - id: b
            depends_on: ["a:x"]
            run: echo
        """, [Expected(3, 9, "cycle: a:x -> b -> a:x")]),
    PlanErrorCase("a problem every instance shares is reported once", """
        version: 1
        subtasks:
          - id: a
            foreach: [x, y, z]
            run: echo
            timeout: soon
        """, [Expected(6, 14, "invalid duration `soon` for `timeout`; use forms like 500ms, 10s, 5m, 2h or 1m30s")]),
    PlanErrorCase("a variable that is a mapping", """
        version: 1
        vars:
          m: { a: 1 }
        subtasks:
          - id: a
            run: echo
        """, [Expected(3, 6, "`vars.m` must be a string, a number, a boolean or a list of those, not a mapping")]),
    PlanErrorCase("an empty matrix dimension", """
        version: 1
        subtasks:
          - id: a
            matrix: { k: [] }
            run: echo
        """, [Expected(4, 18, "invalid value `[]` for `matrix.k`; expected a non-empty list of values")]),
]

@Suite struct ParsingExpansionTests {
    @Test(arguments: expansionErrorCases)
    func reportsEveryProblem(_ testCase: PlanErrorCase) {
        #expect(ParsingSupport.triples(ParsingSupport.problems(testCase.yaml)) == testCase.expected)
    }

    // MARK: Expressions and variables

    @Test func variablesKeepTheirSourceTextAndExpandInOrder() throws {
        let plan = try ParsingSupport.load("""
            version: 1
            vars:
              py: 3.10
              hex: 0x1F
              yes: True
              cflags: -O2 -Wall
              debug: ${{ vars.cflags }} -g
              headers: [a.h, "${{ vars.py }}.h"]
            env:
              FLAGS: ${{vars.debug}}
            subtasks:
              - id: a
                description: "py${{ vars.py }} ${{ vars.hex }} ${{ vars.yes }}"
                run: cc ${{ vars.debug }} ${{ vars.headers }} $${{ literal }} $$ $${ x } ${ y }
                inputs: ["${{ vars.headers }}", src/a.c]
                env: { H: "${{ vars.headers }}" }
                with: { deep: [{ h: "${{ vars.py }}" }], n: 3 }
            """)
        let a = try #require(plan["a"])
        #expect(a.description == "py3.10 0x1F True")
        #expect(a.run == "cc -O2 -Wall -g a.h 3.10.h ${{ literal }} $$ $${ x } ${ y }")
        #expect(a.inputs == ["a.h", "3.10.h", "src/a.c"])
        #expect(a.env == ["H": "a.h 3.10.h"])
        #expect(plan.env == ["FLAGS": "-O2 -Wall -g"])
        #expect(a.with == .object(["deep": .array([.object(["h": .string("3.10")])]), "n": .int(3)]))
    }

    @Test func overridesApplyBeforeEvaluation() throws {
        let yaml = """
            version: 1
            vars:
              cflags: -O2
              debug: ${{ vars.cflags }} -g
              files: [a, b]
            subtasks:
              - id: c
                foreach: "${{ vars.files }}"
                run: cc ${{ vars.debug }} ${{ item }}
            """
        let overrides = VariableOverrides([("cflags", "-O0 ${{ vars.x }}"), ("files", " x  y\tz ")])
        let plan = try PlanLoader.load(bytes: Array(yaml.utf8), file: "plan.yaml", directory: "/plans", variables: overrides)
        #expect(plan.subtasks.map(\.id) == ["c:x", "c:y", "c:z"])
        #expect(plan["c:x"]?.run == "cc -O0 ${{ vars.x }} -g x")
    }

    @Test func undeclaredOverrideIsAUsageError() throws {
        let yaml = "version: 1\nvars:\n  cflags: -O2\nsubtasks:\n  - id: a\n    run: echo\n"
        do {
            _ = try PlanLoader.load(bytes: Array(yaml.utf8), file: "plan.yaml", directory: "/plans",
                                    variables: VariableOverrides([("cflag", "x")]))
            Issue.record("loaded")
        } catch {
            #expect(error.isUsageError)
            #expect(error.diagnostics.map(\.message) == ["--var cflag: the plan declares no variable `cflag`; did you mean `cflags`?"])
        }
        #expect(VariableOverrides.parse(["a=b=c", "x="]).map { $0.entries.map { "\($0.name)|\($0.value)" } } == .success(["a|b=c", "x|"]))
        if case .success = VariableOverrides.parse(["=x"]) { Issue.record("empty name accepted") }
        if case .success = VariableOverrides.parse(["x"]) { Issue.record("no = accepted") }
    }

    struct PathCase: Sendable, CustomTestStringConvertible {
        var item: String
        var dir: String, name: String, stem: String, ext: String
        var testDescription: String { item }
    }

    /// Python: PurePosixPath(item).parent, .name, .stem, .suffix[1:].
    static let pathCases: [PathCase] = [
        PathCase(item: "src/a.tar.gz", dir: "src", name: "a.tar.gz", stem: "a.tar", ext: "gz"),
        PathCase(item: ".bashrc", dir: ".", name: ".bashrc", stem: ".bashrc", ext: ""),
        PathCase(item: "a.c", dir: ".", name: "a.c", stem: "a", ext: "c"),
        PathCase(item: "a/b/c", dir: "a/b", name: "c", stem: "c", ext: ""),
        PathCase(item: "a/b.", dir: "a", name: "b.", stem: "b.", ext: ""),
        PathCase(item: "docs/My Notes.md", dir: "docs", name: "My Notes.md", stem: "My Notes", ext: "md"),
        PathCase(item: "/abs/x.y", dir: "/abs", name: "x.y", stem: "x", ext: "y"),
        PathCase(item: "/x", dir: "/", name: "x", stem: "x", ext: ""),
        PathCase(item: "d/.hidden.txt", dir: "d", name: ".hidden.txt", stem: ".hidden", ext: "txt"),
    ]

    @Test(arguments: pathCases)
    func itemPartsFollowPathlib(_ c: PathCase) throws {
        let scope = ExpressionScope(item: c.item)
        let text = "${{item.path}}|${{ item.dir }}|${{ item.name }}|${{  item.stem  }}|${{ item.ext }}"
        #expect(scope.expand(text) == .success([c.item, c.dir, c.name, c.stem, c.ext].joined(separator: "|")))
    }

    // MARK: Groups

    @Test func matrixIsTheProductFirstKeySlowestLessExcludes() throws {
        let plan = try ParsingSupport.load("""
            version: 1
            vars:
              pys: ["3.12", "3.13"]
            subtasks:
              - id: test
                matrix: { python: "${{ vars.pys }}", mode: [fast, full], os: [linux] }
                exclude: [{ python: "3.12", mode: full }, { mode: fast, python: "3.13" }]
                run: tox -e py${{ matrix.python }}-${{ matrix.mode }}-${{ matrix.os }}
              - id: all
                depends_on: [test]
                run: echo
            """)
        #expect(plan.subtasks.map(\.id) == ["test:3.12,fast,linux", "test:3.13,full,linux", "all"])
        #expect(plan["test:3.13,full,linux"]?.run == "tox -e py3.13-full-linux")
        #expect(plan["test:3.13,full,linux"]?.matrix == [
            MatrixValue(name: "python", value: "3.13"), MatrixValue(name: "mode", value: "full"),
            MatrixValue(name: "os", value: "linux"),
        ])
        #expect(plan["all"]?.dependsOn == ["test:3.12,fast,linux", "test:3.13,full,linux"])
        #expect(plan.groups["test"] == ["test:3.12,fast,linux", "test:3.13,full,linux"])

        let order = try ParsingSupport.load("""
            version: 1
            subtasks:
              - id: m
                matrix: { a: [1, 2], b: [x, y] }
                run: echo
            """)
        #expect(order.subtasks.map(\.id) == ["m:1,x", "m:1,y", "m:2,x", "m:2,y"])
    }

    @Test func foreachGlobsAreSortedUnionsAndOptionalOnesMayMatchNothing() throws {
        let dir = try ParsingSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["data/b.csv", "data/a.csv", "data/My File.csv", "data/skip.txt", "extra/c.csv"] {
            let url = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data().write(to: url)
        }
        let yaml = """
            version: 1
            vars:
              where: data
            subtasks:
              - id: clean
                foreach: { glob: ["${{ vars.where }}/*.csv", "*/c.csv", "data/a.csv"] }
                run: tool ${{ item }} > out/${{ item.stem }}.txt
                inputs: ["${{ item }}"]
                outputs: ["out/${{ item.stem }}.txt"]
              - id: optional
                foreach: { glob: "-gen/*.txt" }
                run: echo
              - id: report
                depends_on: [clean, optional]
                run: echo
            """
        let plan = try PlanLoader.load(bytes: Array(yaml.utf8), file: "plan.yaml", directory: dir.path)
        #expect(plan.subtasks.map(\.id) == [
            "clean:data/My File.csv", "clean:data/a.csv", "clean:data/b.csv", "clean:extra/c.csv", "report",
        ])
        #expect(plan["clean:data/My File.csv"]?.outputs == ["out/My File.txt"])
        #expect(plan["clean:data/a.csv"]?.item == "data/a.csv")
        #expect(plan["report"]?.dependsOn == plan.groups["clean"])
        #expect(plan.groups["optional"] == [])
        #expect(plan.foreachGlobs == ["data/*.csv", "*/c.csv", "data/a.csv", "gen/*.txt"])

        let missing = """
            version: 1
            subtasks:
              - id: clean
                foreach: { glob: ["data/*.csv", "nothing/*.csv"] }
                run: echo
            """
        do {
            _ = try PlanLoader.load(bytes: Array(missing.utf8), file: "plan.yaml", directory: dir.path)
            Issue.record("loaded")
        } catch {
            #expect(ParsingSupport.triples(error.diagnostics) == [Expected(4, 37,
                "`foreach` glob `nothing/*.csv` matches no file; mark it optional with a leading `-` (`-nothing/*.csv`) if it may match nothing")])
        }
    }

    @Test func dependenciesExpandPerInstance() throws {
        let plan = try ParsingSupport.load("""
            version: 1
            subtasks:
              - id: gen
                foreach: [a.txt, b.txt]
                run: echo > ${{ item }}
              - id: use
                foreach: [a, b]
                depends_on: ["gen:${{ item }}.txt"]
                run: cat ${{ item }}.txt
            """)
        #expect(plan["use:a"]?.dependsOn == ["gen:a.txt"])
        #expect(plan["use:b"]?.dependsOn == ["gen:b.txt"])
    }

    /// §8.6: an expanded instance has the key of the same subtask written
    /// out by hand with the same id and dependency ids (the key holds no
    /// subtask id of its own).
    @Test func anInstanceHasTheKeyOfItsHandWrittenTwin() throws {
        let expanded = try ParsingSupport.load("""
            version: 1
            vars:
              cc: cc
            subtasks:
              - id: gen
                run: echo
              - id: compile
                foreach: [src/a.c]
                depends_on: [gen]
                run: ${{ vars.cc }} -c ${{ item }} -o build/${{ item.stem }}.o
                inputs: ["${{ item }}"]
                outputs: ["build/${{ item.stem }}.o"]
                depfile: build/${{ item.stem }}.d
                with: { file: "${{ item }}" }
            """)
        let written = try ParsingSupport.load("""
            version: 1
            subtasks:
              - id: gen
                run: echo
              - id: compile:src/a.c
                depends_on: [gen]
                run: cc -c src/a.c -o build/a.o
                inputs: [src/a.c]
                outputs: [build/a.o]
                depfile: build/a.d
                with: { file: src/a.c }
            """.replacingOccurrences(of: "compile:src/a.c", with: "other"))
        let instance = try #require(expanded["compile:src/a.c"])
        let twin = try #require(written["other"])
        #expect(instance.depfile == "build/a.d")
        func key(_ s: Subtask, _ plan: Plan) -> CacheKey {
            CacheKey.make(for: s, in: plan, inputDigests: ["src/a.c": "d1"], dependencyDigests: ["gen": "d2"],
                          callerEnvironment: [:])
        }
        #expect(key(instance, expanded) == key(twin, written))
        // The depfile is part of the definition only when there is one.
        var without = twin
        without.depfile = nil
        #expect(key(without, written).components["definition"] != key(twin, written).components["definition"])
    }

    @Test func runFileNamesAreOneComponentAndDistinct() {
        #expect(Subtask.fileName("compile") == "compile")
        #expect(Subtask.fileName("render:docs/My Notes.md") == "render:docs%2FMy Notes.md")
        #expect(Subtask.fileName("g:../../x") == "g:..%2F..%2Fx")
        #expect(Subtask.fileName("g:a%2Fb") != Subtask.fileName("g:a/b"))
        #expect(Subtask.fileName("g:é/ü") == "g:é%2Fü")
    }
}

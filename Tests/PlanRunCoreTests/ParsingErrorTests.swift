import Testing
@testable import PlanRunCore

/// One invalid plan and every diagnostic it must produce, in order.
struct PlanErrorCase: Sendable, CustomTestStringConvertible {
    var name: String
    var yaml: String
    var expected: [Expected]

    init(_ name: String, _ yaml: String, _ expected: [Expected]) {
        self.name = name
        self.yaml = yaml
        self.expected = expected
    }

    var testDescription: String { name }
}

let planErrorCases: [PlanErrorCase] = [
    // YAML
    PlanErrorCase("unclosed flow sequence", """
        version: 1
        subtasks: [a
        """, [Expected(3, 1, "invalid YAML: did not find expected ',' or ']' while parsing a flow sequence")]),
    PlanErrorCase("mapping value in wrong place", """
        version: 1
          subtasks: x
        """, [Expected(2, 11, "invalid YAML: mapping values are not allowed in this context")]),
    PlanErrorCase("tab indentation", "version: 1\nsubtasks:\n\t- id: a\n",
        [Expected(3, 1, "invalid YAML: found a tab character where a token was expected; indent with spaces, not tabs")]),
    PlanErrorCase("duplicate key", """
        version: 1
        name: first
        name: second
        subtasks:
          - id: a
            run: make
        """, [Expected(3, 1, "duplicate key `name` (first defined on line 2)")]),
    PlanErrorCase("duplicate key inside a subtask", """
        version: 1
        subtasks:
          - id: a
            run: make
            run: make all
        """, [Expected(5, 5, "duplicate key `run` (first defined on line 4)")]),
    PlanErrorCase("two documents", """
        version: 1
        subtasks: [{id: a, run: make}]
        ---
        version: 1
        """, [Expected(3, 1, "the file holds more than one YAML document; a plan is one document")]),
    PlanErrorCase("unquoted glob in a flow list", """
        version: 1
        subtasks:
          - id: a
            run: cc *.c
            inputs: [*.c]
        """, [Expected(5, 14, "`*.c` is read as a YAML alias; quote the pattern: \"*.c\"")]),
    PlanErrorCase("unquoted recursive glob in a block list", """
        version: 1
        subtasks:
          - id: a
            run: swift build
            inputs:
              - **/*.swift
        """, [Expected(6, 9, "`**/*.swift` is read as a YAML alias; quote the pattern: \"**/*.swift\"")]),
    PlanErrorCase("unquoted glob that scans as an unknown alias", """
        version: 1
        subtasks:
          - id: a
            run: make
            inputs:
              - *_test
        """, [Expected(6, 9, "`*_test` is read as a YAML alias; quote the pattern: \"*_test\"")]),
    PlanErrorCase("alias to a misspelled anchor", """
        version: 1
        common: &inputs [a.c]
        subtasks:
          - id: a
            run: make
            inputs: *input
        """, [Expected(6, 13, "unknown YAML alias `*input`")]),
    PlanErrorCase("merge key with a scalar", """
        version: 1
        subtasks:
          - <<: 3
            id: a
            run: make
        """, [Expected(3, 9, "the merge key `<<` needs a mapping or a list of mappings")]),
    // Whole file
    PlanErrorCase("empty file", "", [Expected(1, 1, "the plan file is empty; expected a mapping with `version` and `subtasks`")]),
    PlanErrorCase("only comments", "# nothing yet\n\n",
        [Expected(1, 1, "the plan file is empty; expected a mapping with `version` and `subtasks`")]),
    PlanErrorCase("top-level list", "- id: a\n- id: b\n",
        [Expected(1, 1, "a plan must be a mapping with keys such as `version` and `subtasks`, not a list")]),
    PlanErrorCase("top-level scalar", "# a plan\nhello\n",
        [Expected(2, 1, "a plan must be a mapping with keys such as `version` and `subtasks`, not a string")]),
    // Shape
    PlanErrorCase("missing version and subtasks", "name: x\n", [
        Expected(1, 1, "missing required key `version` in the plan"),
        Expected(1, 1, "missing required key `subtasks` in the plan"),
    ]),
    PlanErrorCase("version 2", """
        version: 2
        subtasks: [{id: a, run: make}]
        """, [Expected(1, 10, "unsupported plan version 2; only version 1 is accepted")]),
    PlanErrorCase("version as a string", """
        version: "1"
        subtasks: [{id: a, run: make}]
        """, [Expected(1, 10, "`version` must be an integer, not a string")]),
    PlanErrorCase("empty subtasks", "version: 1\nsubtasks: []\n", [Expected(2, 11, "`subtasks` must list at least one subtask")]),
    PlanErrorCase("subtasks as a mapping", "version: 1\nsubtasks:\n  a: {run: make}\n",
        [Expected(3, 3, "`subtasks` must be a list of subtasks, not a mapping")]),
    PlanErrorCase("subtask that is a string", "version: 1\nsubtasks:\n  - build\n",
        [Expected(3, 5, "every entry of `subtasks` must be a mapping, not a string")]),
    PlanErrorCase("unknown top-level key with suggestion", """
        version: 1
        goall: ship it
        subtasks: [{id: a, run: make}]
        """, [Expected(2, 1, "unknown key `goall` in the plan; did you mean `goal`?")]),
    PlanErrorCase("unknown top-level key without suggestion", """
        version: 1
        colour: red
        subtasks: [{id: a, run: make}]
        """, [Expected(2, 1, "unknown key `colour` in the plan")]),
    PlanErrorCase("unknown key in a subtask", """
        version: 1
        subtasks:
          - id: a
            run: make
            dependson: [b]
        """, [Expected(5, 5, "unknown key `dependson` in subtask `a`; did you mean `depends_on`?")]),
    PlanErrorCase("unknown key in defaults", """
        version: 1
        defaults:
          timout: 5m
        subtasks: [{id: a, run: make}]
        """, [Expected(3, 3, "unknown key `timout` in `defaults`; did you mean `timeout`?")]),
    PlanErrorCase("unknown key in an agent", """
        version: 1
        agents:
          bash:
            kind: shell
            shel: [/bin/bash, -c]
        subtasks: [{id: a, run: make, agent: bash}]
        """, [Expected(5, 5, "unknown key `shel` in agent `bash`; did you mean `shell`?")]),
    PlanErrorCase("wrong types in a subtask", """
        version: 1
        subtasks:
          - id: a
            run: make
            retries: many
            cache: yes
            depends_on: b
            inputs: [{a: 1}, src/x.c]
        """, [
            Expected(5, 14, "`retries` must be a non-negative integer, not a string"),
            Expected(6, 12, "`cache` must be `true` or `false`, not a string"),
            Expected(7, 17, "`depends_on` must be a list of strings, not a string"),
            Expected(8, 14, "every entry of `inputs` must be a string, not a mapping"),
        ]),
    PlanErrorCase("out-of-range integers", """
        version: 1
        max_parallel: 0
        subtasks:
          - id: a
            run: make
            retries: -1
        """, [
            Expected(2, 15, "invalid value `0` for `max_parallel`; expected a positive integer"),
            Expected(6, 14, "invalid value `-1` for `retries`; expected a non-negative integer"),
        ]),
    PlanErrorCase("bad enum values", """
        version: 1
        approval: maybe
        agents:
          robot: {kind: robot}
        subtasks: [{id: a, run: make}]
        """, [
            Expected(2, 11, "invalid value `maybe` for `approval`; expected `none` or `required`"),
            Expected(4, 17, "invalid value `robot` for `kind`; expected `shell`, `command` or `http`"),
        ]),
    PlanErrorCase("null and list env values", """
        version: 1
        env:
          EMPTY:
          LIST: [a]
        subtasks: [{id: a, run: make}]
        """, [
            Expected(3, 9, "`env.EMPTY` must be a string, not null"),
            Expected(4, 9, "`env.LIST` must be a string, not a list"),
        ]),
    PlanErrorCase("bad durations", """
        version: 1
        defaults:
          timeout: 10 minutes
        subtasks:
          - id: a
            run: make
            retry_backoff: 1x
        """, [
            Expected(3, 12, "invalid duration `10 minutes` for `timeout`; use forms like 500ms, 10s, 5m, 2h or 1m30s"),
            Expected(7, 20, "invalid duration `1x` for `retry_backoff`; use forms like 500ms, 10s, 5m, 2h or 1m30s"),
        ]),
    PlanErrorCase("command agent without command", """
        version: 1
        agents:
          coder:
            kind: command
          writer:
            command: []
        subtasks: [{id: a, run: make}]
        """, [
            Expected(3, 3, "agent `coder` of kind `command` needs a non-empty `command`"),
            Expected(6, 14, "agent `writer` of kind `command` needs a non-empty `command`"),
        ]),
    PlanErrorCase("empty name and empty paths", """
        version: 1
        name: ""
        subtasks:
          - id: a
            run: make
            inputs: ["", src/a.c]
            outputs: ['']
        """, [
            Expected(2, 7, "invalid value `` for `name`; expected a non-empty name"),
            Expected(6, 14, "invalid value `` for `inputs`; expected a path relative to the plan's folder"),
            Expected(7, 15, "invalid value `` for `outputs`; expected a path relative to the plan's folder"),
        ]),
    // Semantics
    PlanErrorCase("missing and invalid ids", """
        version: 1
        subtasks:
          - run: make
          - id: a b
            run: make
        """, [
            Expected(3, 5, "missing required key `id` in a subtask"),
            Expected(4, 9, "invalid subtask id `a b`; use letters, digits, `_`, `.` and `-`"),
        ]),
    PlanErrorCase("duplicate ids", """
        version: 1
        subtasks:
          - id: build
            run: make
          - id: build
            run: make again
        """, [Expected(5, 9, "duplicate subtask id `build` (first defined on line 3)")]),
    PlanErrorCase("unknown dependency with suggestion", """
        version: 1
        subtasks:
          - id: build
            run: make
          - id: test
            run: make test
            depends_on: [biuld]
        """, [Expected(7, 18, "subtask `test` depends on unknown subtask `biuld`; did you mean `build`?")]),
    PlanErrorCase("self and repeated dependency", """
        version: 1
        subtasks:
          - id: a
            run: make
          - id: b
            run: make
            depends_on: [b, a, a]
        """, [
            Expected(7, 18, "subtask `b` depends on itself"),
            Expected(7, 24, "subtask `b` lists dependency `a` more than once"),
        ]),
    PlanErrorCase("unknown agent with suggestion", """
        version: 1
        agents:
          coder:
            command: [python3, coder.py]
        subtasks:
          - id: a
            agent: codr
        """, [Expected(7, 12, "agent `codr` is not defined; did you mean `coder`?")]),
    PlanErrorCase("unknown default agent", """
        version: 1
        defaults:
          agent: shel
        subtasks:
          - id: a
            run: make
        """, [Expected(3, 10, "agent `shel` is not defined; did you mean `shell`?")]),
    PlanErrorCase("shell subtask without run", """
        version: 1
        subtasks:
          - id: a
            description: nothing to do
        """, [Expected(3, 5, "subtask `a` uses a shell agent but has no `run`")]),
    PlanErrorCase("outputs leaving the plan folder", """
        version: 1
        subtasks:
          - id: a
            run: make
            outputs: [../out, /tmp/out, build/../../x, build/../ok, .]
        """, [
            Expected(5, 15, "output `../out` leaves the plan's folder; use a relative path inside it"),
            Expected(5, 23, "output `/tmp/out` leaves the plan's folder; use a relative path inside it"),
            Expected(5, 33, "output `build/../../x` leaves the plan's folder; use a relative path inside it"),
            Expected(5, 61, "invalid value `.` for `outputs`; expected a path inside the plan's folder, not the folder itself"),
        ]),
    PlanErrorCase("same output twice", """
        version: 1
        subtasks:
          - id: a
            run: make
            outputs: [build/app.db]
          - id: b
            run: make
            outputs: [./build//app.db]
        """, [Expected(8, 15, "output `./build//app.db` of subtask `b` is already declared by subtask `a`")]),
    PlanErrorCase("same output three times: each repeat names the first", """
        version: 1
        subtasks:
          - id: a
            run: make
            outputs: [build/app.db]
          - id: b
            run: make
            outputs: [build/app.db]
          - id: c
            run: make
            outputs: [build/./app.db]
        """, [
            Expected(8, 15, "output `build/app.db` of subtask `b` is already declared by subtask `a`"),
            Expected(11, 15, "output `build/./app.db` of subtask `c` is already declared by subtask `a`"),
        ]),
    PlanErrorCase("inputs in the state folder, however written", """
        version: 1
        subtasks:
          - id: a
            run: make
            inputs: [.planrun, "-.planrun/x", a/../.planrun/y, a/.planrun, .planrunx/y, ./.planrun/, src/x.c]
        """, [
            Expected(5, 14, "input `.planrun` is inside the state folder `.planrun`, which belongs to planrun; use a path outside it"),
            Expected(5, 24, "input `.planrun/x` is inside the state folder `.planrun`, which belongs to planrun; use a path outside it"),
            Expected(5, 39, "input `a/../.planrun/y` is inside the state folder `.planrun`, which belongs to planrun; use a path outside it"),
            Expected(5, 81, "input `./.planrun/` is inside the state folder `.planrun`, which belongs to planrun; use a path outside it"),
        ]),
    PlanErrorCase("three-subtask cycle", """
        version: 1
        subtasks:
          - id: a
            run: make
            depends_on: [c]
          - id: b
            run: make
            depends_on: [a]
          - id: c
            run: make
            depends_on: [b]
        """, [Expected(3, 9, "cycle: a -> c -> b -> a")]),
    PlanErrorCase("two independent problems", """
        version: 1
        agents:
          coder: {command: [coder]}
        subtasks:
          - id: a
            agent: codr
          - id: b
            run: make
            timeout: forever
        """, [
            Expected(6, 12, "agent `codr` is not defined; did you mean `coder`?"),
            Expected(9, 14, "invalid duration `forever` for `timeout`; use forms like 500ms, 10s, 5m, 2h or 1m30s"),
        ]),
    PlanErrorCase("wrong type does not hide a cycle", """
        version: 1
        max_parallel: lots
        subtasks:
          - {id: a, run: make, depends_on: [b]}
          - {id: b, run: make, depends_on: [a]}
        """, [
            Expected(2, 15, "`max_parallel` must be a positive integer, not a string"),
            Expected(4, 10, "cycle: a -> b -> a"),
        ]),
]

@Suite struct ParsingErrorTests {
    @Test(arguments: planErrorCases)
    func reportsEveryProblem(_ c: PlanErrorCase) {
        let found = ParsingSupport.triples(ParsingSupport.problems(c.yaml))
        #expect(found == c.expected)
        for d in ParsingSupport.problems(c.yaml) {
            #expect(d.severity == .error)
            #expect(d.location?.file == "plan.yaml")
        }
    }

    @Test func nonUTF8BytesPointAtTheFirstBadByte() {
        var bytes = Array("version: 1\nname: caf".utf8)
        bytes.append(0xE9) // Latin-1 é
        bytes += Array("\nsubtasks: [{id: a, run: make}]\n".utf8)
        let found = ParsingSupport.triples(ParsingSupport.problems(bytes: bytes))
        #expect(found == [Expected(2, 10, "the file is not valid UTF-8 text")])
    }

    @Test func unclosedQuoteNotesWhereItStarted() {
        let found = ParsingSupport.problems("version: 1\nname: \"release\nsubtasks: [{id: a, run: make}]\n")
        #expect(ParsingSupport.triples(found) == [
            Expected(4, 1, "invalid YAML: found unexpected end of stream while scanning a quoted scalar"),
        ])
        #expect(found.first?.notes == ["scanning a quoted scalar started at line 2, column 7"])
    }

    @Test func billionLaughsIsRefusedQuickly() {
        var yaml = "version: 1\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        for level in 1...9 {
            let refs = Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ")
            yaml += "l\(level): &l\(level) [\(refs)]\n"
        }
        yaml += "subtasks: [{id: a, run: make, with: *l9}]\n"
        let clock = ContinuousClock()
        var found: [Expected] = []
        let elapsed = clock.measure { found = ParsingSupport.triples(ParsingSupport.problems(yaml)) }
        // l4 (line 6) is the first level past 100,000 expanded nodes: 12,330 before it,
        // then 11,111 per alias of l3.
        #expect(found.count == 1)
        #expect(found.first?.message == "YAML aliases expand to more than 100000 nodes; refusing to expand further")
        #expect(found.first?.line == 6)
        #expect(elapsed < .seconds(5)) // unbounded expansion would take hours (10^9 nodes)
    }

    @Test func deepNestingIsRefused() {
        let yaml = "version: 1\nwith: " + String(repeating: "[", count: 300) + String(repeating: "]", count: 300) + "\n"
        let found = ParsingSupport.triples(ParsingSupport.problems(yaml))
        // The root mapping is level 1, so the 256th `[` is the one too deep.
        #expect(found == [Expected(2, 7 + 255, "YAML nesting is deeper than 256 levels")])
    }

    @Test func problemsAreSortedByLocation() {
        let found = ParsingSupport.problems("""
            version: 1
            subtasks:
              - id: b
                depends_on: [zz]
                run: make
              - id: a
                agent: nobody
            colour: red
            """)
        let locations = found.compactMap(\.location)
        #expect(locations.count == 3)
        #expect(locations == locations.sorted())
    }
}

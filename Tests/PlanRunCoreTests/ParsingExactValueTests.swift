import Foundation
import Testing
@testable import PlanRunCore

/// YAML values are exact. Numbers, tags and keys reach
/// the plan as written or are errors at their position; nesting is limited
/// with aliases expanded; validation stays linear in the plan's size.
let exactValueErrorCases: [PlanErrorCase] = [
    // Integers: 64-bit, core-schema forms only.
    PlanErrorCase("decimal integer past 64 bits in with", """
        version: 1
        subtasks: [{id: a, run: make, with: {n: 9223372036854775808}}]
        """, [Expected(2, 41, "integer `9223372036854775808` does not fit in 64 bits (-9223372036854775808 to 9223372036854775807)")]),
    PlanErrorCase("negative integer past 64 bits in with", """
        version: 1
        subtasks: [{id: a, run: make, with: [-9223372036854775809]}]
        """, [Expected(2, 38, "integer `-9223372036854775809` does not fit in 64 bits (-9223372036854775808 to 9223372036854775807)")]),
    PlanErrorCase("hex integer past 64 bits in with", """
        version: 1
        subtasks: [{id: a, run: make, with: {n: 0x8000000000000000}}]
        """, [Expected(2, 41, "integer `0x8000000000000000` does not fit in 64 bits (-9223372036854775808 to 9223372036854775807)")]),
    PlanErrorCase("integer field past 64 bits", """
        version: 1
        max_parallel: 99999999999999999999
        subtasks: [{id: a, run: make}]
        """, [Expected(2, 15, "integer `99999999999999999999` does not fit in 64 bits (-9223372036854775808 to 9223372036854775807)")]),
    PlanErrorCase("signed hex is a string", """
        version: 0x+1
        subtasks: [{id: a, run: make}]
        """, [Expected(1, 10, "`version` must be an integer, not a string")]),
    PlanErrorCase("signed octal is a string", """
        version: 1
        max_parallel: 0o+4
        subtasks: [{id: a, run: make}]
        """, [Expected(2, 15, "`max_parallel` must be a positive integer, not a string")]),
    PlanErrorCase("negative hex is a string", """
        version: 1
        defaults: {retries: 0x-1}
        subtasks: [{id: a, run: make}]
        """, [Expected(2, 21, "`retries` must be a non-negative integer, not a string")]),
    // Numbers JSON cannot hold.
    PlanErrorCase("infinity, NaN and overflowing floats in with", """
        version: 1
        subtasks:
          - id: a
            run: make
            with: {up: .inf, down: -.Inf, nan: .NaN, big: 1e400, deep: [[-1e999]]}
        """, [
            Expected(5, 16, "number `.inf` in `with` is infinite or not a number, which JSON cannot hold"),
            Expected(5, 28, "number `-.Inf` in `with` is infinite or not a number, which JSON cannot hold"),
            Expected(5, 40, "number `.NaN` in `with` is infinite or not a number, which JSON cannot hold"),
            Expected(5, 51, "number `1e400` in `with` is infinite or not a number, which JSON cannot hold"),
            Expected(5, 66, "number `-1e999` in `with` is infinite or not a number, which JSON cannot hold"),
        ]),
    // Tags.
    PlanErrorCase("integer tag on text", """
        version: 1
        subtasks: [{id: a, run: make, with: {n: !!int abc}}]
        """, [Expected(2, 41, "the tag `!!int` needs an integer, not `abc`")]),
    PlanErrorCase("bool tag on text", """
        version: 1
        subtasks: [{id: a, run: make, with: {b: !!bool "yes"}}]
        """, [Expected(2, 41, "the tag `!!bool` needs `true` or `false`, not `yes`")]),
    PlanErrorCase("float tag on text", """
        version: 1
        subtasks: [{id: a, run: make, with: {x: !!float 1.2.3}}]
        """, [Expected(2, 41, "the tag `!!float` needs a number, not `1.2.3`")]),
    PlanErrorCase("null tag on text", """
        version: 1
        subtasks: [{id: a, run: make, with: {x: !!null nothing}}]
        """, [Expected(2, 41, "the tag `!!null` needs null, not `nothing`")]),
    PlanErrorCase("integer tag past 64 bits", """
        version: 1
        max_parallel: !!int "18446744073709551616"
        subtasks: [{id: a, run: make}]
        """, [Expected(2, 15, "integer `18446744073709551616` does not fit in 64 bits (-9223372036854775808 to 9223372036854775807)")]),
    PlanErrorCase("local tag", """
        version: 1
        subtasks: [{id: a, run: make, with: {t: !celsius 21}}]
        """, [Expected(2, 41, "unsupported YAML tag `!celsius`; only `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!seq` and `!!map` are accepted")]),
    PlanErrorCase("standard tag planrun does not take", """
        version: 1
        subtasks: [{id: a, run: make, with: {t: !!binary aGk=}}]
        """, [Expected(2, 41, "unsupported YAML tag `!!binary`; only `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!seq` and `!!map` are accepted")]),
    PlanErrorCase("verbatim tag", """
        version: 1
        subtasks: [{id: a, run: make, with: {t: !<tag:example.com,2024:x> 1}}]
        """, [Expected(2, 41, "unsupported YAML tag `tag:example.com,2024:x`; only `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!seq` and `!!map` are accepted")]),
    PlanErrorCase("local tag on a mapping", """
        version: 1
        subtasks: [!task {id: a, run: make}]
        """, [Expected(2, 12, "unsupported YAML tag `!task`; only `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!seq` and `!!map` are accepted")]),
    PlanErrorCase("sequence tag on a mapping", """
        version: 1
        subtasks: [{id: a, run: make, with: !!seq {a: 1}}]
        """, [Expected(2, 37, "the tag `!!seq` needs a list, not a mapping")]),
    PlanErrorCase("mapping tag on a scalar", """
        version: 1
        subtasks: [{id: a, run: make, with: !!map x}]
        """, [Expected(2, 37, "the tag `!!map` needs a mapping, not a scalar")]),
    PlanErrorCase("string tag on a list", """
        version: 1
        subtasks: [{id: a, run: make, with: !!str [a]}]
        """, [Expected(2, 37, "the tag `!!str` needs a string, not a list")]),
    // Keys equal only after Unicode normalization.
    PlanErrorCase("env names that differ only in normalization", """
        version: 1
        env:
          CAF\u{C9}: composed
          CAFE\u{301}: decomposed
        subtasks: [{id: a, run: make}]
        """, [Expected(4, 3, "key `CAFE\u{301}` differs from key `CAF\u{C9}` (line 3) only in Unicode normalization; planrun keeps keys exact and cannot pass both on; rename one")]),
    PlanErrorCase("with keys that differ only in normalization", """
        version: 1
        subtasks:
          - id: a
            run: make
            with: {caf\u{E9}: 1, cafe\u{301}: 2}
        """, [Expected(5, 21, "key `cafe\u{301}` differs from key `caf\u{E9}` (line 5) only in Unicode normalization; planrun keeps keys exact and cannot pass both on; rename one")]),
    PlanErrorCase("a decomposed key is not a known key", """
        version: 1
        subtasks:
          - id: a
            run: make
            de\u{301}scription: x
        """, [Expected(5, 5, "unknown key `de\u{301}scription` in subtask `a`; did you mean `description`?")]),
]

@Suite struct ParsingExactValueTests {
    @Test(arguments: exactValueErrorCases)
    func reportsEveryProblem(_ c: PlanErrorCase) {
        #expect(ParsingSupport.triples(ParsingSupport.problems(c.yaml)) == c.expected)
    }

    @Test(arguments: [
        ("9223372036854775807", YAMLScalar.Value.int(.max)), ("-9223372036854775808", .int(.min)),
        ("+9223372036854775807", .int(.max)), ("9223372036854775808", .integerOutOfRange),
        ("-9223372036854775809", .integerOutOfRange), ("123456789012345678901234567890", .integerOutOfRange),
        ("0x7FFFFFFFFFFFFFFF", .int(.max)), ("0x8000000000000000", .integerOutOfRange),
        ("0xFFFFFFFFFFFFFFFFF", .integerOutOfRange), ("0o777777777777777777777", .int(.max)),
        ("0o1000000000000000000000", .integerOutOfRange), ("007", .int(7)), ("0x0", .int(0)),
        ("0x-1", .string("0x-1")), ("0x+1F", .string("0x+1F")), ("0o+7", .string("0o+7")), ("0o-7", .string("0o-7")),
        ("0x", .string("0x")), ("0o", .string("0o")), ("0o8", .string("0o8")), ("0xG", .string("0xG")),
        ("0X1F", .string("0X1F")), ("-0x1F", .string("-0x1F")), ("+", .string("+")), ("1e400", .double(.infinity)),
        ("9223372036854775808.0", .double(9223372036854775808.0)),
    ])
    func integersAreSixtyFourBitCoreSchemaForms(_ text: String, _ expected: YAMLScalar.Value) {
        #expect(YAMLScalar(text: text, isPlain: true).value == expected)
    }

    @Test func standardTagsAreHonoured() throws {
        let plan = try ParsingSupport.load("""
            version: !!int "1"
            max_parallel: !!int 0x4
            subtasks:
              - id: a
                run: !!str 12
                cache: !!bool "false"
                with:
                  s: !!str 12
                  t: ! 12
                  i: !!int "12"
                  b: !!bool "true"
                  f: !!float 1
                  g: !!float "2.5"
                  n: !!null ""
                  q: !!str null
                  l: !!seq [1]
                  m: !!map {k: v}
            """)
        #expect(plan.version == 1)
        #expect(plan.maxParallel == 4)
        let a = try #require(plan["a"])
        #expect(a.run == "12")
        #expect(a.cache == false)
        #expect(a.with == .object([
            "s": .string("12"), "t": .string("12"), "i": .int(12), "b": .bool(true), "f": .double(1), "g": .double(2.5),
            "n": .null, "q": .string("null"), "l": .array([.int(1)]), "m": .object(["k": .string("v")]),
        ]))
    }

    @Test func keysAreComparedByTheirBytes() throws {
        // Nine keys or more take the reader's dictionary path; fewer its scan.
        for count in [2, 12] {
            var yaml = "k\u{E9}: 1\nke\u{301}: 2\n"
            for i in 2..<count { yaml += "x\(i): \(i)\n" }
            var collector = DiagnosticCollector()
            guard case .document(let doc) = YAMLReader.read(yaml, file: "f.yaml", diagnostics: &collector) else {
                Issue.record("expected a document")
                return
            }
            #expect(collector.diagnostics.isEmpty)
            let pairs = try #require(doc.root.flatMap { doc.pairs($0) })
            #expect(pairs.count == count)
            #expect(pairs.prefix(2).compactMap { doc.keyText($0).map { Array($0.unicodeScalars) } }
                == [Array("k\u{E9}".unicodeScalars), Array("ke\u{301}".unicodeScalars)])
        }
        // A merged key is not hidden by an explicit key equal only as a String.
        var collector = DiagnosticCollector()
        let merged = "base: &b {k\u{E9}: 1}\nuse: {<<: *b, ke\u{301}: 2}\n"
        guard case .document(let doc) = YAMLReader.read(merged, file: "f.yaml", diagnostics: &collector) else {
            Issue.record("expected a document")
            return
        }
        let use = try #require(doc.root.flatMap { doc.pairs($0) }?[1].value)
        #expect(doc.pairs(use)?.count == 2)
        // Real duplicates are still found, in small and large mappings.
        for count in [2, 12] {
            var yaml = "k\u{E9}: 1\n"
            for i in 2..<count { yaml += "x\(i): \(i)\n" }
            yaml += "k\u{E9}: 2\n"
            var c = DiagnosticCollector()
            _ = YAMLReader.read(yaml, file: "f.yaml", diagnostics: &c)
            #expect(c.diagnostics.map(\.message) == ["duplicate key `k\u{E9}` (first defined on line 1)"])
        }
    }

    // MARK: Nesting with aliases expanded

    /// A plan whose subtask `a` defines `a0` (nested `depth` lists deep) and
    /// `a1` (`depth` lists around `*a0`), and whose subtask `b` uses `*a1`.
    static func chainedAliases(depth: Int) -> String {
        let open = String(repeating: "[", count: depth), close = String(repeating: "]", count: depth)
        return """
            version: 1
            subtasks:
              - id: a
                run: make
                with:
                  a0: &a0 \(open)x\(close)
                  a1: &a1 \(open)*a0\(close)
              - id: b
                run: make
                with: *a1
            """
    }

    @Test func nestingAtTheLimitThroughAliasesLoads() throws {
        // Subtask `a`'s `with` mapping is level 4: `a1` reaches 4 + 2 * 126 = 256.
        let plan = try ParsingSupport.load(Self.chainedAliases(depth: 126))
        var value = try #require(plan["b"]?.with)
        var levels = 0
        while case .array(let items) = value, let first = items.first {
            levels += 1
            value = first
        }
        #expect(levels == 252)
        #expect(value == .string("x"))
        #expect(plan["b"]?.with?.canonicalJSON.count == 2 * 252 + 3)
    }

    @Test func nestingPastTheLimitThroughAliasesIsRefused() {
        // `*a0` inside `a1` would reach level 4 + 2 * 127 = 258.
        let found = ParsingSupport.triples(ParsingSupport.problems(Self.chainedAliases(depth: 127)))
        #expect(found == [Expected(7, 15 + 127, "YAML nesting is deeper than 256 levels")])
    }

    @Test func aliasUsedTooDeepIsRefusedWhereItIsUsed() {
        // `a0` alone fits; placed under 200 more lists it does not.
        let yaml = "version: 1\nx: &a0 " + String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
            + "\ny: " + String(repeating: "[", count: 200) + "*a0" + String(repeating: "]", count: 200) + "\n"
        let found = ParsingSupport.triples(ParsingSupport.problems(yaml))
        #expect(found == [Expected(3, 4 + 200, "YAML nesting is deeper than 256 levels")])
    }

    // MARK: Bounded validation

    @Test func manyMissesValidateInLinearTime() throws {
        // 10,000 subtasks, each with an unknown dependency and an unknown
        // agent among 2,000: every miss searching every name would be 10^8
        // and 2 * 10^7 edit distances.
        var yaml = "version: 1\nagents:\n"
        for i in 0..<2_000 { yaml += "  agent-\(i): {}\n" }
        yaml += "subtasks:\n"
        for i in 0..<10_000 {
            yaml += "  - {id: task-\(i), run: make, agent: agnet-\(i % 2_000), depends_on: [tsak-\(i)]}\n"
        }
        let clock = ContinuousClock()
        var found: [Diagnostic] = []
        let elapsed = clock.measure { found = ParsingSupport.problems(yaml) }
        #expect(found.count == 20_000)
        // The first misses still get their suggestions.
        #expect(found.first?.message == "agent `agnet-0` is not defined; did you mean `agent-0`?")
        #expect(found.dropFirst().first?.message == "subtask `task-0` depends on unknown subtask `tsak-0`; did you mean `task-0`?")
        #expect(elapsed < .seconds(20), "validation took \(elapsed)")
    }

    @Test func suggestionsKeepTheirOrderAndBounds() {
        #expect(Suggestion.closest(to: "biuld", in: ["test", "build", "built"]) == "build")
        #expect(Suggestion.closest(to: "Build", in: ["build"]) == "build")
        #expect(Suggestion.closest(to: "xyz", in: ["build"]) == nil)
        // Ties go to the earliest candidate, whatever its length.
        #expect(Suggestion.closest(to: "abcd", in: ["abcde", "abc", "abce"]) == "abcde")
        #expect(Suggestion.editDistance("kitten", "sitting") == 3)
        #expect(Suggestion.editDistance("kitten", "sitting", limit: 2) == 3)
        #expect(Suggestion.editDistance("", "abc") == 3)
        // A spent budget suggests nothing more, and costs nothing more.
        var set = Suggestion.Candidates(["alpha", "beta"], budget: 70)
        #expect(set.closest(to: "alhpa") == "alpha")
        #expect(set.closest(to: "alhpa") == nil)
    }
}

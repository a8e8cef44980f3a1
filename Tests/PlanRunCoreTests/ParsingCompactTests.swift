import Foundation
import Testing
@testable import PlanRunCore

/// The compact forms the parser keeps: `with:` as canonical JSON text,
/// sequences of consecutive nodes as ranges, plain scalars resolved from
/// their bytes. Each must read exactly as the full forms would.
@Suite struct ParsingCompactTests {
    @Test func canonicalJSONRoundTripsEveryKindOfValue() {
        let value: JSONValue = .object([
            "ints": .array([.int(0), .int(-1), .int(Int.max), .int(Int.min)]),
            "floats": .array([.double(1.0), .double(-0.5), .double(1e20), .double(5e-324), .double(2.5e-7)]),
            "strings": .array([.string(""), .string("a\"b\\c"), .string("line\nnext\r\ttab"),
                               .string("\u{1}\u{1F}"), .string("é e\u{301} 日本 🙂"), .string("${{ not }}")]),
            "other": .array([.null, .bool(true), .bool(false), .array([]), .object([:])]),
            "nested": .object(["b": .object(["z": .int(1), "a": .array([.array([.int(2)])])])]),
        ])
        let compact = CanonicalJSON(value)
        #expect(compact.bytes == Array(value.canonicalJSON.utf8))
        #expect(compact.value == value)
        // Integers and floats stay apart.
        #expect(CanonicalJSON(.double(3)).value == .double(3))
        #expect(CanonicalJSON(.int(3)).value == .int(3))
    }

    @Test func withIsWrittenAsTheCanonicalJSONOfItsValue() throws {
        let plan = try ParsingSupport.load("""
            version: 1
            subtasks:
              - id: a
                run: make
                with:
                  zeta: [1, -2, 0x1F, 0o17, +3, 2.5, 1e3, .5, "7", '8', true, False, null, ~, "", x]
                  alpha: {k: NULL, "é": 2, b: [[1, 2], [3]], e: []}
                  text: "quote \\" and \\\\ and \\t"
            """)
        let a = try #require(plan["a"])
        let expected: JSONValue = .object([
            "zeta": .array([.int(1), .int(-2), .int(31), .int(15), .int(3), .double(2.5), .double(1000), .double(0.5),
                            .string("7"), .string("8"), .bool(true), .bool(false), .null, .null, .string(""), .string("x")]),
            "alpha": .object(["k": .null, "é": .int(2), "b": .array([.array([.int(1), .int(2)]), .array([.int(3)])]),
                              "e": .array([])]),
            "text": .string("quote \" and \\ and \t"),
        ])
        #expect(a.with == expected)
        #expect(a.withJSON?.text == expected.canonicalJSON)
    }

    @Test func plainScalarsResolveAsTheCoreSchemaSays() {
        let cases: [(String, YAMLScalar.Value)] = [
            ("", .null), ("~", .null), ("null", .null), ("Null", .null), ("NULL", .null), ("nULL", .string("nULL")),
            ("~x", .string("~x")), ("true", .bool(true)), ("TRUE", .bool(true)), ("tRUE", .string("tRUE")),
            ("false", .bool(false)), ("no", .string("no")), ("0", .int(0)), ("-0", .int(0)), ("007", .int(7)),
            ("0x", .string("0x")), ("0x-1", .string("0x-1")), ("0xFF", .int(255)), ("0o777", .int(511)),
            ("9223372036854775807", .int(.max)), ("-9223372036854775808", .int(.min)),
            ("9223372036854775808", .integerOutOfRange), ("1_000", .string("1_000")), ("+", .string("+")),
            ("-", .string("-")), (".", .string(".")), ("1e", .string("1e")), ("-1e-2", .double(-0.01)),
            (".inf", .double(.infinity)), ("+.Inf", .double(.infinity)), ("-.INF", .double(-.infinity)),
            ("x1", .string("x1")), ("1x", .string("1x")),
        ]
        for (text, expected) in cases {
            #expect(YAMLScalar(text: text, isPlain: true).value == expected, "\(text)")
        }
        if case .double(let d) = YAMLScalar(text: ".NaN", isPlain: true).value { #expect(d.isNaN) } else {
            Issue.record(".NaN is not a float")
        }
    }

    @Test func longListsAndMixedListsKeepEveryItemInOrder() throws {
        let count = 100_000
        let numbers = (0..<count).map(String.init).joined(separator: ", ")
        let plan = try ParsingSupport.load("""
            version: 1
            subtasks:
              - id: a
                run: make
                with:
                  data: [\(numbers)]
                  mixed: [1, {k: v}, 2, [3, &x 4], *x, 5, *x]
                  aliases: [*x, *x, 6]
            """)
        guard case .object(let with)? = plan["a"]?.with, case .array(let data)? = with["data"] else {
            Issue.record("with.data is not a list")
            return
        }
        #expect(data == (0..<count).map { JSONValue.int($0) })
        #expect(with["mixed"] == .array([.int(1), .object(["k": .string("v")]), .int(2), .array([.int(3), .int(4)]),
                                         .int(4), .int(5), .int(4)]))
        #expect(with["aliases"] == .array([.int(4), .int(4), .int(6)]))
    }

    @Test func problemsInsideALongListKeepTheirPositions() {
        let numbers = (0..<5000).map(String.init).joined(separator: ", ")
        let found = ParsingSupport.triples(ParsingSupport.problems("""
            version: 1
            subtasks:
              - id: a
                run: make
                with: {data: [\(numbers), 99999999999999999999, .inf]}
            """))
        let column = 19 + numbers.utf8.count + 2
        #expect(found.map(\.line) == [5, 5])
        #expect(found.map(\.column) == [column, column + 22])
        #expect(found.first?.message.contains("99999999999999999999") == true)
    }

    @Test func problemsPastColumn65535KeepTheirColumns() {
        let numbers = (0..<20000).map(String.init).joined(separator: ", ")
        let found = ParsingSupport.triples(ParsingSupport.problems("""
            version: 1
            subtasks:
              - id: a
                run: make
                with: {data: [\(numbers), 99999999999999999999], more: [1, .nan]}
            """))
        let column = 19 + numbers.utf8.count + 2
        #expect(column > 65535)
        #expect(found.map(\.line) == [5, 5])
        #expect(found.map(\.column) == [column, column + 33])
    }

    /// Plain items of a list are kept compactly (no record of their own);
    /// their problems keep the exact line and column: across lines, after
    /// multi-byte characters, in block lists, around items that break the
    /// run, through an alias.
    @Test func compactListItemsKeepTheirLinesAndColumns() {
        let found = ParsingSupport.triples(ParsingSupport.problems("""
            version: 1
            subtasks:
              - id: build
                run: make
              - id: test
                run: make test
                depends_on: [build,
                  biuld, "build", é, x]
                with:
                  a: &list [1, 2,
                     3, 99999999999999999999]
                  b:
                    - 1
                    - .inf
                  c: [-.inf, {k: v}, .nan]
                  d: *list
                  e: [ 日本, 1, 1e999 ]
            """))
        let big = "integer `99999999999999999999` does not fit in 64 bits (-9223372036854775808 to 9223372036854775807)"
        func notFinite(_ text: String) -> String {
            "number `\(text)` in `with` is infinite or not a number, which JSON cannot hold"
        }
        #expect(found == [
            Expected(8, 7, "subtask `test` depends on unknown subtask `biuld`; did you mean `build`?"),
            Expected(8, 14, "subtask `test` lists dependency `build` more than once"),
            Expected(8, 23, "subtask `test` depends on unknown subtask `é`"),
            Expected(8, 26, "subtask `test` depends on unknown subtask `x`"),
            Expected(11, 13, big),
            Expected(11, 13, big),
            Expected(14, 11, notFinite(".inf")),
            Expected(15, 11, notFinite("-.inf")),
            Expected(15, 26, notFinite(".nan")),
            Expected(17, 19, notFinite("1e999")),
        ])
    }
}

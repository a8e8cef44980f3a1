import Testing
@testable import PlanRunCore

/// `Verdict.of` without a disk: history and output state in, skip /
/// restore / run with the reason out.
@Suite struct CachingVerdictTests {
    static let old = CacheKey(components: ["command": "c1", "input:a.c": "i1", "dep:lib": "d1"])
    static func key(_ components: [String: String]) -> ActionKey {
        ActionKey(cacheKey: CacheKey(components: components), dependencyDigests: [:])
    }
    static let same = key(old.components)
    static func last(_ key: CacheKey) -> HistoryEntry {
        HistoryEntry(key: key, resultDigest: "r", result: [], outputs: [])
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var key: ActionKey
        var forced = false
        var last: HistoryEntry?
        var intact: Bool?
        var previous: CacheKey?
        var expected: Verdict
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "same key, outputs intact", key: same, last: last(old), intact: true, expected: .skip),
        Case(name: "same key, outputs changed", key: same, last: last(old), intact: false,
             expected: .restore(otherwise: .outputsMissing)),
        Case(name: "forced", key: same, forced: true, last: last(old), intact: true, expected: .run(.forced)),
        Case(name: "never ran", key: same, expected: .restore(otherwise: .neverRan)),
        Case(name: "input changed", key: key(["command": "c1", "input:a.c": "i2", "dep:lib": "d1"]),
             last: last(old), previous: old, expected: .restore(otherwise: .inputChanged(path: "a.c"))),
        Case(name: "command changed", key: key(["command": "c2", "input:a.c": "i2", "dep:lib": "d1"]),
             last: last(old), previous: old, expected: .restore(otherwise: .commandChanged)),
        Case(name: "dependency changed", key: key(["command": "c1", "input:a.c": "i1", "dep:lib": "d2"]),
             last: last(old), previous: old, expected: .restore(otherwise: .dependencyChanged(id: "lib"))),
        Case(name: "components not recorded", key: key(["command": "c2"]), last: last(old), previous: nil,
             expected: .restore(otherwise: .definitionChanged)),
    ]

    @Test(arguments: cases) func verdict(_ c: Case) {
        let verdict = Verdict.of(key: c.key, forced: c.forced, last: c.last, outputsIntact: c.intact,
                                 previous: c.previous, dependsOn: ["lib"])
        #expect(verdict == c.expected)
    }
}

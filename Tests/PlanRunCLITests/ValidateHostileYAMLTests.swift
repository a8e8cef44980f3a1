import Foundation
import Testing

/// `planrun validate` on YAML built to crash or exhaust a reader: a clear
/// error and exit 2, never a signal.
@Suite struct ValidateHostileYAMLTests {
    @Test func chainedAliasesPastTheNestingLimitAreAnError() throws {
        // 100 anchors, each nesting the previous one 240 lists deep: about
        // 24,000 levels once expanded.
        var yaml = "version: 1\n"
        let open = String(repeating: "[", count: 240), close = String(repeating: "]", count: 240)
        yaml += "a0: &a0 \(open)x\(close)\n"
        for i in 1..<100 { yaml += "a\(i): &a\(i) \(open)*a\(i - 1)\(close)\n" }
        yaml += "subtasks: [{id: a, run: make, with: *a99}]\n"
        // Aliases may add as many nodes as the file has bytes; a long comment
        // lifts that budget past the chain's 1.2 million nodes, so that only
        // the nesting limit stands between the chain and a recursion 24,000
        // levels deep.
        yaml += "#" + String(repeating: "x", count: 1_500_000) + "\n"
        let dir = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try yaml.write(to: dir.appendingPathComponent("plan.yaml"), atomically: true, encoding: .utf8)
        let result = try PlanRunBinary.run(["validate", "plan.yaml"], in: dir)
        #expect(result.status == 2) // not 139 (SIGSEGV)
        // `*a0` in `a1` (line 3) is the first alias to reach past level 256.
        #expect(result.stderr.contains("plan.yaml:3:249: error: YAML nesting is deeper than 256 levels"), "\(result.stderr)")
    }
}

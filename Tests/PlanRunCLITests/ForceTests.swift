import Foundation
import Testing

/// `planrun build --force`: forced subtasks run even when up to date;
/// without targets every subtask is forced, with targets only those.
@Suite struct ForceTests {
    private static let plan = """
        version: 1
        subtasks:
          - id: a
            run: echo a >> runs.txt; echo a > a.txt
            outputs: [a.txt]
          - id: b
            run: echo b >> runs.txt; cat a.txt > b.txt
            depends_on: [a]
            outputs: [b.txt]
        """

    private func statuses(_ result: PlanRunBinary.Result) throws -> [String: String] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let results = try #require(object["results"] as? [String: [String: Any]])
        return results.mapValues { $0["status"] as? String ?? "?" }
    }

    @Test func forceRunsUpToDateSubtasks() throws {
        let dir = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.plan.write(to: dir.appendingPathComponent("plan.yaml"), atomically: true, encoding: .utf8)

        #expect(try PlanRunBinary.run(["build", "--json"], in: dir).status == 0)
        #expect(try statuses(PlanRunBinary.run(["build", "--json"], in: dir)) == ["a": "cached", "b": "cached"])

        // A named target: only it is forced (b is not selected at all).
        let one = try PlanRunBinary.run(["build", "a", "--force", "--json"], in: dir)
        #expect(one.status == 0)
        #expect(try statuses(one) == ["a": "done"])

        // No target: everything is forced.
        let all = try PlanRunBinary.run(["build", "--force", "--json"], in: dir)
        #expect(all.status == 0)
        #expect(try statuses(all) == ["a": "done", "b": "done"])

        let runs = try String(contentsOf: dir.appendingPathComponent("runs.txt"), encoding: .utf8)
        #expect(runs == "a\nb\na\na\nb\n")
        // Forced runs are recorded like any success: the next build skips.
        #expect(try statuses(PlanRunBinary.run(["build", "--json"], in: dir)) == ["a": "cached", "b": "cached"])
    }
}

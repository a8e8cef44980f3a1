import Foundation
import Testing

/// `planrun build` when nothing changed since the last all-cached build:
/// answered from the up-to-date stamp without running or loading anything,
/// and never when `--json`, `--force` or a `clean` says otherwise.
@Suite struct UpToDateTests {
    private static let plan = """
        version: 1
        subtasks:
          - id: a
            run: echo a >> runs.txt; cp in.txt a.txt
            inputs: [in.txt]
            outputs: [a.txt]
          - id: b
            run: echo b >> runs.txt; cat a.txt a.txt > b.txt
            depends_on: [a]
            outputs: [b.txt]
        """

    @Test func noOpRebuildUsesTheStampUntilSomethingChanges() async throws {
        let dir = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.plan.write(to: dir.appendingPathComponent("plan.yaml"), atomically: true, encoding: .utf8)
        try "one\n".write(to: dir.appendingPathComponent("in.txt"), atomically: true, encoding: .utf8)
        func runs() throws -> String { try String(contentsOf: dir.appendingPathComponent("runs.txt"), encoding: .utf8) }

        #expect(try PlanRunBinary.run(["build"], in: dir).status == 0)
        // Past the racy window, an all-cached build writes the stamp...
        try await Task.sleep(for: .milliseconds(2200)) // not Thread.sleep: it would hold a test thread
        let slow = try PlanRunBinary.run(["build"], in: dir)
        #expect(slow.status == 0)
        #expect(slow.stdout.contains("cached a"))
        #expect(!slow.stdout.contains("no work to do"))
        // ...and the next one answers from it.
        let fast = try PlanRunBinary.run(["build"], in: dir)
        #expect(fast.status == 0)
        #expect(fast.stdout.contains("0 done, 2 cached of 2"))
        #expect(fast.stdout.contains("no work to do"))
        // Also with the options read before ArgumentParser (`UpToDateProbe`)...
        #expect(try PlanRunBinary.run(["build", "-j", "2", "plan.yaml"], in: dir).stdout.contains("no work to do"))
        // ...and never for a command line ArgumentParser refuses.
        let refused = try PlanRunBinary.run(["build", "-j", "0"], in: dir)
        #expect(refused.status == 64)
        #expect(!refused.stdout.contains("no work to do"))
        // From another folder, through a relative path, too.
        let parent = dir.deletingLastPathComponent()
        let relative = try PlanRunBinary.run(["build", dir.lastPathComponent + "/plan.yaml"], in: parent)
        #expect(relative.stdout.contains("no work to do"))
        // A target selection is another question: the full path answers it.
        #expect(!(try PlanRunBinary.run(["build", "a"], in: dir).stdout.contains("no work to do")))
        // --json needs every subtask's result: the full path, same answer.
        let json = try PlanRunBinary.run(["build", "--json"], in: dir)
        #expect(json.status == 0)
        #expect(json.stdout.contains("\"cached\": 2"))
        #expect(try runs() == "a\nb\n")

        // An edited input is seen at once.
        try "two\n".write(to: dir.appendingPathComponent("in.txt"), atomically: true, encoding: .utf8)
        let changed = try PlanRunBinary.run(["build"], in: dir)
        #expect(changed.status == 0)
        #expect(!changed.stdout.contains("no work to do"))
        #expect(try runs() == "a\nb\na\nb\n")
        #expect(try String(contentsOf: dir.appendingPathComponent("b.txt"), encoding: .utf8) == "two\ntwo\n")
    }

    @Test func cleanRemovesTheStamp() async throws {
        let dir = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.plan.write(to: dir.appendingPathComponent("plan.yaml"), atomically: true, encoding: .utf8)
        try "one\n".write(to: dir.appendingPathComponent("in.txt"), atomically: true, encoding: .utf8)
        #expect(try PlanRunBinary.run(["build"], in: dir).status == 0)
        try await Task.sleep(for: .milliseconds(2200)) // not Thread.sleep: it would hold a test thread
        #expect(try PlanRunBinary.run(["build"], in: dir).status == 0)
        #expect(try PlanRunBinary.run(["build"], in: dir).stdout.contains("no work to do"))

        // Without the state the full path must decide again (here it
        // restores from the cache store, which `--state` keeps).
        #expect(try PlanRunBinary.run(["clean", "--state"], in: dir).status == 0)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent(".planrun/uptodate").path))
        let after = try PlanRunBinary.run(["build"], in: dir)
        #expect(after.status == 0)
        #expect(!after.stdout.contains("no work to do"))
        #expect(after.stdout.contains("restored a"))
    }
}

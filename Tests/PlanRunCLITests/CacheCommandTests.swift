import Foundation
import Testing
import PlanRunTestSupport
@testable import PlanRunCore

/// `explain`, `clean`, `approve` and `retry`, run as the real binary.
@Suite struct CacheCommandTests {
    final class Folder: PlanFolder {
        @discardableResult
        func run(_ args: String...) throws -> PlanRunBinary.Result { try PlanRunBinary.run(args, in: url) }
    }

    static let copyPlan = """
        version: 1
        subtasks:
          - id: copy
            run: mkdir -p out && cp in.txt out/copy.txt
            inputs: [in.txt]
            outputs: [out/copy.txt]
          - id: shout
            run: tr a-z A-Z < out/copy.txt > shout.txt
            outputs: [shout.txt]
            depends_on: [copy]
        """

    @Test func explainNeverRanAndUnknownSubtask() throws {
        let f = try Folder(plan: Self.copyPlan)
        try f.write("in.txt", "hi\n")
        let r = try f.run("explain", "copy")
        #expect(r.status == 0)
        #expect(r.stdout.hasPrefix("`copy` would run: never ran\n  key:                 "))
        #expect(r.stdout.hasSuffix("  last successful key: none\n"))
        #expect(!f.exists(".planrun"))

        let unknown = try f.run("explain", "copyy")
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("no subtask named `copyy`; did you mean `copy`?"))
        #expect(try f.run("explain").status == 64)
    }

    @Test func explainReportsAMissingInput() throws {
        let f = try Folder(plan: Self.copyPlan)
        let r = try f.run("explain", "copy")
        #expect(r.status == 1)
        #expect(r.stdout.hasPrefix("`copy` cannot be checked: plan.yaml:5:14: input `in.txt` of subtask `copy` matches no file"))
    }

    @Test func approveRecordsTheContentDigest() throws {
        let f = try Folder(plan: "approval: required\n" + Self.copyPlan)
        let r = try f.run("approve")
        #expect(r.status == 0)
        let digest = Digest.sha256Hex(Array(f.read("plan.yaml")!.utf8))
        #expect(r.stdout == "approved `plan.yaml` (sha256 \(digest))\n")
        #expect(f.read(".planrun/approval.json")?.contains("\"digest\":\"\(digest)\"") == true)
    }

    @Test func cleanRemovesOutputsStateAndCache() throws {
        let f = try Folder(plan: Self.copyPlan)
        try f.write("in.txt", "hi\n")
        #expect(try f.run("build").status == 0)
        #expect(f.exists("out/copy.txt") && f.exists("shout.txt"))
        let outputs = try f.run("clean", "--outputs")
        #expect(outputs.status == 0)
        #expect(outputs.stdout == "removed 2 outputs\n")
        #expect(!f.exists("out/copy.txt") && !f.exists("shout.txt") && f.exists("in.txt"))
        #expect(f.exists(".planrun/state.db"))
        let all = try f.run("clean")
        #expect(all.stdout.hasPrefix("removed 0 outputs\nremoved the state\n"))
        #expect(!f.exists(".planrun/state.db") && !f.exists(".planrun/logs"))
    }

    @Test func cleanNeverFollowsAParentLinkOutOfThePlan() throws {
        let outside = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: outside) }
        try Data("keep".utf8).write(to: outside.appendingPathComponent("copy.txt"))
        let f = try Folder(plan: Self.copyPlan)
        try FileManager.default.createSymbolicLink(at: f.url.appendingPathComponent("out"), withDestinationURL: outside)
        let r = try f.run("clean", "--outputs")
        #expect(r.status == 1)
        #expect(r.stderr.contains("refusing path `out/copy.txt`: it leaves the plan's folder"))
        #expect(FileManager.default.fileExists(atPath: outside.appendingPathComponent("copy.txt").path))
    }

    @Test func retryRerunsFailedAndBlockedSubtasks() throws {
        let f = try Folder(plan: """
            version: 1
            subtasks:
              - id: ok
                run: echo ok > ok.txt
              - id: flaky
                run: test -f allow && echo fine > flaky.txt
                depends_on: [ok]
              - id: after
                run: cat flaky.txt > after.txt
                depends_on: [flaky]
            """)
        let first = try f.run("build")
        #expect(first.status == 1)
        #expect(try f.run("retry", "ok").status == 1) // `ok` did not fail
        try f.write("allow", "")
        let retry = try f.run("retry")
        #expect(retry.status == 0)
        #expect(f.read("after.txt") == "fine\n")
        let again = try f.run("retry")
        #expect(again.status == 0)
        #expect(again.stdout.hasPrefix("nothing to retry"))
    }

    @Test func retryWithoutHistoryIsAnError() throws {
        let f = try Folder(plan: Self.copyPlan)
        let r = try f.run("retry")
        #expect(r.status == 1)
        #expect(r.stderr == "error: no runs recorded for `plan.yaml` yet; run `planrun build` first\n")
    }

    /// Read-only commands leave `.planrun/` byte-identical.
    @Test(arguments: [
        ["explain", "copy"], ["explain", "shout"], ["plan"], ["plan", "--format", "json"],
        ["validate", "plan.yaml"], ["list"], ["build", "--dry-run"],
    ])
    func readOnlyCommandsChangeNothing(_ args: [String]) throws {
        try Self.expectNoChange(args)
    }

    /// `status` opens the state read-only (immutable when no build runs), so
    /// SQLite creates no `state.db-wal` or `state.db-shm`.
    @Test(arguments: [["status"], ["status", "copy"]])
    func statusChangesNothing(_ args: [String]) throws {
        try Self.expectNoChange(args)
    }

    static func expectNoChange(_ args: [String]) throws {
        let f = try Folder(plan: Self.copyPlan)
        try f.write("in.txt", "hi\n")
        #expect(try f.run("build").status == 0)
        try f.write("in.txt", "changed\n")
        let before = try snapshotFolder(f.url.path)
        do {
            _ = try PlanRunBinary.run(args, in: f.url)
            #expect(try snapshotFolder(f.url.path) == before, "`planrun \(args.joined(separator: " "))` changed files")
        }
    }
}

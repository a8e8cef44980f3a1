import Foundation
import GRDB
import Testing
@testable import PlanRunCore

/// The run's private folder for context and result files is removed when
/// the run ends, whatever the subtasks left in it.
@Suite struct ExecutionWorkDirectoryTests {
    func makeFolder() throws -> String { try makeTemporaryFolder("planrun-work") }

    @Test func removesTheFilesAndTheFolder() throws {
        let path = try makeFolder()
        for i in 0..<300 {
            try Data("{}\n".utf8).write(to: URL(fileURLWithPath: "\(path)/t\(i).context.json"))
        }
        try Data().write(to: URL(fileURLWithPath: "\(path)/.hidden"))
        try Data().write(to: URL(fileURLWithPath: "\(path)/..x"))
        BuildSession.removeWorkDirectory(path)
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func removesWhatASubtaskLeftInAFolderToo() throws {
        let path = try makeFolder()
        try Data("{}\n".utf8).write(to: URL(fileURLWithPath: "\(path)/a.context.json"))
        try FileManager.default.createDirectory(atPath: "\(path)/a.result/deep", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(path)/a.result/deep/file"))
        try Data("{}\n".utf8).write(to: URL(fileURLWithPath: "\(path)/z.context.json"))
        BuildSession.removeWorkDirectory(path)
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func aMissingFolderIsNotAnError() {
        BuildSession.removeWorkDirectory("/nonexistent-planrun-\(UUID().uuidString)")
    }

    /// A build killed with SIGKILL leaves its run `in_progress` and its work
    /// folder; the next build closes the run and removes that folder (and
    /// nothing for an id planrun would not make).
    @Test func nextBuildRemovesAKilledRunsFolder() async throws {
        let planDir = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: planDir) }
        let stateDir = planDir + "/.planrun"
        let store = try StateStore(directory: stateDir)
        let killed = "20260101-000000-abc123"
        let odd = "x"
        for id in [killed, odd] {
            try store.beginRun(id: id, plan: "test", planFile: "plan.yaml", pid: 999_999, startedAt: Date(),
                               subtasks: [("a", 0, "shell")])
        }
        let folders = BuildSession.workDirectoryCandidates(stateDirectory: stateDir, runID: killed)
        for folder in folders {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try Data("{}".utf8).write(to: URL(fileURLWithPath: folder + "/a.context.json"))
        }
        let keep = stateDir + "/tmp/" + odd
        try FileManager.default.createDirectory(atPath: keep, withIntermediateDirectories: true)

        let plan = makePlan([task("a")], directory: planDir)
        let summary = try await BuildSession.run(
            plan: plan, configuration: RunConfiguration(jobs: 1, killGrace: .milliseconds(200)),
            runner: FakeCommandRunner([:]), canceller: RunCanceller(), reporter: RecordingReporter())
        #expect(summary.status == .completed)
        for folder in folders { #expect(!FileManager.default.fileExists(atPath: folder)) }
        #expect(FileManager.default.fileExists(atPath: keep))
        let statuses = try await store.database.read { db in
            try String.fetchAll(db, sql: "SELECT status FROM runs WHERE id IN (?, ?) ORDER BY id", arguments: [killed, odd])
        }
        #expect(statuses == ["failed", "failed"])
    }
}

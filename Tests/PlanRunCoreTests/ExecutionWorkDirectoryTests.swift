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

    /// `isNew` is true only when this call created the folder (then it is
    /// empty); a folder that was already there is used but not new.
    @Test func makeWorkDirectorySaysWhetherItCreatedTheFolder() throws {
        let stateDir = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let runID = "20260101-000000-\(UUID().uuidString.prefix(6))"
        let candidates = BuildSession.workDirectoryCandidates(stateDirectory: stateDir, runID: runID)
        let first = try BuildSession.makeWorkDirectory(stateDirectory: stateDir, runID: runID)
        #expect(first.isNew)
        #expect(candidates.contains(first.path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: first.path).isEmpty)
        // Both places taken: the state folder's one is used, not new.
        for folder in candidates { try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        let again = try BuildSession.makeWorkDirectory(stateDirectory: stateDir, runID: runID)
        #expect(!again.isNew)
        #expect(again.path == candidates[1])
        for folder in candidates { BuildSession.removeWorkDirectory(folder) }
    }

    /// A first attempt in a new work folder needs no removal of a result
    /// file; a retry (which may have left one) and a run without a new
    /// folder do.
    @Test(arguments: [true, false])
    func onlyFirstAttemptsInANewFolderSkipTheResultRemoval(isNew: Bool) async throws {
        let work = try makeFolder()
        defer { BuildSession.removeWorkDirectory(work) }
        let plan = makePlan([task("a", retries: 1, backoff: .milliseconds(1))], directory: work)
        var script = FakeCommandRunner.Script()
        script.failingAttempts = [1]
        let runner = FakeCommandRunner(["a": script])
        var executor = Executor(graph: TaskGraph(plan: plan), configuration: RunConfiguration(jobs: 1),
                                runner: runner, workDirectory: work)
        executor.workDirectoryIsNew = isNew
        let summary = await executor.run(reporter: RecordingReporter())
        #expect(summary.status == .completed)
        let records = await runner.log.records.sorted { $0.attempt < $1.attempt }
        #expect(records.map(\.attempt) == [1, 2])
        #expect(records.map(\.request.resultFileIsAbsent) == [isNew, false])
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

    /// Context files in the work folder are reused by later attempts: each
    /// subtask still reads its own context (its id in it), and no more
    /// files are made than attempts run at once (plus one for a slot given
    /// away before its attempt is recorded).
    @Test func contextFilesAreReusedAndEachSubtaskReadsItsOwn() async throws {
        let dir = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let work = dir + "/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let ids = (0..<12).map { "s\($0)" }
        let plan = makePlan(ids.map { task($0, run: "cp \"$PLANRUN_CONTEXT\" $PLANRUN_SUBTASK.ctx; echo \"$PLANRUN_CONTEXT\"") },
                            directory: dir)
        var executor = Executor(graph: TaskGraph(plan: plan), configuration: RunConfiguration(jobs: 2),
                                runner: ProcessCommandRunner(), workDirectory: work)
        executor.workDirectoryIsNew = true
        let summary = await executor.run(reporter: RecordingReporter())
        #expect(summary.status == .completed)
        var paths = Set<String>()
        for id in ids {
            let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/\(id).ctx"))
            let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(json["subtask_id"] as? String == id)
            paths.insert(summary.report(id)?.resultText ?? "")
        }
        #expect(paths.count <= 3, "context files used: \(paths.sorted())")
        #expect(paths.allSatisfy { $0.hasPrefix(work + "/context-") })
    }
}

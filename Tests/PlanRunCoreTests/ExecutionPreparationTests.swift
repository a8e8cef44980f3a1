#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GRDB
import Testing
@testable import PlanRunCore

/// `BuildPreparation`: the state folder's set-up done ahead, on its own
/// thread, and what a build does with it.
@Suite struct ExecutionPreparationTests {
    func makeFolder() throws -> String { try makeTemporaryFolder("planrun-prep") }

    /// With a database, it takes the lock, closes a killed run, and reads
    /// the durations and the cache's history; a build then uses all of it
    /// and runs to the end.
    @Test func preparesAnExistingStateAndTheBuildUsesIt() async throws {
        let planDir = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: planDir) }
        let stateDir = planDir + "/.planrun"
        do {
            let store = try StateStore(directory: stateDir)
            try store.beginRun(id: "20260101-000000-abc123", plan: "test", planFile: "plan.yaml", pid: 999_999,
                               startedAt: Date(), subtasks: [("a", 0, "shell")])
            try store.attemptFinished(runID: "20260101-000000-abc123", subtask: "a", attempt: 1, status: "done",
                                      startedAt: Date(timeIntervalSince1970: 10), completedAt: Date(timeIntervalSince1970: 12),
                                      exitCode: 0, error: nil, result: nil, resultDigest: nil, cacheKey: nil)
            let history = DatabaseSubtaskHistory(reader: store.database, writer: store.database)
            try history.save(HistoryEntry(key: "k", resultDigest: "r", result: [], outputs: []), for: "a")
        }
        let pending = try #require(BuildPreparation.start(directory: stateDir, writeBehind: false))
        let prepared = try #require(pending.wait())
        #expect(prepared.durations == ["a": 2])
        #expect(try prepared.cacheState.history.entry(for: "a")?.key == "k")
        let killed = try await prepared.store.database.read { db in
            try String.fetchOne(db, sql: "SELECT status FROM runs WHERE id = '20260101-000000-abc123'")
        }
        #expect(killed == "failed")

        let plan = makePlan([task("a")], directory: planDir)
        let summary = try await BuildSession.run(
            plan: plan, configuration: RunConfiguration(jobs: 1), prepared: prepared, makeCache: { _ in NoBuildCache() },
            runner: FakeCommandRunner([:]), canceller: RunCanceller(), reporter: RecordingReporter())
        #expect(summary.status == .completed)
        let runs = try await prepared.store.database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM runs") }
        #expect(runs == 2)
    }

    /// No database yet: nothing starts (a first build creates the folder
    /// only once the plan is valid).
    @Test func nothingStartsWithoutADatabase() throws {
        let planDir = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: planDir) }
        #expect(BuildPreparation.start(directory: planDir + "/.planrun", writeBehind: false) == nil)
        #expect(!FileManager.default.fileExists(atPath: planDir + "/.planrun"))
    }

    /// Another process holds the build lock: the preparation gives up (nil)
    /// and the build reports the busy lock itself.
    @Test func aHeldLockMakesItGiveUp() async throws {
        let planDir = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: planDir) }
        let stateDir = planDir + "/.planrun"
        _ = try StateStore(directory: stateDir)
        // A Python child takes the same POSIX lock (fcntl.lockf) and waits.
        let ready = stateDir + "/locked"
        let script = "import fcntl,sys,time\nf=open(sys.argv[1],'a+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nopen(sys.argv[2],'w').close()\ntime.sleep(300)\n"
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = ["python3", "-c", script, stateDir + "/build.lock", ready]
        try holder.run()
        defer { kill(holder.processIdentifier, SIGKILL); holder.waitUntilExit() }
        // Generous: under a parallel suite on two cores, starting Python
        // has taken over 20 s.
        let deadline = ContinuousClock.now + .seconds(120)
        while !FileManager.default.fileExists(atPath: ready), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        try #require(FileManager.default.fileExists(atPath: ready), "the lock holder did not start")
        let pending = try #require(BuildPreparation.start(directory: stateDir, writeBehind: false))
        #expect(pending.wait() == nil)
        await #expect(throws: BuildSession.Failure.self) {
            _ = try await BuildSession.run(
                plan: makePlan([task("a")], directory: planDir), configuration: RunConfiguration(jobs: 1),
                prepared: nil, makeCache: { _ in NoBuildCache() }, runner: FakeCommandRunner([:]),
                canceller: RunCanceller(), reporter: RecordingReporter())
        }
    }

    /// Old runs go in batches: with more than `keptRuns + pruneSlack`
    /// recorded, all but the newest `keptRuns` are deleted with their rows
    /// and log folders; below that, nothing is.
    @Test func oldRunsArePrunedInBatchesWithTheirLogs() async throws {
        let planDir = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: planDir) }
        let stateDir = planDir + "/.planrun"
        let kept = BuildSession.keptRuns, slack = BuildSession.pruneSlack
        func id(_ n: Int) -> String { String(format: "20260101-%06d-abc123", n) }
        func addRuns(_ range: Range<Int>) throws {
            let store = try StateStore(directory: stateDir)
            for n in range {
                try store.beginRun(id: id(n), plan: "p", planFile: "plan.yaml", pid: getpid(),
                                   startedAt: Date(timeIntervalSince1970: Double(1000 + n)), subtasks: [("a", 0, "shell")])
                try store.finishRun(id: id(n), status: "completed", reason: nil, at: Date(timeIntervalSince1970: Double(1000 + n)))
                try FileManager.default.createDirectory(atPath: stateDir + "/logs/" + id(n), withIntermediateDirectories: true)
                #expect(FileManager.default.createFile(atPath: stateDir + "/logs/" + id(n) + "/a.log", contents: Data("x".utf8)))
            }
        }
        func runIDs(_ store: StateStore) async throws -> [String] {
            try await store.database.read { db in try String.fetchAll(db, sql: "SELECT id FROM runs ORDER BY started_at") }
        }
        try addRuns(0..<(kept + slack))
        do {
            let prepared = try #require(BuildPreparation.start(directory: stateDir, writeBehind: false)?.wait())
            #expect(try await runIDs(prepared.store).count == kept + slack)  // not over the batch size yet
        }
        try addRuns((kept + slack)..<(kept + slack + 3))
        let prepared = try #require(BuildPreparation.start(directory: stateDir, writeBehind: false)?.wait())
        let total = kept + slack + 3
        #expect(try await runIDs(prepared.store) == ((total - kept)..<total).map(id))
        let orphans = try await prepared.store.database.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM run_subtasks WHERE run_id NOT IN (SELECT id FROM runs)")
        }
        #expect(orphans == 0)
        let logs = Set(try FileManager.default.contentsOfDirectory(atPath: stateDir + "/logs"))
        #expect(logs == Set(((total - kept)..<total).map(id)))
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PlanRunCore
import Testing

/// The clean-close record with the real binary: a build that ends in order
/// leaves it, so the next command skips the full check; a killed build
/// leaves its log, so the next one checks.
@Suite struct StateCleanCloseEndToEndTests {
    @Test func aBuildEndingInOrderRecordsItAndAKilledOneDoesNot() async throws {
        let project = try makeProject("""
            version: 1
            subtasks:
              - id: a
                run: "true"
              - id: slow
                run: "echo $$ > slow.pid; sleep 30"
                cache: false
            """)
        defer { try? FileManager.default.removeItem(at: project) }
        let database = project.appendingPathComponent(".planrun/state.db").path
        #expect(try PlanRunBinary.run(["build", "a"], in: project).status == 0)
        #expect(FileManager.default.fileExists(atPath: database + StateStore.cleanCloseSuffix))
        #expect(StateStore.isUnchangedSinceCleanClose(database))
        // The log is kept, empty (every frame is in the main file).
        let log = try FileManager.default.attributesOfItem(atPath: database + "-wal")
        #expect(log[.size] as? Int == 0)
        #expect(try PlanRunBinary.run(["status"], in: project).status == 0)
        #expect(StateStore.isUnchangedSinceCleanClose(database))

        let build = try BackgroundPlanRun(["build", "slow"], in: project)
        defer { if build.process.isRunning { kill(build.pid, SIGKILL) } }
        let pidFile = project.appendingPathComponent("slow.pid").path
        let deadline = ContinuousClock.now + .seconds(60)
        while !FileManager.default.fileExists(atPath: pidFile), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        kill(build.pid, SIGKILL)
        _ = try? await build.wait()
        #expect(!StateStore.isUnchangedSinceCleanClose(database))
        // The killed run's rows are read from the log it left.
        let killed = try PlanRunBinary.run(["status"], in: project)
        #expect(killed.status == 0)
        #expect(killed.stdout.contains("interrupted"))
        #expect(killed.stdout.contains("0/1 succeeded"))
        #expect(try PlanRunBinary.run(["build", "a"], in: project).status == 0)
        #expect(StateStore.isUnchangedSinceCleanClose(database))
    }
}

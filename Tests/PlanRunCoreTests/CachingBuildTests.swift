import Foundation
import Testing
import PlanRunTestSupport
@testable import PlanRunCore

/// The content cache driving real builds (BuildSession, real processes,
/// the SQLite state): what users see across reruns.
@Suite struct CachingBuildTests {
    static func chainPlan(_ dir: CachingTempDir, secondRun: String = "tr a-z A-Z < mid.txt > up.txt") -> Plan {
        Plan(file: dir.url("plan.yaml"), directory: dir.path, name: "chain", subtasks: [
            Subtask(id: "copy", run: "cp in.txt mid.txt", inputs: ["in.txt"], outputs: ["mid.txt"]),
            Subtask(id: "upper", run: secondRun, outputs: ["up.txt"], dependsOn: ["copy"]),
            Subtask(id: "count", run: "wc -c < up.txt | tr -d ' ' > n.txt; cat n.txt", outputs: ["n.txt"], dependsOn: ["upper"]),
        ])
    }

    static func build(_ plan: Plan, forced: Bool = false) async throws -> [String: (SubtaskStatus, RunReason?)] {
        let stateDir = plan.directory + "/.planrun"
        let cache = try ContentCache.open(plan: plan, stateDirectory: stateDir, callerEnvironment: [:], force: Force(all: forced))
        let summary = try await BuildSession.run(
            plan: plan, configuration: RunConfiguration(jobs: 2, forced: forced, killGrace: .milliseconds(200)),
            cache: cache, canceller: RunCanceller(), reporter: RecordingReporter())
        try cache.finish()
        var out: [String: (SubtaskStatus, RunReason?)] = [:]
        for r in summary.reports { out[r.id] = (r.status, r.reason) }
        return out
    }

    @Test func rebuildSkipsRerunsAndRestores() async throws {
        let dir = CachingTempDir()
        dir.write("in.txt", "hello\n")
        let plan = Self.chainPlan(dir)

        let first = try await Self.build(plan)
        #expect(first.values.allSatisfy { $0.0 == .done })
        #expect(first["copy"]?.1 == .neverRan)
        #expect(dir.read("up.txt") == "HELLO\n")

        let second = try await Self.build(plan)
        #expect(second.values.allSatisfy { $0.0 == .cached && $0.1 == .cached })

        dir.write("in.txt", "hello world\n")
        let third = try await Self.build(plan)
        #expect(third["copy"]?.1 == .inputChanged(path: "in.txt"))
        #expect(third["upper"]?.1 == .dependencyChanged(id: "copy"))
        #expect(third["count"]?.0 == .done)
        #expect(dir.read("n.txt") == "12\n")

        dir.remove("up.txt")
        let fourth = try await Self.build(plan)
        #expect(fourth["copy"]?.1 == .cached)
        #expect(fourth["upper"]?.1 == .restored)
        #expect(fourth["count"]?.1 == .cached)
        #expect(dir.read("up.txt") == "HELLO WORLD\n")

        let forced = try await Self.build(plan, forced: true)
        #expect(forced.values.allSatisfy { $0.0 == .done && $0.1 == .forced })
    }

    @Test func failedSubtaskIsNeverRecorded() async throws {
        let dir = CachingTempDir()
        dir.write("in.txt", "x\n")
        let failing = Self.chainPlan(dir, secondRun: "tr a-z A-Z < mid.txt > up.txt; exit 3")
        let first = try await Self.build(failing)
        #expect(first["upper"]?.0 == .failed)
        #expect(first["count"]?.0 == .blocked)
        // Same definition, same inputs: still runs, because it never succeeded.
        let second = try await Self.build(failing)
        #expect(second["copy"]?.0 == .cached)
        #expect(second["upper"]?.0 == .failed)
        #expect(second["upper"]?.1 == .neverRan)

        let fixed = Self.chainPlan(dir)
        let third = try await Self.build(fixed)
        #expect(third["upper"]?.0 == .done)
        #expect(third["upper"]?.1 == .neverRan)
        #expect(third["count"]?.0 == .done)
    }

    @Test func dryRunPreviewAndExplainWriteNothing() async throws {
        let dir = CachingTempDir()
        dir.write("in.txt", "hello\n")
        let plan = Self.chainPlan(dir)
        _ = try await Self.build(plan)
        dir.write("in.txt", "changed\n")
        let before = try snapshotFolder(dir.path)
        let cache = try ContentCache.open(plan: plan, stateDirectory: dir.url(".planrun"), callerEnvironment: [:], readOnly: true)
        let graph = TaskGraph(plan: plan)
        let preview = await cache.preview(graph: graph, selected: [true, true, true])
        guard case .success(.run(let reason, _)) = preview["copy"] else { Issue.record("copy should run"); return }
        #expect(reason == .inputChanged(path: "in.txt"))
        guard case .success(.run(let r2, _)) = preview["upper"] else { Issue.record("upper should run"); return }
        #expect(r2 == .dependencyChanged(id: "copy"))
        let explanation = try await cache.explain(graph: graph, id: "copy")
        #expect(explanation.text.hasPrefix("`copy` would run: input in.txt changed\n"))
        #expect(explanation.lastKey != nil && explanation.key != explanation.lastKey)
        try cache.finish()
        let after = try snapshotFolder(dir.path)
        #expect(after == before)
        for (k, v) in after where before[k] != v { Issue.record("changed: \(k)") }
        for k in before.keys where after[k] == nil { Issue.record("removed: \(k)") }
    }

    @Test func previewReasonsReportUncheckableSubtasks() async throws {
        let dir = CachingTempDir()
        let plan = Self.chainPlan(dir) // in.txt does not exist
        let cache = try ContentCache.open(plan: plan, stateDirectory: dir.url(".planrun"), callerEnvironment: [:], readOnly: true)
        let reasons = await cache.previewReasons(graph: TaskGraph(plan: plan), selected: [true, true, true])
        #expect(reasons["copy"] == .cannotCheck(
            "input `in.txt` of subtask `copy` matches no file; mark it optional with a leading `-` (`-in.txt`) if it may be absent"))
        #expect(reasons["upper"] == .neverRan)
        #expect(!dir.exists(".planrun"))
    }

    @Test func previewDoesNotBlameInputsADependencyWillCreate() async throws {
        let dir = CachingTempDir()
        dir.write("src.txt", "x")
        let plan = Plan(file: dir.url("plan.yaml"), directory: dir.path, name: "p", subtasks: [
            Subtask(id: "gen", run: "cp src.txt gen.txt", inputs: ["src.txt"], outputs: ["gen.txt"]),
            Subtask(id: "use", run: "cp gen.txt use.txt", inputs: ["gen.txt"], outputs: ["use.txt"], dependsOn: ["gen"]),
        ])
        let cache = try ContentCache.open(plan: plan, stateDirectory: dir.url(".planrun"), callerEnvironment: [:], readOnly: true)
        let reasons = await cache.previewReasons(graph: TaskGraph(plan: plan), selected: [true, true])
        #expect(reasons == ["gen": .neverRan, "use": .neverRan])
    }
}

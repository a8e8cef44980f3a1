import Foundation
import Testing
@testable import PlanRunCore

@Suite struct ExecutionSchedulerTests {
    @Test func runsInPlanOrderWithOneJob() async {
        let plan = makePlan([task("c", ["a"]), task("a"), task("b"), task("d", ["c", "b"])])
        let runner = FakeCommandRunner()
        let (summary, _) = await runPlan(plan, runner: runner, jobs: 1)
        let order = await runner.log.records.map(\.id)
        // a is the first ready in plan order; then c (plan position 0) beats b.
        #expect(order == ["a", "c", "b", "d"])
        #expect(summary.status == .completed)
        #expect(summary.count(.done) == 4)
    }

    @Test func recordedDurationsPutTheCriticalPathFirst() async {
        let plan = makePlan([task("a"), task("b"), task("c", ["b"])])
        let graph = TaskGraph(plan: plan)
        for (durations, expected) in [([String: Double](), ["a", "b", "c"]), (["a": 1, "b": 1, "c": 10], ["b", "c", "a"])] {
            let runner = FakeCommandRunner()
            var executor = Executor(graph: graph, configuration: RunConfiguration(jobs: 1), runner: runner)
            executor.expectedDurations = durations
            _ = await executor.run(reporter: RecordingReporter())
            #expect(await runner.log.records.map(\.id) == expected)
        }
    }

    @Test func peakConcurrencyIsTheJobLimit() async {
        let subtasks = (0..<12).map { task("t\($0)") }
        let runner = FakeCommandRunner(Dictionary(uniqueKeysWithValues: subtasks.map { ($0.id, FakeCommandRunner.Script(duration: .milliseconds(100))) }))
        let (summary, _) = await runPlan(makePlan(subtasks), runner: runner, jobs: 3)
        #expect(await runner.log.peak == 3)
        #expect(summary.count(.done) == 12)
    }

    @Test func agentPoolLimitsItsOwnSubtasks() async {
        let slow = FakeCommandRunner.Script(duration: .milliseconds(80))
        let subtasks = (0..<6).map { task("x\($0)", agent: "one", run: "") } + (0..<6).map { task("s\($0)") }
        let one = AgentDefinition(name: "one", kind: .command, command: ["x"], maxParallel: 1)
        let runner = FakeCommandRunner(Dictionary(uniqueKeysWithValues: subtasks.map { ($0.id, slow) }))
        let (summary, _) = await runPlan(makePlan(subtasks, agents: [one]), runner: runner, jobs: 4)
        #expect(await runner.log.peakByAgent["one"] == 1)
        #expect(await runner.log.peak == 4)
        #expect(summary.status == .completed)
    }

    @Test func startsDependentsWithoutWaitingForTheBatch() async {
        // a runs until c has finished; c depends on b. With batch barriers c
        // could only start after a, so a would give up waiting (10 s) first.
        let plan = makePlan([task("a"), task("b"), task("c", ["b"])])
        let runner = FakeCommandRunner(["a": .init(duration: .milliseconds(10), waitsFor: "c"), "b": .init(duration: .milliseconds(10)),
                                        "c": .init(duration: .milliseconds(10))])
        _ = await runPlan(plan, runner: runner, jobs: 2)
        let records = await runner.log.records
        let a = try! #require(records.first { $0.id == "a" })
        let c = try! #require(records.first { $0.id == "c" })
        #expect(c.end < a.end)
    }

    @Test func retriesUntilSuccess() async {
        let plan = makePlan([task("flaky", retries: 2, backoff: .milliseconds(10))])
        let runner = FakeCommandRunner(["flaky": .init(failingAttempts: [1, 2])])
        let (summary, reporter) = await runPlan(plan, runner: runner)
        #expect(summary.status(of: "flaky") == .done)
        #expect(summary.report("flaky")?.attempts == 3)
        #expect(await runner.log.records.map(\.attempt) == [1, 2, 3])
        let retries = reporter.events.filter { if case .retrying = $0 { true } else { false } }
        #expect(retries.count == 2)
    }

    @Test func retriesRunOutAndFail() async {
        let plan = makePlan([task("bad", retries: 1, backoff: .milliseconds(5)), task("after", ["bad"])])
        let runner = FakeCommandRunner(["bad": .init(failingAttempts: [1, 2, 3])])
        let (summary, _) = await runPlan(plan, runner: runner)
        #expect(summary.status(of: "bad") == .failed)
        #expect(summary.report("bad")?.attempts == 2)
        #expect(summary.status(of: "after") == .blocked)
        #expect(summary.report("after")?.error == "dependency `bad` failed")
        #expect(await !runner.log.records.contains { $0.id == "after" })
        #expect(summary.exitCode == 1)
    }

    @Test func planDefaultsAndAgentRetriesApply() async {
        let agent = AgentDefinition(name: "ag", kind: .command, command: ["x"], retries: 2, retryBackoff: .milliseconds(1))
        let plan = makePlan([task("x", agent: "ag"), task("y")],
                            agents: [agent], defaults: SubtaskDefaults(retries: 1, retryBackoff: .milliseconds(1)))
        let runner = FakeCommandRunner(["x": .init(failingAttempts: [1, 2, 3, 4]), "y": .init(failingAttempts: [1, 2, 3])])
        let (summary, _) = await runPlan(plan, runner: runner, keepGoing: true)
        #expect(summary.report("x")?.attempts == 3) // agent: 2 retries
        #expect(summary.report("y")?.attempts == 2) // defaults: 1 retry
    }

    @Test func failFastStartsNothingNew() async {
        let plan = makePlan([task("bad"), task("other"), task("dep", ["bad"])])
        let runner = FakeCommandRunner(["bad": .init(failingAttempts: [1])])
        let (summary, _) = await runPlan(plan, runner: runner, jobs: 1)
        #expect(await runner.log.records.map(\.id) == ["bad"])
        #expect(summary.status == .failed)
        #expect(summary.status(of: "dep") == .blocked)
        #expect(summary.status(of: "other") == .blocked)
        #expect(summary.report("other")?.error?.contains("use --keep-going") == true)
    }

    @Test func failFastLetsRunningSubtasksFinish() async {
        let plan = makePlan([task("bad"), task("slow")])
        let runner = FakeCommandRunner(["bad": .init(duration: .milliseconds(5), failingAttempts: [1]),
                                        "slow": .init(duration: .milliseconds(150))])
        let (summary, _) = await runPlan(plan, runner: runner, jobs: 2)
        #expect(summary.status(of: "slow") == .done)
    }

    @Test func keepGoingRunsIndependentWorkOnly() async {
        let plan = makePlan([task("bad"), task("mid", ["bad"]), task("leaf", ["mid"]), task("free"), task("free2", ["free"])])
        let runner = FakeCommandRunner(["bad": .init(failingAttempts: [1])])
        let (summary, _) = await runPlan(plan, runner: runner, jobs: 1, keepGoing: true)
        let ran = Set(await runner.log.records.map(\.id))
        #expect(ran == ["bad", "free", "free2"])
        #expect(summary.status(of: "mid") == .blocked)
        #expect(summary.status(of: "leaf") == .blocked)
        #expect(summary.count(.done) == 2)
        #expect(summary.status == .failed)
    }

    @Test func targetsSelectTheirDependenciesOnly() async {
        let plan = makePlan([task("a"), task("b", ["a"]), task("c")])
        let runner = FakeCommandRunner()
        let (summary, _) = await runPlan(plan, runner: runner, targets: ["b"])
        #expect(Set(await runner.log.records.map(\.id)) == ["a", "b"])
        #expect(summary.total == 2)
    }

    @Test func cancellationStopsRunningAndPendingWork() async {
        let plan = makePlan([task("hang"), task("next", ["hang"]), task("other")])
        let runner = FakeCommandRunner(["hang": .init(hangs: true), "other": .init(hangs: true)])
        let canceller = RunCanceller()
        let graph = TaskGraph(plan: plan)
        let executor = Executor(graph: graph, configuration: RunConfiguration(jobs: 2), runner: runner, canceller: canceller)
        let run = Task { await executor.run(reporter: RecordingReporter()) }
        try? await Task.sleep(for: .milliseconds(100))
        canceller.setReason("test cancel")
        run.cancel()
        let summary = await run.value
        #expect(summary.status == .cancelled)
        #expect(summary.reason == "test cancel")
        #expect(summary.status(of: "hang") == .cancelled)
        #expect(summary.status(of: "next") == .cancelled)
        #expect(summary.exitCode == 130)
        #expect(await runner.log.records.allSatisfy(\.cancelled))
    }

    @Test func everyStartedIsFollowedByOneFinished() async {
        let plan = makePlan([task("a"), task("b", ["a"]), task("c", retries: 1, backoff: .milliseconds(1)), task("d", ["c"])])
        let runner = FakeCommandRunner(["c": .init(failingAttempts: [1, 2])])
        let (_, reporter) = await runPlan(plan, runner: runner, keepGoing: true)
        var open = Set<String>()
        var finishedCount: [String: Int] = [:]
        for event in reporter.events {
            switch event {
            case .started(let id): #expect(open.insert(id).inserted)
            case .finished(let r):
                #expect(open.remove(r.id) != nil)
                finishedCount[r.id, default: 0] += 1
            default: break
            }
        }
        #expect(open.isEmpty)
        #expect(finishedCount == ["a": 1, "b": 1, "c": 1])
    }

    @Test func contextCarriesDependencyResults() async throws {
        var plan = makePlan([task("a"), task("b", ["a"])])
        plan.subtasks[1].with = .object(["files": .array([.string("x.swift")])])
        plan.subtasks[1].description = "second"
        let runner = FakeCommandRunner(["a": .init(result: "A-RESULT")])
        _ = await runPlan(plan, runner: runner)
        let record = try #require(await runner.log.records.first { $0.id == "b" })
        guard case .object(let context) = record.request.context else { Issue.record("context is not an object"); return }
        #expect(context["subtask_id"] == .string("b"))
        #expect(context["plan_goal"] == .string("testing"))
        #expect(context["description"] == .string("second"))
        #expect(context["execution_mode"] == .string("subtask"))
        #expect(context["metadata"] == .object(["files": .array([.string("x.swift")])]))
        guard case .object(let deps)? = context["dependencies"], case .object(let a)? = deps["a"] else {
            Issue.record("no dependency a"); return
        }
        #expect(a["result"] == .string("A-RESULT"))
        #expect(a["status"] == .string("done"))
        #expect(record.request.environment["PLANRUN_SUBTASK"] == "b")
        #expect(record.request.environment["PLANRUN_ATTEMPT"] == "1")
    }

    @Test func environmentLayersCallerPlanAgentSubtask() async throws {
        var plan = makePlan([task("a")])
        plan.env = ["A": "plan", "B": "plan"]
        plan.subtasks[0].env = ["B": "subtask"]
        let runner = FakeCommandRunner()
        let graph = TaskGraph(plan: plan)
        let executor = Executor(graph: graph, configuration: RunConfiguration(jobs: 1, environment: ["A": "caller", "C": "caller"]),
                                runner: runner)
        _ = await executor.run(reporter: RecordingReporter())
        let env = try #require(await runner.log.records.first?.request.environment)
        #expect(env["A"] == "plan")
        #expect(env["B"] == "subtask")
        #expect(env["C"] == "caller")
    }

    @Test func backoffDoublesWithJitter() {
        var config = RunConfiguration(jobs: 1, jitter: { 0 })
        #expect(config.retryDelay(backoff: .seconds(1), afterAttempt: 1) == .milliseconds(500))
        #expect(config.retryDelay(backoff: .seconds(1), afterAttempt: 3) == .seconds(2))
        config.jitter = { 0.999999 }
        #expect(config.retryDelay(backoff: .seconds(1), afterAttempt: 2) > .milliseconds(1999))
        #expect(config.retryDelay(backoff: .seconds(1), afterAttempt: 2) <= .seconds(2))
    }
}

/// A cache that skips `upToDate` ids and records what `record` saw.
final class ScriptedCache: BuildCache {
    let upToDate: Set<String>
    let recorded = Recorded()
    actor Recorded {
        var ids: [String] = []
        var deps: [String: [String: String]] = [:]
        func add(_ id: String) { ids.append(id) }
        func saw(_ id: String, _ d: [String: String]) { deps[id] = d }
    }
    init(upToDate: Set<String>) { self.upToDate = upToDate }

    func decide(_ subtask: Subtask, dependencyDigests: [String: String]) async throws -> CacheDecision {
        await recorded.saw(subtask.id, dependencyDigests)
        if upToDate.contains(subtask.id) {
            return .upToDate(CachedOutcome(key: .named("k-\(subtask.id)"), resultDigest: "d-\(subtask.id)",
                                           result: Array("cached \(subtask.id)".utf8), reason: .cached))
        }
        return .run(reason: .neverRan, key: .named("k-\(subtask.id)"))
    }

    func record(_ subtask: Subtask, key: ActionKey?, result: [UInt8]) async throws -> CacheRecord {
        await recorded.add(subtask.id)
        return CacheRecord(resultDigest: "d-\(subtask.id)")
    }
}

@Suite struct ExecutionCacheSeamTests {
    @Test func upToDateSubtasksAreSkippedAndOnlySuccessesRecorded() async {
        let plan = makePlan([task("a"), task("b", ["a"]), task("c"), task("bad")])
        let runner = FakeCommandRunner(["bad": .init(failingAttempts: [1])])
        let cache = ScriptedCache(upToDate: ["a"])
        let (summary, _) = await runPlan(plan, runner: runner, jobs: 1, keepGoing: true, cache: cache)
        #expect(summary.status(of: "a") == .cached)
        #expect(summary.report("a")?.resultText == "cached a")
        #expect(await !runner.log.records.contains { $0.id == "a" })
        #expect(Set(await cache.recorded.ids) == ["b", "c"])
        #expect(await cache.recorded.deps["b"] == ["a": "d-a"])
        #expect(summary.count(.cached) == 1)
    }
}

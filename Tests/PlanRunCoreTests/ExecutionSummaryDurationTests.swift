import Foundation
import Testing
@testable import PlanRunCore

/// The summary's duration is the build's whole wall time, counted from
/// `RunConfiguration.startedAt` (set by the command when it starts), so the
/// time spent before the first subtask (reading the plan, asking the remote
/// cache ahead) is in it.
@Suite struct ExecutionSummaryDurationTests {
    @Test func durationCountsFromTheBuildsStartNotTheLoops() async {
        let plan = makePlan([task("a"), task("b", ["a"])])
        var config = RunConfiguration(jobs: 2, jitter: { 0 })
        config.startedAt = Date(timeIntervalSinceNow: -3)
        let graph = TaskGraph(plan: plan)
        let executor = Executor(graph: graph, configuration: config, runner: FakeCommandRunner())
        let summary = await executor.run(reporter: RecordingReporter())
        #expect(summary.status == .completed)
        #expect(summary.durationSeconds >= 3)
        #expect(summary.durationSeconds < 60)
        #expect(summary.startedAt == config.startedAt)
    }
}

import Testing
@testable import PlanRunCore

/// The scheduler alone: no processes, no tasks.
@Suite struct SchedulerTests {
    static let one = AgentDefinition(name: "one", kind: .command, command: ["x"], maxParallel: 1)
    static let two = AgentDefinition(name: "two", kind: .command, command: ["x"], maxParallel: 2)

    /// Every `scheduleNext` until none fits, as ids.
    static func drain(_ scheduler: inout Scheduler, _ graph: TaskGraph) -> [String] {
        var taken: [String] = []
        while let node = scheduler.scheduleNext() { taken.append(graph.id(node)) }
        return taken
    }

    static func node(_ graph: TaskGraph, _ id: String) -> Int { graph.plan.index[id]! }

    @Test func thePlanWideLimitHoldsEverySubtask() {
        let graph = TaskGraph(plan: makePlan((0..<5).map { task("t\($0)") }))
        var scheduler = Scheduler(graph: graph, limit: 2)
        for node in scheduler.roots { scheduler.ready(node) }
        #expect(Self.drain(&scheduler, graph) == ["t0", "t1"])
        #expect(scheduler.running == 2)
        scheduler.finished(Self.node(graph, "t1"))
        #expect(Self.drain(&scheduler, graph) == ["t2"])
        #expect(scheduler.scheduleNext() == nil)
    }

    @Test func anAgentPoolHoldsItsOwnSubtasksOnly() {
        let subtasks = [task("x0", agent: "one"), task("x1", agent: "one"), task("s0"), task("x2", agent: "one"), task("s1")]
        let graph = TaskGraph(plan: makePlan(subtasks, agents: [Self.one]))
        var scheduler = Scheduler(graph: graph, limit: 4)
        for node in scheduler.roots { scheduler.ready(node) }
        // x1 and x2 wait for x0's slot in `one`; the shell subtasks pass them.
        #expect(Self.drain(&scheduler, graph) == ["x0", "s0", "s1"])
        scheduler.finished(Self.node(graph, "s0"))
        #expect(scheduler.scheduleNext() == nil)
        scheduler.finished(Self.node(graph, "x0"))
        #expect(Self.drain(&scheduler, graph) == ["x1"])
    }

    @Test func aPoolWiderThanOneTakesThatMany() {
        let graph = TaskGraph(plan: makePlan((0..<4).map { task("y\($0)", agent: "two") }, agents: [Self.two]))
        var scheduler = Scheduler(graph: graph, limit: 8)
        for node in scheduler.roots { scheduler.ready(node) }
        #expect(Self.drain(&scheduler, graph) == ["y0", "y1"])
    }

    @Test func releaseReturnsDependentsWhoseDependenciesAreAllKnown() {
        let graph = TaskGraph(plan: makePlan([task("a"), task("b"), task("c", ["a", "b"]), task("d", ["a"])]))
        var scheduler = Scheduler(graph: graph, limit: 4)
        #expect(scheduler.roots.map(graph.id) == ["a", "b"])
        #expect(scheduler.release(Self.node(graph, "a")).map(graph.id) == ["d"])
        #expect(scheduler.release(Self.node(graph, "b")).map(graph.id) == ["c"])
    }

    @Test func unselectedSubtasksAreNeitherRootsNorReleased() {
        let graph = TaskGraph(plan: makePlan([task("a"), task("b", ["a"]), task("c")]))
        var scheduler = Scheduler(graph: graph, selected: [true, false, true], limit: 4)
        #expect(scheduler.roots.map(graph.id) == ["a", "c"])
        #expect(scheduler.release(0).isEmpty)
    }

    @Test func plainOrderWithoutDurationsCriticalPathWithThem() {
        let graph = TaskGraph(plan: makePlan([task("a"), task("b"), task("c", ["b"])]))
        var plain = Scheduler(graph: graph, limit: 1)
        for node in plain.roots { plain.ready(node) }
        #expect(Self.drain(&plain, graph) == ["a"])

        // b + c (11 s) is the longer path: b goes first.
        var weighted = Scheduler(graph: graph, limit: 1, durations: ["a": 1, "b": 1, "c": 10])
        for node in weighted.roots { weighted.ready(node) }
        #expect(Self.drain(&weighted, graph) == ["b"])
    }

    @Test func aSlotPassesBeforeReleaseOnlyWhenTheChoiceStaysTheSame() {
        // a (running) completes c; b is ready. At -j 1, b (position 1)
        // outranks c (position 2): the slot may go to b at once.
        let later = TaskGraph(plan: makePlan([task("a"), task("b"), task("c", ["a"])]))
        var scheduler = Scheduler(graph: later, limit: 1)
        scheduler.ready(0)
        #expect(scheduler.scheduleNext() == 0)
        scheduler.ready(1)
        #expect(scheduler.canPassSlotBeforeRelease(of: 0))

        // c now comes before b in plan order: it must be released first.
        let earlier = TaskGraph(plan: makePlan([task("a"), task("c", ["a"]), task("b")]))
        scheduler = Scheduler(graph: earlier, limit: 1)
        scheduler.ready(0)
        _ = scheduler.scheduleNext()
        scheduler.ready(2)
        #expect(!scheduler.canPassSlotBeforeRelease(of: 0))

        // Nothing ready to take the slot: release first.
        scheduler = Scheduler(graph: earlier, limit: 1)
        scheduler.ready(0)
        _ = scheduler.scheduleNext()
        #expect(!scheduler.canPassSlotBeforeRelease(of: 0))

        // Completing no dependent: always.
        let alone = TaskGraph(plan: makePlan([task("a"), task("b")]))
        scheduler = Scheduler(graph: alone, limit: 1)
        scheduler.ready(0)
        _ = scheduler.scheduleNext()
        #expect(scheduler.canPassSlotBeforeRelease(of: 0))
    }

    @Test func aSlotPassesOnlyWithinTheFreedAgentPool() {
        // a (agent one) completes c (shell, position 3); ready: x (one,
        // position 2). x fits only in a's slot of `one`, and outranks c.
        let graph = TaskGraph(plan: makePlan([task("a", agent: "one"), task("s"), task("x", agent: "one"), task("c", ["a"])],
                                             agents: [Self.one]))
        var scheduler = Scheduler(graph: graph, limit: 2)
        scheduler.ready(0)
        scheduler.ready(1)
        #expect(Self.drain(&scheduler, graph) == ["a", "s"])
        scheduler.ready(2)
        #expect(scheduler.canPassSlotBeforeRelease(of: 0))
    }

    static func batches(_ graph: TaskGraph, limit: Int, selected: [Bool]? = nil) -> [[String]] {
        Scheduler.batches(graph: graph, selected: selected, limit: limit).map { $0.map(graph.id) }
    }

    /// Issue 12: three independent subtasks on an agent with
    /// `max_parallel: 1` run one at a time, so the dry run shows three
    /// batches.
    @Test func test_issue_12_batchesRespectAgentPools() {
        let graph = TaskGraph(plan: makePlan((1...3).map { task("x\($0)", agent: "one") }, agents: [Self.one]))
        #expect(Self.batches(graph, limit: 4) == [["x1"], ["x2"], ["x3"]])
    }

    @Test func batchesFillThePlanWideLimitAroundAPool() {
        let subtasks = [task("x1", agent: "one"), task("x2", agent: "one"), task("s1"), task("s2"), task("s3"),
                        task("last", ["x1", "x2", "s1", "s2", "s3"])]
        let graph = TaskGraph(plan: makePlan(subtasks, agents: [Self.one]))
        #expect(Self.batches(graph, limit: 3) == [["x1", "s1", "s2"], ["x2", "s3"], ["last"]])
    }

    @Test func thePlanWideLimitIsResolvedOnce() {
        let plan = makePlan([task("a")], maxParallel: 3)
        #expect(RunConfiguration(plan: plan, jobs: 5, processorCount: 8).jobs == 5)
        #expect(RunConfiguration(plan: plan, jobs: nil, processorCount: 8).jobs == 3)
        #expect(RunConfiguration(plan: makePlan([task("a")]), jobs: nil, processorCount: 8).jobs == 8)
        #expect(RunConfiguration(plan: makePlan([task("a")]), jobs: nil, processorCount: 0).jobs == 1)
    }
}

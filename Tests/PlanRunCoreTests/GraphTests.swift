import Testing
@testable import PlanRunCore

@Suite struct GraphTests {
    /// A plan of shell subtasks: `(id, dependencies)` in plan order.
    static func plan(_ subtasks: [(String, [String])]) -> Plan {
        Plan(file: "plan.yaml", directory: "/plans", name: "test",
             subtasks: subtasks.map { Subtask(id: $0.0, run: "true", dependsOn: $0.1) })
    }

    static func batchIDs(_ graph: TaskGraph, maxParallel: Int, selected: [Bool]? = nil) -> [[String]] {
        Scheduler.batches(graph: graph, selected: selected, limit: maxParallel).map { $0.map(graph.id) }
    }

    @Test func threeIndependentThenOneDependingOnAll() {
        let graph = TaskGraph(plan: Self.plan([("t1", []), ("t2", []), ("t3", []), ("t4", ["t1", "t2", "t3"])]))
        #expect(Self.batchIDs(graph, maxParallel: 3) == [["t1", "t2", "t3"], ["t4"]])
        #expect(Self.batchIDs(graph, maxParallel: 2) == [["t1", "t2"], ["t3"], ["t4"]])
    }

    @Test func fiveIndependentInChunksOfTwo() {
        let graph = TaskGraph(plan: Self.plan((1...5).map { ("t\($0)", []) }))
        #expect(Self.batchIDs(graph, maxParallel: 2) == [["t1", "t2"], ["t3", "t4"], ["t5"]])
        #expect(Self.batchIDs(graph, maxParallel: 0) == [["t1"], ["t2"], ["t3"], ["t4"], ["t5"]])
    }

    @Test func levelsAreOneMoreThanTheDeepestDependency() {
        // d depends on a (level 0) and c (level 2): level 3, after c, though listed first.
        let graph = TaskGraph(plan: Self.plan([
            ("d", ["a", "c"]), ("a", []), ("b", ["a"]), ("c", ["b"]), ("e", []),
        ]))
        #expect(graph.levels() == [3, 0, 1, 2, 0])
        #expect(Self.batchIDs(graph, maxParallel: 8) == [["a", "e"], ["b"], ["c"], ["d"]])
        #expect(graph.topologicalOrder().map(graph.id) == ["a", "e", "b", "c", "d"])
    }

    @Test func edgesGoFromDependencyToDependent() {
        let graph = TaskGraph(plan: Self.plan([("a", []), ("b", ["a", "a"]), ("c", ["a", "b"])]))
        #expect(graph.dependencies == [[], [0], [0, 1]])
        #expect(graph.dependents == [[1, 2], [2], []])
    }

    @Test func targetsSelectThemselvesAndTheirTransitiveDependencies() throws {
        let graph = TaskGraph(plan: Self.plan([
            ("schema", []), ("lib", ["schema"]), ("app", ["lib"]), ("docs", []), ("test", ["app"]),
        ]))
        let selected = try graph.selection(targets: ["app"])
        #expect(selected == [true, true, true, false, false])
        #expect(Self.batchIDs(graph, maxParallel: 4, selected: selected) == [["schema"], ["lib"], ["app"]])
        #expect(try graph.selection(targets: ["docs", "lib"]) == [true, true, false, true, false])
        #expect(try graph.selection(targets: []) == [true, true, true, true, true])
    }

    @Test func unknownTargetSuggestsTheClosestID() {
        let graph = TaskGraph(plan: Self.plan([("build", []), ("test", ["build"])]))
        #expect(throws: PlanDiagnostics.self) { try graph.selection(targets: ["biuld"]) }
        do {
            _ = try graph.selection(targets: ["biuld", "test"])
            Issue.record("an unknown target must throw")
        } catch {
            #expect(error.diagnostics.map(\.message) == ["no subtask named `biuld`; did you mean `build`?"])
        }
    }

    @Test func cyclesGiveTheFullPath() {
        let three = TaskGraph(plan: Self.plan([("a", ["c"]), ("b", ["a"]), ("c", ["b"])]))
        #expect(three.cycles() == [["a", "c", "b", "a"]])

        let two = TaskGraph(plan: Self.plan([("x", []), ("a", ["b"]), ("b", ["a"])]))
        #expect(two.cycles() == [["a", "b", "a"]])

        let separate = TaskGraph(plan: Self.plan([("a", ["b"]), ("b", ["a"]), ("c", ["d"]), ("d", ["c"]), ("e", ["a"])]))
        #expect(separate.cycles() == [["a", "b", "a"], ["c", "d", "c"]])

        let acyclic = TaskGraph(plan: Self.plan([("a", []), ("b", ["a"]), ("c", ["a", "b"])]))
        #expect(acyclic.cycles().isEmpty)
    }

    @Test func batchesOfALoadedPlanFollowPlanOrder() throws {
        let plan = try ParsingSupport.load("""
            version: 1
            max_parallel: 2
            subtasks:
              - {id: test, run: make test, depends_on: [build]}
              - {id: build, run: make}
              - {id: lint, run: make lint}
              - {id: docs, run: make docs}
            """)
        let graph = TaskGraph(plan: plan)
        #expect(Self.batchIDs(graph, maxParallel: plan.maxParallel ?? 1) == [["build", "lint"], ["docs"], ["test"]])
    }
}

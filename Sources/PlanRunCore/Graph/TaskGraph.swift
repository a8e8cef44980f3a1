/// The dependency graph of a plan: subtasks are nodes by plan position,
/// edges go from a dependency to its dependent. Built in O(subtasks + edges).
/// Unknown dependency ids are ignored here (the loader reports them).
package struct TaskGraph: Sendable {
    package let plan: Plan
    /// `dependencies[i]`: positions of the subtasks `i` depends on, in the
    /// order `depends_on` lists them, duplicates removed.
    package let dependencies: [[Int]]
    /// `dependents[i]`: positions of the subtasks that depend on `i`, in plan order.
    package let dependents: [[Int]]

    package init(plan: Plan) {
        self.plan = plan
        var dependencies = [[Int]](repeating: [], count: plan.subtasks.count)
        var dependents = [[Int]](repeating: [], count: plan.subtasks.count)
        for (i, subtask) in plan.subtasks.enumerated() {
            var seen = Set<Int>()
            for dep in subtask.dependsOn {
                guard let j = plan.index[dep], seen.insert(j).inserted else { continue }
                dependencies[i].append(j)
                dependents[j].append(i)
            }
        }
        self.dependencies = dependencies
        self.dependents = dependents
    }

    package var count: Int { plan.subtasks.count }

    package func id(_ node: Int) -> String { plan.subtasks[node].id }
}

extension TaskGraph {
    /// The selected subtasks: the named targets and everything they depend
    /// on, transitively; all subtasks when `targets` is empty. Unknown
    /// targets throw `PlanDiagnostics` with a "did you mean".
    package func selection(targets: [String]) throws(PlanDiagnostics) -> [Bool] {
        if targets.isEmpty { return [Bool](repeating: true, count: count) }
        var collector = DiagnosticCollector()
        var selected = [Bool](repeating: false, count: count)
        var work: [Int] = []
        for target in targets {
            guard let ids = plan.ids(named: target) else {
                let suggestion = Suggestion.closest(to: target, in: plan.groups.keys.sorted() + plan.subtasks.map(\.id))
                collector.error(.unknownTarget(name: target, suggestion: suggestion), at: nil)
                continue
            }
            for id in ids {
                guard let i = plan.index[id] else { continue }
                if !selected[i] { selected[i] = true; work.append(i) }
            }
        }
        try collector.throwIfErrors()
        while let node = work.popLast() {
            for dep in dependencies[node] where !selected[dep] {
                selected[dep] = true
                work.append(dep)
            }
        }
        return selected
    }

    /// Dependency depth of every node: 0 without dependencies, else one more
    /// than the deepest dependency. Requires an acyclic graph.
    package func levels() -> [Int] {
        var level = [Int](repeating: 0, count: count)
        for node in topologicalOrder() {
            for dep in dependencies[node] { level[node] = max(level[node], level[dep] + 1) }
        }
        return level
    }

    /// Kahn's order, ties broken by plan order. Requires an acyclic graph
    /// (nodes on a cycle are left out).
    package func topologicalOrder() -> [Int] {
        var remaining = dependencies.map(\.count)
        var order: [Int] = []
        order.reserveCapacity(count)
        // Process in plan order within each wave; a simple queue keeps this
        // linear and deterministic.
        var queue = (0..<count).filter { remaining[$0] == 0 }
        var head = 0
        while head < queue.count {
            let node = queue[head]
            head += 1
            order.append(node)
            for dependent in dependents[node] {
                remaining[dependent] -= 1
                if remaining[dependent] == 0 { queue.append(dependent) }
            }
        }
        return order
    }
}

extension ContentCache {
    // MARK: --only

    /// Restores every selected dependency of the targets from the cache, in
    /// dependency order; throws `OnlyFailure` naming the first that is not
    /// in the cache, before anything runs.
    func checkOnly(graph: TaskGraph, selected: [Bool], targets: Set<String>) async throws {
        var dependencies = selected
        for node in selected.indices where targets.contains(graph.id(node)) { dependencies[node] = false }
        try await KeyWalk.walk(graph, selected: dependencies, missing: "") { node, deps in
            let subtask = graph.plan.subtasks[node]
            // Restored from the remote by the prefetch: not in the history
            // or the local store until the loop records it.
            if let ahead = restoredAhead[subtask.id], let key = try? key(for: subtask, dependencyDigests: deps),
               ahead.key.cacheKey.declared.key == key.digest, discoveredStillMatch(ahead.key) {
                return ahead.resultDigest
            }
            let decision: CacheDecision
            do throws(CacheError) {
                decision = try await decideLocally(subtask, dependencyDigests: deps)
            } catch {
                throw OnlyFailure(dependency: subtask.id, dependent: dependent(of: node, graph: graph, selected: selected, targets: targets),
                                  detail: error.description)
            }
            guard case .upToDate(let outcome) = decision else {
                throw OnlyFailure(dependency: subtask.id, dependent: dependent(of: node, graph: graph, selected: selected, targets: targets),
                                  detail: nil)
            }
            // `decide` hands the outcome, with its history entry, to the
            // loop, whose recorder writes it.
            restoredAhead[subtask.id] = outcome
            return outcome.resultDigest
        }
    }

    /// The first selected subtask (plan order) that depends on `node`.
    private func dependent(of node: Int, graph: TaskGraph, selected: [Bool], targets: Set<String>) -> String {
        graph.dependents[node].first(where: { selected[$0] }).map(graph.id) ?? targets.sorted().first ?? graph.id(node)
    }
}

/// `--only` cannot run: a dependency of a target is not in the cache.
package struct OnlyFailure: Error, Sendable, CustomStringConvertible {
    package var dependency: String
    package var dependent: String
    /// Why its key could not be computed, when that was the problem.
    package var detail: String?

    package var description: String {
        var text = "dependency `\(dependency)` of `\(dependent)` is not in the cache; build it first or drop --only"
        if let detail { text += " (\(detail))" }
        return text
    }
}

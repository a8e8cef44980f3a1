import Foundation

extension ContentCache {
    // MARK: Remote prefetch

    /// Restores from the remote before the build: level by level, computes
    /// the keys it can (a dependency's result digest comes from the history,
    /// the local store or the remote entry) and restores the subtasks that
    /// are neither recorded with that key nor in the local store, at most
    /// `maxConcurrentRequests` at a time. `decide` then takes each outcome
    /// once it has checked the key.
    func prefetch(graph: TaskGraph, selected: [Bool], from source: RemoteRestorer) async {
        let remote = source.remote
        var digests: [Int: String] = [:]
        for nodes in KeyWalk.levels(graph, selected: selected) {
            guard remote.isAvailable, !Task.isCancelled else { return }
            var wanted: [(node: Int, key: ActionKey)] = []
            for node in nodes {
                let subtask = graph.plan.subtasks[node]
                guard subtask.cache, !force.covers(subtask.id) else { continue }
                guard let deps = KeyWalk.dependencyDigests(of: node, in: graph, { digests[$0] }),
                      let declared = try? keys.key(for: subtask, dependencyDigests: deps, log: nil)
                else { continue }
                // With a depfile: the full key of a local set that matches,
                // else the declared key (the child asks the remote's manifest).
                let key = localFullKey(subtask, declared: declared)
                if let last = try? history.entry(for: subtask.id), last.key == key.digest {
                    digests[node] = last.resultDigest  // `decide` checks its outputs
                } else if let action = store.action(key.digest) {
                    digests[node] = action.resultDigest
                } else {
                    wanted.append((node, key))
                }
            }
            let limit = remote.maxConcurrentRequests
            let plan = graph.plan
            // The children fetch and write outputs; nothing is written to
            // the state here.
            let found: [(Int, RestoredAction)] = await withTaskGroup(of: (Int, RestoredAction?).self) { group in
                var out: [(Int, RestoredAction)] = []
                var next = 0
                func start(_ group: inout TaskGroup<(Int, RestoredAction?)>) {
                    let item = wanted[next]
                    next += 1
                    group.addTask {
                        let subtask = plan.subtasks[item.node]
                        var key: ActionKey? = item.key
                        if subtask.depfile != nil, !item.key.cacheKey.isFull {
                            key = await self.remoteFullKey(subtask, declared: item.key, from: source)
                        }
                        guard let key else { return (item.node, nil) }
                        return (item.node, try? await self.restore(subtask, key: key, from: source))
                    }
                }
                while next < wanted.count && next < limit { start(&group) }
                while let (node, restored) = await group.next() {
                    if next < wanted.count, remote.isAvailable, !Task.isCancelled { start(&group) }
                    if let restored { out.append((node, restored)) }
                }
                return out
            }
            // `decide` hands each outcome, with its history entry, to the
            // loop, whose recorder writes it.
            for (node, restored) in found {
                var outcome = restored.outcome
                outcome.history = restored.entry
                restoredAhead[plan.subtasks[node].id] = outcome
            }
            for (node, restored) in found { digests[node] = restored.outcome.resultDigest }
        }
    }
}

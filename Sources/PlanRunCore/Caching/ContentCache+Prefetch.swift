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
        let limit = remote.maxConcurrentRequests
        let plan = graph.plan
        for nodes in KeyWalk.levels(graph, selected: selected) {
            guard remote.isAvailable, !Task.isCancelled else { return }
            // The keys are computed here, one after the other, while the
            // children already started fetch and write outputs (nothing is
            // written to the state here); at most `limit` children run.
            let found: [(Int, RestoredAction)] = await withTaskGroup(of: (Int, RestoredAction?).self) { group in
                var out: [(Int, RestoredAction)] = []
                var running = 0
                func take(_ result: (Int, RestoredAction?)) {
                    running -= 1
                    if let restored = result.1 { out.append((result.0, restored)) }
                }
                for node in nodes {
                    guard remote.isAvailable, !Task.isCancelled else { break }
                    let subtask = plan.subtasks[node]
                    guard subtask.cache, !force.covers(subtask.id) else { continue }
                    guard let deps = KeyWalk.dependencyDigests(of: node, in: graph, { digests[$0] }),
                          let declared = try? keys.key(for: subtask, dependencyDigests: deps, log: nil)
                    else { continue }
                    // With a depfile: the full key of a local set that matches,
                    // else the declared key (the child asks the remote's manifest).
                    let key = localFullKey(subtask, declared: declared)
                    if let last = try? history.entry(for: subtask.id), last.key == key.digest {
                        digests[node] = last.resultDigest  // `decide` checks its outputs
                        continue
                    }
                    if let action = store.action(key.digest) {
                        digests[node] = action.resultDigest
                        continue
                    }
                    if running == limit, let result = await group.next() { take(result) }
                    running += 1
                    group.addTask {
                        var full: ActionKey? = key
                        if subtask.depfile != nil, !key.cacheKey.isFull {
                            full = await self.remoteFullKey(subtask, declared: key, from: source)
                        }
                        guard let full else { return (node, nil) }
                        return (node, try? await self.restore(subtask, key: full, from: source))
                    }
                }
                while let result = await group.next() { take(result) }
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

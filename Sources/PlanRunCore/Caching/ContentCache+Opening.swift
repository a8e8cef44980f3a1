import Foundation

extension ContentCache {
    /// What a build would do with each selected subtask, without running or
    /// writing anything (call on a read-only cache). Subtasks are visited in
    /// dependency order; a dependency that would be skipped contributes its
    /// recorded result digest; one that would run contributes its last
    /// recorded digest, and a dependent it would otherwise skip is reported
    /// as `dependency ID changed` (its real fate depends on the new result).
    /// A subtask whose key cannot be computed (an input matching nothing)
    /// gets its error instead, unless a dependency would run first (it may
    /// create the input): then `never ran` or `dependency ID changed`.
    package func preview(graph: TaskGraph, selected: [Bool]) async -> [String: Result<CacheDecision, CacheError>] {
        var out: [String: Result<CacheDecision, CacheError>] = [:]
        var runs = [Bool](repeating: false, count: graph.count)
        await KeyWalk.walk(graph, selected: selected, missing: "unknown") { node, deps in
            let subtask = graph.plan.subtasks[node]
            let ranDependency = graph.dependencies[node].first(where: { runs[$0] })
            do throws(CacheError) {
                var decision = try await decideLocally(subtask, dependencyDigests: deps)
                var digest: String?
                if case .upToDate(let outcome) = decision {
                    digest = outcome.resultDigest
                    if let dep = ranDependency { decision = .run(reason: .dependencyChanged(id: graph.id(dep)), key: nil) }
                } else {
                    digest = (try? history.entry(for: subtask.id))?.resultDigest
                }
                if case .run = decision { runs[node] = true }
                out[subtask.id] = .success(decision)
                return digest
            } catch {
                runs[node] = true
                if let dep = ranDependency {
                    // Its inputs may be made by a dependency that has yet to run.
                    let ranBefore = (try? history.entry(for: subtask.id)) != nil
                    out[subtask.id] = .success(.run(reason: ranBefore ? .dependencyChanged(id: graph.id(dep)) : .neverRan, key: nil))
                } else {
                    out[subtask.id] = .failure(error)
                }
                return nil
            }
        }
        return out
    }

    /// Each selected subtask's reason for the dry run (`PlanPreview`):
    /// `cached` / `restored from cache` for skips, the run reason otherwise,
    /// `cannotCheck` with the message when its key cannot be computed.
    package func previewReasons(graph: TaskGraph, selected: [Bool]) async -> [String: RunReason] {
        await preview(graph: graph, selected: selected).mapValues { result in
            switch result {
            case .success(.upToDate(let outcome)): outcome.reason
            case .success(.run(let reason, _)): reason
            case .failure(let error): .cannotCheck(error.description)
            }
        }
    }

    /// One subtask's verdict for `planrun explain`, with the keys behind it.
    package struct Explanation: Sendable {
        package var id: String
        package var decision: Result<CacheDecision, CacheError>
        /// The key it would run (or be skipped) with; nil when not computable.
        package var key: String?
        /// The key of its last successful run; nil when it never succeeded.
        package var lastKey: String?

        /// `` `ID` would run: REASON `` / `` `ID` would be skipped: REASON ``,
        /// then the keys.
        package var text: String {
            var out: String
            switch decision {
            case .success(.upToDate(let outcome)):
                out = "`\(id)` would be skipped: \(outcome.reason)\n"
            case .success(.run(let reason, _)):
                out = "`\(id)` would run: \(reason)\n"
            case .failure(let error):
                out = "`\(id)` cannot be checked: \(error)\n"
            }
            out += "  key:                 \(key ?? "-")\n"
            out += "  last successful key: \(lastKey ?? "none")\n"
            return out
        }
    }

    /// Explains `id` in the context of its dependencies (read-only cache).
    package func explain(graph: TaskGraph, id: String) async throws(PlanDiagnostics) -> Explanation {
        let selected = try graph.selection(targets: [id])
        let decisions = await preview(graph: graph, selected: selected)
        let decision = decisions[id] ?? .failure(.stateRead(reason: "no decision"))
        var key: String?
        switch decision {
        case .success(.upToDate(let outcome)): key = outcome.key.digest
        case .success(.run(_, let k)): key = k?.digest
        case .failure: key = nil
        }
        if key == nil, let node = graph.plan.index[id], graph.plan.subtasks[node].cache {
            // A dependency would run: show the key as of the recorded dependency results.
            let deps = KeyWalk.dependencyDigests(of: node, in: graph, missing: "unknown") {
                (try? history.entry(for: graph.id($0)))?.resultDigest
            } ?? [:]
            key = (try? keys.key(for: graph.plan.subtasks[node], dependencyDigests: deps, log: nil))?.digest
        }
        let lastKey = (try? history.entry(for: id))?.key
        return Explanation(id: id, decision: decision, key: key, lastKey: lastKey)
    }
}

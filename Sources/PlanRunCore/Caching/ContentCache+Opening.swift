import Foundation
import GRDB

/// The cache's part of the state database: the history and the stat
/// records, read ahead by `load` (a build prepares it on another thread
/// while the plan is read; see `BuildPreparation`).
package struct CacheState: Sendable {
    package let history: DatabaseSubtaskHistory
    package let digests: any DigestStore

    /// Reads both from `database` now; history saves are written behind
    /// when `writeBehind` (see `DatabaseSubtaskHistory`).
    package static func load(from database: DatabaseQueue, writeBehind: Bool) throws -> CacheState {
        let history = DatabaseSubtaskHistory(reader: database, writer: database, writeBehind: writeBehind)
        try history.preload()
        let base = DatabaseDigestStore(reader: database, writer: database)
        return CacheState(history: history, digests: LoadedDigestStore(records: try base.loadAll(), base: base))
    }
}

extension ContentCache {
    /// The content cache of a plan whose state lives in `stateDirectory`
    /// (`.planrun` beside the plan unless `--state-dir`): history and stat
    /// cache in `state.db`, the store in `cache/`.
    ///
    /// A writable cache is opened by a build holding the build lock, so the
    /// temporary files a killed build left in `cache/tmp/`, beside outputs
    /// it was restoring (`removeLeftovers`) and in the state folder (the
    /// stamp's) are removed.
    ///
    /// Read-only (`explain`, `plan`, `status`): opens the database read-only
    /// and creates nothing; with no database yet, history is empty.
    ///
    /// `writeBehind`: history rows are committed in the background
    /// (`DatabaseSubtaskHistory`); call `finish` before the process ends.
    /// `state`: history and stat records already read from this folder's
    /// database (a writable cache only; `writeBehind` is then the one it
    /// was loaded with).
    package static func open(
        plan: Plan, stateDirectory: String, callerEnvironment: [String: String],
        readOnly: Bool = false, forcedIDs: Set<String> = [], writeBehind: Bool = false,
        state prepared: CacheState? = nil
    ) throws(CacheError) -> ContentCache {
        let store = LocalCacheStore(root: (stateDirectory as NSString).appendingPathComponent("cache"), readOnly: readOnly)
        let history: any SubtaskHistory
        let digests: any DigestStore
        do {
            if readOnly {
                if let database = try openReadOnly(stateDirectory: stateDirectory) {
                    history = DatabaseSubtaskHistory(reader: database, writer: nil)
                    digests = DatabaseDigestStore(reader: database, writer: nil)
                } else {
                    history = InMemorySubtaskHistory()
                    digests = InMemoryDigestStore()
                }
            } else if let prepared {
                history = prepared.history
                digests = prepared.digests
            } else {
                let state = try StateStore(directory: stateDirectory)
                history = DatabaseSubtaskHistory(reader: state.database, writer: state.database, writeBehind: writeBehind)
                digests = DatabaseDigestStore(reader: state.database, writer: state.database)
            }
        } catch {
            throw .stateRead(reason: "\((stateDirectory as NSString).appendingPathComponent("state.db")): \(error)")
        }
        if !readOnly {
            store.removeLeftovers(planDirectory: plan.directory)
            // The up-to-date stamp is written through a temporary file too.
            LocalCacheStore.removeTemporaries(at: stateDirectory, followingLink: true)
        }
        return ContentCache(
            plan: plan, callerEnvironment: callerEnvironment, store: store, history: history,
            digests: digests, readOnly: readOnly, forcedIDs: forcedIDs)
    }

    /// Opens `state.db` for reading without creating or changing any file
    /// (`StateStore.openReadOnly`); nil when there is no history yet.
    static func openReadOnly(stateDirectory: String) throws -> DatabaseQueue? {
        try StateStore.openReadOnly(directory: stateDirectory, requiredTable: "subtask_state")
    }

    /// What a build would do with each selected subtask, without running or
    /// writing anything (call on a read-only cache). Subtasks are visited in
    /// dependency order; a dependency that would be skipped contributes its
    /// recorded result digest; one that would run contributes its last
    /// recorded digest, and a dependent it would otherwise skip is reported
    /// as `dependency ID changed` (its real fate depends on the new result).
    /// A subtask whose key cannot be computed (an input matching nothing)
    /// gets its error instead, unless a dependency would run first (it may
    /// create the input): then `never ran` or `dependency ID changed`.
    package func preview(graph: TaskGraph, selected: [Bool]) -> [String: Result<CacheDecision, CacheError>] {
        var out: [String: Result<CacheDecision, CacheError>] = [:]
        var digest: [Int: String] = [:]
        var runs = [Bool](repeating: false, count: graph.count)
        for node in graph.topologicalOrder() where selected[node] {
            let subtask = graph.plan.subtasks[node]
            var deps: [String: String] = [:]
            for dep in graph.dependencies[node] {
                deps[graph.id(dep)] = digest[dep] ?? "unknown"
            }
            do {
                var decision = try decideNow(subtask, dependencyDigests: deps, forced: false)
                if case .upToDate(let outcome) = decision {
                    if let dep = graph.dependencies[node].first(where: { runs[$0] }) {
                        decision = .run(reason: .dependencyChanged(id: graph.id(dep)), key: nil)
                        digest[node] = outcome.resultDigest
                    } else {
                        digest[node] = outcome.resultDigest
                    }
                } else {
                    digest[node] = (try? history.entry(for: subtask.id))?.resultDigest
                }
                if case .run = decision { runs[node] = true }
                out[subtask.id] = .success(decision)
            } catch {
                runs[node] = true
                if let dep = graph.dependencies[node].first(where: { runs[$0] }) {
                    // Its inputs may be made by a dependency that has yet to run.
                    let ranBefore = (try? history.entry(for: subtask.id)) != nil
                    out[subtask.id] = .success(.run(reason: ranBefore ? .dependencyChanged(id: graph.id(dep)) : .neverRan, key: nil))
                } else {
                    out[subtask.id] = .failure(error)
                }
            }
        }
        return out
    }

    /// Each selected subtask's reason for the dry run (`PlanPreview`):
    /// `cached` / `restored from cache` for skips, the run reason otherwise,
    /// `cannotCheck` with the message when its key cannot be computed.
    package func previewReasons(graph: TaskGraph, selected: [Bool]) -> [String: RunReason] {
        preview(graph: graph, selected: selected).mapValues { result in
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
    package func explain(graph: TaskGraph, id: String) throws(PlanDiagnostics) -> Explanation {
        let selected = try graph.selection(targets: [id])
        let decisions = preview(graph: graph, selected: selected)
        let decision = decisions[id] ?? .failure(.stateRead(reason: "no decision"))
        var key: String?
        switch decision {
        case .success(.upToDate(let outcome)): key = outcome.key
        case .success(.run(_, let k)): key = k
        case .failure: key = nil
        }
        if key == nil, let subtask = graph.plan[id], subtask.cache {
            // A dependency would run: show the key as of the recorded dependency results.
            var deps: [String: String] = [:]
            for dep in subtask.dependsOn { deps[dep] = (try? history.entry(for: dep))?.resultDigest ?? "unknown" }
            key = (try? self.key(for: subtask, dependencyDigests: deps))?.key
        }
        let lastKey = (try? history.entry(for: id))?.key
        return Explanation(id: id, decision: decision, key: key, lastKey: lastKey)
    }
}

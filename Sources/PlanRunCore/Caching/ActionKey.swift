/// A subtask's cache key as computed for one build: made once by
/// `KeyBuilder` when the subtask is decided, then carried to the verdict,
/// the run and the record. Invariant: `cacheKey` was made from
/// `dependencyDigests` (and the inputs as they were then).
package struct ActionKey: Sendable, Hashable {
    /// The key and its component digests (what history and `ac/KEY` record).
    package var cacheKey: CacheKey
    /// The result digest of each dependency the key was made from, by id.
    package var dependencyDigests: [String: String]

    package init(cacheKey: CacheKey, dependencyDigests: [String: String]) {
        self.cacheKey = cacheKey
        self.dependencyDigests = dependencyDigests
    }

    /// The key's hex digest (`ac/KEY`, the `cache_key` columns).
    package var digest: String { cacheKey.key }
}

/// Computes subtasks' keys: lists their input files, digests them through
/// the stat cache and combines them with the definition and the
/// dependencies' result digests (`CacheKey.make`).
package struct KeyBuilder: Sendable {
    package let plan: Plan
    package let callerEnvironment: [String: String]
    package let digester: FileDigester

    package init(plan: Plan, callerEnvironment: [String: String], digester: FileDigester) {
        self.plan = plan
        self.callerEnvironment = callerEnvironment
        self.digester = digester
    }

    /// The current key of `subtask` given its dependencies' result digests.
    /// Every path it looks at (input files, the folders globs list, paths
    /// found absent) is noted in `log` with what `stat` returned: the
    /// up-to-date stamp is made from exactly that list, so a file read here
    /// without noting it would let the stamp miss a change.
    package func key(for subtask: Subtask, dependencyDigests: [String: String], log: StatLog?) throws(CacheError) -> ActionKey {
        let files = try InputGlob.inputFiles(of: subtask, root: plan.directory, log: log)
        var inputDigests: [String: String] = [:]
        for file in files {
            inputDigests[file] = try digester.digest(ofFile: absolute(file), log: log)
        }
        let key = CacheKey.make(
            for: subtask, in: plan, inputDigests: inputDigests, dependencyDigests: dependencyDigests,
            callerEnvironment: callerEnvironment)
        return ActionKey(cacheKey: key, dependencyDigests: dependencyDigests)
    }

    /// The absolute path of a plan-relative path.
    package func absolute(_ relative: String) -> String {
        plan.directory.hasSuffix("/") ? plan.directory + relative : plan.directory + "/" + relative
    }
}

/// The walk every whole-graph key computation shares: selected subtasks in
/// dependency order, each given its dependencies' result digests as
/// decided before it. Used by the build's loop (one subtask at a time, as
/// dependencies finish), the dry run and `explain` (`ContentCache.preview`),
/// `--only` and the remote prefetch (level by level).
package enum KeyWalk {
    /// The result digests of `node`'s dependencies, by id: `digest(dep)`
    /// for each, or `missing` where it is nil. nil when a digest is nil and
    /// `missing` is nil (the key cannot be computed yet).
    package static func dependencyDigests(
        of node: Int, in graph: TaskGraph, missing: String? = nil, _ digest: (Int) -> String?
    ) -> [String: String]? {
        var out: [String: String] = [:]
        for dep in graph.dependencies[node] {
            guard let value = digest(dep) ?? missing else { return nil }
            out[graph.id(dep)] = value
        }
        return out
    }

    /// The selected subtasks in dependency order (plan order among equals).
    package static func order(_ graph: TaskGraph, selected: [Bool]) -> [Int] {
        graph.topologicalOrder().filter { selected[$0] }
    }

    /// The selected subtasks by level (a subtask's level is one more than
    /// its deepest dependency's): every dependency of a subtask is in an
    /// earlier level, so each level's keys can be computed together.
    package static func levels(_ graph: TaskGraph, selected: [Bool]) -> [[Int]] {
        let levels = graph.levels()
        var byLevel: [[Int]] = []
        for node in graph.topologicalOrder() where selected[node] {
            while byLevel.count <= levels[node] { byLevel.append([]) }
            byLevel[levels[node]].append(node)
        }
        return byLevel
    }

    /// Visits the selected subtasks in dependency order: `visit` gets each
    /// one with its dependencies' digests (`missing` for a dependency that
    /// had none) and returns its own result digest, if known.
    package static func walk(
        _ graph: TaskGraph, selected: [Bool], missing: String,
        _ visit: (_ node: Int, _ dependencyDigests: [String: String]) async throws -> String?
    ) async rethrows {
        var digests = [String?](repeating: nil, count: graph.count)
        for node in order(graph, selected: selected) {
            let deps = dependencyDigests(of: node, in: graph, missing: missing) { digests[$0] } ?? [:]
            digests[node] = try await visit(node, deps)
        }
    }
}

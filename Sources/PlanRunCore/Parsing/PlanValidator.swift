/// The checks between parts of a plan: unique ids, known
/// dependencies and agents, no self-dependency or repeated dependency,
/// a `run` for shell subtasks, outputs inside the plan's folder and declared
/// once, no dependency cycle. Every check runs, whatever the others found;
/// each problem is located at the entry that causes it. Linear in the size of
/// the plan (dictionaries, no pairwise comparisons).
///
/// A plan with `includes` is validated one file at a time (`PlanIncludes`):
/// `external` holds the ids of the subtasks its includes bring in
/// (`web/build`), which its dependencies may name; `includedAs` is set for
/// an included plan, whose dependencies name only its own subtasks.
enum PlanValidator {
    static func validate(
        _ plan: Plan, draft: PlanDraft, collector: inout DiagnosticCollector,
        external: Set<String> = [], includedAs namespace: String? = nil
    ) {
        let agentNames = draft.agentOrder + (draft.agentOrder.contains("shell") ? [] : ["shell"])
        // Did-you-mean candidates, made on the first miss; each set's
        // searches share one bounded budget (a plan of many misses stays
        // linear).
        var idSuggestions: Suggestion.Candidates?
        var agentSuggestions = Suggestion.Candidates(agentNames)

        // Agents.
        if let name = plan.defaults.agent, plan.agents[name] == nil {
            collector.error(
                .unknownAgent(name: name, suggestion: agentSuggestions.closest(to: name)),
                at: draft.defaultsAgentLocation)
        }

        var mayHaveCycle = false
        var outputOwners: [String: Int] = [:]
        outputOwners.reserveCapacity(plan.subtasks.count)
        let agentKinds = plan.agents.mapValues(\.kind)
        // Fields are read in place (`subtasks[i].id`): binding a whole
        // `Subtask` would copy (retain and release) every field of every
        // subtask.
        let subtasks = plan.subtasks
        // `plan.index` holds the first subtask of each id: as many entries
        // as subtasks means no id is repeated.
        let idsRepeat = plan.index.count != subtasks.count
        for i in subtasks.indices {
            // Ids: unique.
            if idsRepeat, let first = plan.index[subtasks[i].id], first != i {
                let firstLine = plan.subtasks[first].locations.id?.line ?? plan.subtasks[first].locations.item.line
                collector.error(
                    .duplicateID(id: subtasks[i].id, firstLine: firstLine),
                    at: subtasks[i].locations.id ?? subtasks[i].locations.item)
            }
            // Agent and `run`.
            if let kind = agentKinds[subtasks[i].agent] {
                if kind == .shell, subtasks[i].run == nil {
                    collector.error(.missingRun(subtask: subtasks[i].id), at: subtasks[i].locations.item)
                }
            } else if let location = subtasks[i].locations.agent {
                collector.error(
                    .unknownAgent(name: subtasks[i].agent, suggestion: agentSuggestions.closest(to: subtasks[i].agent)),
                    at: location)
            }
            // An implicit agent is `shell` (always defined) or `defaults.agent`
            // (reported above, once).

            // Dependencies.
            let deps = subtasks[i].dependsOn
            // Short lists (the usual case) are checked without allocating.
            var seen: Set<String>? = deps.count > 8 ? Set(minimumCapacity: deps.count) : nil
            for (k, dep) in deps.enumerated() {
                let location = k < subtasks[i].locations.dependsOn.count
                    ? subtasks[i].locations.dependsOn[k] : subtasks[i].locations.item
                let repeated: Bool
                if seen != nil { repeated = !seen!.insert(dep).inserted } else { repeated = deps[..<k].contains(dep) }
                if dep == subtasks[i].id {
                    collector.error(.selfDependency(id: dep), at: location)
                } else if repeated {
                    collector.error(.duplicateDependency(subtask: subtasks[i].id, dependency: dep), at: location)
                } else if let j = plan.index[dep] {
                    if j >= i { mayHaveCycle = true }
                } else if !external.contains(dep) {
                    if idSuggestions == nil {
                        idSuggestions = Suggestion.Candidates(
                            plan.groups.keys.sorted() + plan.subtasks.lazy.map(\.id) + external.sorted())
                    }
                    var diagnostic = Diagnostic(
                        .unknownDependency(
                            subtask: subtasks[i].id, dependency: dep, suggestion: idSuggestions!.closest(to: dep)),
                        at: location)
                    if let namespace {
                        diagnostic.notes.append(
                            "this plan is included as `\(namespace)`: its subtasks may depend only on its own subtasks, not on those of the plan that includes it")
                    }
                    collector.append(diagnostic)
                }
            }

            // Inputs: none in the state folder. Patterns that leave the
            // plan's folder are the glob's business.
            for (k, input) in subtasks[i].inputs.enumerated() {
                let pattern = input.hasPrefix("-") ? String(input.dropFirst()) : input
                if mayNameStateFolder(pattern), let normalized = normalizedRelativePath(pattern), isInStateFolder(normalized) {
                    collector.error(
                        .insideStateFolder(key: "inputs", path: pattern),
                        at: k < subtasks[i].locations.inputs.count ? subtasks[i].locations.inputs[k] : subtasks[i].locations.item)
                }
            }

            // The depfile: where an output could be (planrun reads it).
            if let depfile = subtasks[i].depfile {
                let location = subtasks[i].locations.depfile ?? subtasks[i].locations.item
                if let normalized = normalizedRelativePath(depfile), !normalized.isEmpty {
                    if isInStateFolder(normalized) {
                        collector.error(.insideStateFolder(key: "depfile", path: depfile), at: location)
                    }
                } else {
                    collector.error(.invalidValue(key: "depfile", value: depfile, expected: "a path inside the plan's folder"),
                                    at: location)
                }
            }

            // Outputs.
            for (k, output) in subtasks[i].outputs.enumerated() {
                let location = k < subtasks[i].locations.outputs.count
                    ? subtasks[i].locations.outputs[k] : subtasks[i].locations.item
                guard let normalized = normalizedRelativePath(output) else {
                    collector.error(.outputEscapes(path: output), at: location)
                    continue
                }
                if normalized.isEmpty {
                    collector.error(
                        .invalidValue(key: "outputs", value: output, expected: "a path inside the plan's folder, not the folder itself"),
                        at: location)
                    continue
                }
                if isInStateFolder(normalized) {
                    collector.error(.insideStateFolder(key: "outputs", path: output), at: location)
                    continue
                }
                // One hash when the output is new (the usual case); the first
                // owner is put back when it is not.
                if let first = outputOwners.updateValue(i, forKey: normalized) {
                    outputOwners[normalized] = first
                    collector.error(
                        .duplicateOutput(path: output, first: plan.subtasks[first].id, second: subtasks[i].id), at: location)
                }
            }
        }

        // Cycles. When every dependency comes earlier in the plan (the usual
        // way plans are written), plan order is a topological order and there
        // is no cycle; otherwise search the graph, without self-edges (those
        // are reported above).
        guard mayHaveCycle else { return }
        var withoutSelfEdges = plan
        for i in withoutSelfEdges.subtasks.indices {
            let id = withoutSelfEdges.subtasks[i].id
            if withoutSelfEdges.subtasks[i].dependsOn.contains(id) {
                withoutSelfEdges.subtasks[i].dependsOn.removeAll { $0 == id }
            }
        }
        for cycle in TaskGraph(plan: withoutSelfEdges).cycles() {
            guard let first = cycle.first, let subtask = plan[first] else { continue }
            collector.error(.cycle(path: cycle), at: subtask.locations.id ?? subtask.locations.item)
        }
    }

    /// The state folder's name in the plan's folder.
    static let stateFolder = ".planrun"

    /// Whether a normalized plan-relative path is the state folder
    /// `.planrun` or inside it. State is never an output or an input:
    /// outputs are removed and replaced by restores and `clean`, and inputs
    /// would make the key depend on planrun's own writes.
    static func isInStateFolder(_ normalized: String) -> Bool {
        normalized == stateFolder || normalized.hasPrefix(stateFolder + "/")
    }

    /// false when `path` cannot name the state folder or a path in it
    /// once normalized: normalizing drops and joins segments but never
    /// makes a new one, so such a path has a segment `.planrun`. Most
    /// inputs are rejected by this scan, with no normalization.
    static func mayNameStateFolder(_ path: String) -> Bool {
        path.utf8.withContiguousStorageIfAvailable(hasStateFolderSegment) ?? hasStateFolderSegment(Array(path.utf8))
    }

    private static let stateFolderName: [UInt8] = Array(stateFolder.utf8)

    private static func hasStateFolderSegment(_ bytes: some RandomAccessCollection<UInt8>) -> Bool {
        let name = stateFolderName
        var length = 0, matching = true
        for byte in bytes {
            if byte == UInt8(ascii: "/") {
                if matching, length == name.count { return true }
                length = 0
                matching = true
                continue
            }
            if matching, length < name.count, byte == name[length] {
                length += 1
            } else {
                matching = false
            }
        }
        return matching && length == name.count
    }

    /// `[A-Za-z0-9_.-]+`
    static func isValidID(_ id: String) -> Bool {
        guard !id.isEmpty else { return false }
        for c in id.utf8 {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
                continue
            default:
                return false
            }
        }
        return true
    }

    /// `path` with `.` and empty components removed and `..` applied; nil
    /// when it is absolute or leaves the folder it is relative to. `""` is
    /// the folder itself.
    static func normalizedRelativePath(_ path: String) -> String? {
        if isNormalRelativePath(path) { return path }
        if path.hasPrefix("/") || path.hasPrefix("~") { return nil }
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..":
                if parts.popLast() == nil { return nil }
            default: parts.append(part)
            }
        }
        return parts.joined(separator: "/")
    }

    /// True when `path` is already normal: relative, not starting with `~`,
    /// and no component is empty, `.` or `..` (most outputs; checked
    /// without allocating).
    private static func isNormalRelativePath(_ path: String) -> Bool {
        let utf8 = path.utf8
        guard let first = utf8.first, first != UInt8(ascii: "/"), first != UInt8(ascii: "~") else { return false }
        var length = 0, dots = 0
        for c in utf8 {
            if c == UInt8(ascii: "/") {
                if length == 0 || (length == dots && dots <= 2) { return false }
                length = 0
                dots = 0
            } else {
                length += 1
                if c == UInt8(ascii: ".") { dots += 1 }
            }
        }
        return length > 0 && !(length == dots && dots <= 2)
    }
}

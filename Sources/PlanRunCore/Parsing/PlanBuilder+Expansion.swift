import Foundation

/// The keys that make a subtask a group (`foreach`, `matrix`) and its
/// `exclude`; nil for an ordinary subtask.
struct GroupKeys {
    var foreach: YAMLPair?
    var matrix: YAMLPair?
    var exclude: YAMLPair?

    init?(_ pairs: YAMLPairs, _ doc: YAMLDocument) {
        for pair in pairs {
            if doc.scalarBytesEqual(pair.key, "foreach") {
                foreach = pair
            } else if doc.scalarBytesEqual(pair.key, "matrix") {
                matrix = pair
            } else if doc.scalarBytesEqual(pair.key, "exclude") {
                exclude = pair
            }
        }
        if foreach == nil && matrix == nil { return nil }
    }
}

/// One instance of a group before it is built: its KEY and what its
/// expressions may name.
struct InstanceSeed {
    var key: String
    var item: String?
    var matrix: [MatrixValue]?
}

extension PlanBuilder {
    // MARK: Variables

    /// Evaluates `vars` in order into the scope, `--var` values first.
    /// Returns the `--var` names the plan does not declare.
    mutating func buildVariables(_ node: YAMLNode?) -> [Diagnostic] {
        var declared: [(name: String, value: YAMLNode)] = []
        if let node, let pairs = mapping(node, key: "vars") {
            for pair in pairs {
                guard let name = keyText(pair) else { continue }
                guard Expression.isName(name) else {
                    collector.error(.invalidName(key: "vars", name: name), at: at(pair.key))
                    continue
                }
                declared.append((name, pair.value))
            }
        }
        scope.declared = declared.map(\.name)
        for (name, value) in declared {
            let isList = doc.items(value) != nil
            if let override = overrides.value(of: name) {
                scope.vars[name] = isList ? .list(override.split(whereSeparator: \.isWhitespace).map(String.init)) : .text(override)
                continue
            }
            if let s = doc.scalar(value), !s.isNull {
                scope.vars[name] = .text(expand(s.text, at: value) ?? s.text)
            } else if isList {
                scope.vars[name] = .list(stringList(value, key: "vars.\(name)", expand: true)?.values ?? [])
            } else {
                collector.error(
                    .wrongType(key: "vars.\(name)", expected: "a string, a number, a boolean or a list of those",
                               found: doc.kindDescription(value)),
                    at: at(value))
                scope.vars[name] = .text("")
            }
        }
        let names = scope.declared
        // `NS/NAME` is for the plan included as NS (`PlanIncludes`).
        return overrides.entries.filter { !$0.name.contains("/") && !names.contains($0.name) }.map { entry in
            Diagnostic(.undeclaredVariable(name: entry.name, suggestion: Suggestion.closest(to: entry.name, in: names)), at: nil)
        }
    }

    // MARK: Groups

    /// The instances of a group (in order), or none when the group has
    /// problems (reported) or no instances. Each instance is built from the
    /// group's nodes with its `item` or `matrix` in scope; a problem the
    /// instances share is reported once.
    mutating func buildGroup(_ node: YAMLNode, pairs: YAMLPairs, keys: GroupKeys) -> [Subtask] {
        if let foreach = keys.foreach, let matrix = keys.matrix {
            let second = doc.line(foreach.key) > doc.line(matrix.key) ? foreach : matrix
            collector.error(.foreachAndMatrix, at: at(second.key))
            return []
        }
        if keys.foreach != nil, let exclude = keys.exclude { collector.error(.excludeWithoutMatrix, at: at(exclude.key)) }
        let idNode = pairs.first { doc.scalarBytesEqual($0.key, "id") }?.value
        guard let idNode, let id = doc.scalar(idNode)?.text, PlanValidator.isValidID(id) else {
            _ = buildSubtask(node, pairs: pairs) // reports the id's problem
            return []
        }
        let groupAt = at(idNode)
        if groups[id] != nil {
            collector.error(.duplicateID(id: id, firstLine: groupLocations[id]?.line ?? groupAt.line), at: groupAt)
            return []
        }
        let seeds: [InstanceSeed]?
        if let foreach = keys.foreach {
            seeds = foreachItems(foreach.value)?.map { InstanceSeed(key: $0, item: $0) }
        } else {
            seeds = matrixInstances(keys.matrix!.value, exclude: keys.exclude?.value)
        }
        groupLocations[id] = groupAt
        guard let seeds else {
            groups[id] = []
            return []
        }
        var instances: [Subtask] = []
        instances.reserveCapacity(seeds.count)
        var ids = Set<String>(minimumCapacity: seeds.count)
        var reported = Set<Diagnostic>()
        for seed in seeds {
            let instanceID = id + ":" + seed.key
            if seed.key.isEmpty {
                collector.error(.emptyInstanceKey(group: id), at: groupAt)
                continue
            }
            if seed.key.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                collector.error(.controlCharacterInInstanceKey(id: instanceID), at: groupAt)
                continue
            }
            guard ids.insert(instanceID).inserted else {
                collector.error(.duplicateInstance(id: instanceID), at: groupAt)
                continue
            }
            scope.item = seed.item
            scope.matrix = seed.matrix
            let mark = collector.diagnostics.count
            if var subtask = buildSubtask(node, pairs: pairs) {
                subtask.id = instanceID
                subtask.item = seed.item
                subtask.matrix = seed.matrix
                instances.append(subtask)
            }
            collector.dropRepeats(since: mark, seen: &reported)
        }
        scope.item = nil
        scope.matrix = nil
        groups[id] = instances.map(\.id)
        return instances
    }

    /// The items of `foreach`: a list (entries may splice list variables),
    /// a list variable, or `{glob: PATTERN}` / `{glob: [PATTERNS]}`. nil
    /// when reported.
    mutating func foreachItems(_ node: YAMLNode) -> [String]? {
        let expected = "a list, a list variable or `{glob: PATTERN}`"
        if let s = doc.scalar(node), !s.isNull {
            if let name = Expression.soleName(s.text), name.hasPrefix("vars.") {
                switch scope.resolve(name) {
                case .success(.list(let list)): return list
                case .success(.text): collector.error(.notAListVariable(name: String(name.dropFirst(5))), at: at(node))
                case .failure(let error): collector.error(error, at: at(node))
                }
                return nil
            }
            if Expression.hasExpression(s.text) {
                collector.error(.wrongType(key: "foreach", expected: expected, found: "a string"), at: at(node))
                return nil
            }
        }
        if doc.items(node) != nil { return stringList(node, key: "foreach", expand: true)?.values }
        guard let pairs = doc.pairs(node) else {
            collector.error(.wrongType(key: "foreach", expected: expected, found: doc.kindDescription(node)), at: at(node))
            return nil
        }
        var patterns: [(String, YAMLNode)] = []
        var sawGlob = false
        for pair in pairs {
            guard let key = keyText(pair) else { continue }
            guard key == "glob" else {
                unknown(pair, key: key, context: "`foreach`", known: ["glob"])
                continue
            }
            sawGlob = true
            if let items = doc.items(pair.value) {
                for item in items {
                    guard let s = doc.scalar(item), !s.isNull else {
                        collector.error(
                            .wrongEntryType(key: "foreach.glob", expected: "a string", found: doc.kindDescription(item)),
                            at: at(item))
                        return nil
                    }
                    switch scope.expandElement(s.text) {
                    case .success(let values): patterns += values.map { ($0, item) }
                    case .failure(let error):
                        collector.error(error, at: at(item))
                        return nil
                    }
                }
            } else if let pattern = expandedText(pair.value, key: "foreach.glob") {
                patterns.append((pattern, pair.value))
            } else {
                return nil
            }
        }
        guard sawGlob else {
            collector.error(.missingKey(key: "glob", context: "`foreach`"), at: at(node))
            return nil
        }
        var files = Set<String>()
        var ok = true
        for (entry, patternNode) in patterns {
            let pattern = InputGlob.Pattern(entry)
            if pattern.text.isEmpty {
                collector.error(.invalidValue(key: "foreach.glob", value: entry, expected: "a glob pattern"), at: at(patternNode))
                ok = false
                continue
            }
            do throws(CacheError) {
                let matches = try InputGlob.expand(pattern.text, root: directory)
                if matches.isEmpty && !pattern.optional {
                    collector.error(.globMatchesNothing(pattern: pattern.text), at: at(patternNode))
                    ok = false
                }
                files.formUnion(matches)
                foreachGlobs.append(pattern.text)
            } catch {
                collector.error(.invalidGlob(pattern: pattern.text, reason: "\(error)"), at: at(patternNode))
                ok = false
            }
        }
        return ok ? files.sorted(by: byteOrder) : nil
    }

    /// The combinations of `matrix` (first key slowest) less those an
    /// `exclude` entry matches on every key it names. nil when reported.
    mutating func matrixInstances(_ node: YAMLNode, exclude: YAMLNode?) -> [InstanceSeed]? {
        guard let pairs = mapping(node, key: "matrix") else { return nil }
        var dimensions: [(name: String, values: [String])] = []
        var ok = true
        for pair in pairs {
            guard let name = keyText(pair) else {
                ok = false
                continue
            }
            guard Expression.isName(name) else {
                collector.error(.invalidName(key: "matrix", name: name), at: at(pair.key))
                ok = false
                continue
            }
            var values: [String]?
            if let s = doc.scalar(pair.value), let sole = Expression.soleName(s.text), sole.hasPrefix("vars.") {
                switch scope.resolve(sole) {
                case .success(.list(let list)): values = list
                case .success(.text): collector.error(.notAListVariable(name: String(sole.dropFirst(5))), at: at(pair.value))
                case .failure(let error): collector.error(error, at: at(pair.value))
                }
            } else {
                values = stringList(pair.value, key: "matrix.\(name)", expand: true)?.values
            }
            guard let values else {
                ok = false
                continue
            }
            if values.isEmpty {
                collector.error(
                    .invalidValue(key: "matrix.\(name)", value: "[]", expected: "a non-empty list of values"), at: at(pair.value))
                ok = false
            }
            dimensions.append((name, values))
        }
        if dimensions.isEmpty, ok {
            collector.error(.invalidValue(key: "matrix", value: "{}", expected: "at least one key"), at: at(node))
            return nil
        }
        let excluded = exclude.flatMap { excludeEntries($0, names: dimensions.map(\.name)) }
        guard ok, exclude == nil || excluded != nil else { return nil }

        var combinations: [[MatrixValue]] = [[]]
        for (name, values) in dimensions {
            var next: [[MatrixValue]] = []
            next.reserveCapacity(combinations.count * values.count)
            for prefix in combinations {
                for value in values { next.append(prefix + [MatrixValue(name: name, value: value)]) }
            }
            combinations = next
        }
        return combinations.compactMap { combination in
            let matchesExclude = (excluded ?? []).contains { entry in
                entry.allSatisfy { name, value in combination.contains { $0.name == name && $0.value == value } }
            }
            if matchesExclude { return nil }
            return InstanceSeed(key: combination.map(\.value).joined(separator: ","), matrix: combination)
        }
    }

    /// `exclude`: a list of mappings from matrix keys to values.
    mutating func excludeEntries(_ node: YAMLNode, names: [String]) -> [[(String, String)]]? {
        guard let items = doc.items(node) else {
            collector.error(
                .wrongType(key: "exclude", expected: "a list of mappings", found: doc.kindDescription(node)), at: at(node))
            return nil
        }
        var entries: [[(String, String)]] = []
        var ok = true
        for item in items {
            guard let pairs = doc.pairs(item) else {
                collector.error(.wrongEntryType(key: "exclude", expected: "a mapping", found: doc.kindDescription(item)), at: at(item))
                ok = false
                continue
            }
            var entry: [(String, String)] = []
            for pair in pairs {
                guard let key = keyText(pair) else { continue }
                guard names.contains(key) else {
                    collector.error(.unknownMatrixKey(key: key, suggestion: Suggestion.closest(to: key, in: names)), at: at(pair.key))
                    ok = false
                    continue
                }
                guard let value = expandedText(pair.value, key: "exclude.\(key)") else {
                    ok = false
                    continue
                }
                entry.append((key, value))
            }
            entries.append(entry)
        }
        return ok ? entries : nil
    }

    /// Replaces each `depends_on` entry naming a group by the group's
    /// instances (none for an empty group), at the entry's location, and
    /// reports ids used both by a group and by a subtask.
    mutating func resolveGroupDependencies(_ subtasks: inout [Subtask]) {
        for subtask in subtasks where subtask.item == nil && subtask.matrix == nil {
            if let groupAt = groupLocations[subtask.id] {
                let first = min(groupAt.line, subtask.locations.id?.line ?? subtask.locations.item.line)
                let later = groupAt.line > first ? groupAt : subtask.locations.id ?? subtask.locations.item
                collector.error(.duplicateID(id: subtask.id, firstLine: first), at: later)
            }
        }
        Self.expandGroupDependencies(&subtasks, groups: groups)
    }

    /// Replaces each `depends_on` entry that names a group in `groups` by
    /// the group's instances (none for an empty group), keeping the entry's
    /// location for each. Used for a plan's own groups and, by
    /// `PlanIncludes`, for the groups of the plans it includes (`NS/GROUP`).
    static func expandGroupDependencies(_ subtasks: inout [Subtask], groups: [String: [String]]) {
        guard !groups.isEmpty else { return }
        for i in subtasks.indices where subtasks[i].dependsOn.contains(where: { groups[$0] != nil }) {
            let deps = subtasks[i].dependsOn
            let locations = subtasks[i].locations.dependsOn
            var newDeps: [String] = []
            var newLocations: [SourceLocation] = []
            for (k, dep) in deps.enumerated() {
                let location = k < locations.count ? locations[k] : subtasks[i].locations.item
                let ids = groups[dep] ?? [dep]
                newDeps += ids
                newLocations += repeatElement(location, count: ids.count)
            }
            subtasks[i].dependsOn = newDeps
            subtasks[i].locations.dependsOn = newLocations
        }
    }
}

import Foundation

/// Reading one value of a plan: typed scalars, lists, mappings, texts with
/// expressions, environments and headers. Each reports its own problems at
/// the node and returns nil (or an empty value) so the caller leaves the
/// field at its default.
extension PlanBuilder {
    /// The key's text; reports keys that are lists or mappings.
    mutating func keyText(_ pair: YAMLPair) -> String? {
        if let t = doc.keyText(pair) {
            if Expression.hasExpression(t) { collector.error(.expressionNotAllowed, at: at(pair.key)) }
            return t
        }
        collector.error(.complexKey, at: at(pair.key))
        return nil
    }

    mutating func unknown(_ pair: YAMLPair, key: String, context: String, known: [String]) {
        let suggestion = Suggestion.closest(to: key, in: known)
        collector.error(.unknownKey(key: key, context: context, suggestion: suggestion), at: at(pair.key))
    }

    mutating func mapping(_ node: YAMLNode, key: String) -> YAMLPairs? {
        if let pairs = doc.pairs(node) { return pairs }
        collector.error(.wrongType(key: key, expected: "a mapping", found: doc.kindDescription(node)), at: at(node))
        return nil
    }

    /// Text fields take any scalar but null: `name: 2024` is the text "2024".
    /// Fields that do not expand expressions reject them (nil, reported).
    mutating func text(_ node: YAMLNode, key: String) -> String? {
        guard let t = rawText(node, key: key) else { return nil }
        if Expression.hasExpression(t) {
            collector.error(.expressionNotAllowed, at: at(node))
            return nil
        }
        return t
    }

    /// A text field whose expressions are expanded in the current scope.
    mutating func expandedText(_ node: YAMLNode, key: String) -> String? {
        rawText(node, key: key).flatMap { expand($0, at: node) }
    }

    /// `text` expanded in the current scope. A bad expression is reported
    /// and the text kept as written, so that the field is not also
    /// reported missing.
    mutating func expand(_ text: String, at node: YAMLNode) -> String? {
        // Without `${{` there is nothing to expand (nor any `$${{` escape):
        // the text is its own expansion, with no parse and no cache entry.
        guard Expression.mayContain(text) else { return text }
        switch template(text).flatMap(scope.expand) {
        case .success(let t): return t
        case .failure(let error):
            collector.error(error, at: at(node))
            return text
        }
    }

    /// `text` parsed once: a group's instances expand the same texts.
    mutating func template(_ text: String) -> Result<[ExpressionPart], PlanError> {
        if let parsed = templates[text] { return parsed }
        let parsed = Expression.parse(text)
        templates[text] = parsed
        return parsed
    }

    mutating func rejectExpression(_ text: String, at node: YAMLNode) {
        if Expression.hasExpression(text) { collector.error(.expressionNotAllowed, at: at(node)) }
    }

    mutating func rawText(_ node: YAMLNode, key: String) -> String? {
        if let s = doc.scalar(node), !s.isNull { return s.text }
        collector.error(.wrongType(key: key, expected: "a string", found: doc.kindDescription(node)), at: at(node))
        return nil
    }

    /// True (reported) when a scalar that must be a number or boolean is
    /// an expression, which only text fields may hold.
    mutating func isExpression(_ node: YAMLNode) -> Bool {
        guard let s = doc.scalar(node), Expression.hasExpression(s.text) else { return false }
        collector.error(.expressionNotAllowed, at: at(node))
        return true
    }

    mutating func integer(_ node: YAMLNode, key: String, minimum: Int?) -> Int? {
        if isExpression(node) { return nil }
        let expected = switch minimum {
        case 0: "a non-negative integer"
        case 1: "a positive integer"
        default: "an integer"
        }
        let s = doc.scalar(node)
        let n: Int
        switch s?.value {
        case .int(let value)?: n = value
        case .integerOutOfRange?:
            collector.error(.integerOutOfRange(text: s?.text ?? ""), at: at(node))
            return nil
        default:
            collector.error(.wrongType(key: key, expected: expected, found: doc.kindDescription(node)), at: at(node))
            return nil
        }
        if let minimum, n < minimum {
            collector.error(.invalidValue(key: key, value: s?.text ?? String(n), expected: expected), at: at(node))
            return nil
        }
        return n
    }

    mutating func boolean(_ node: YAMLNode, key: String) -> Bool? {
        if isExpression(node) { return nil }
        if let s = doc.scalar(node), case .bool(let b) = s.value { return b }
        collector.error(.wrongType(key: key, expected: "`true` or `false`", found: doc.kindDescription(node)), at: at(node))
        return nil
    }

    mutating func duration(_ node: YAMLNode, key: String) -> Duration? {
        guard let t = text(node, key: key) else { return nil }
        if let d = DurationText.parse(t) { return d }
        collector.error(.invalidDuration(key: key, value: t), at: at(node))
        return nil
    }

    /// A list of strings. With `expand`, each entry is expanded in the
    /// current scope and an entry that is exactly `${{ vars.L }}` for a
    /// list L is replaced by L's elements; without, expressions are errors.
    mutating func stringList(
        _ node: YAMLNode, key: String, expand: Bool = false
    ) -> (values: [String], locations: [SourceLocation])? {
        guard let items = doc.items(node) else {
            collector.error(.wrongType(key: key, expected: "a list of strings", found: doc.kindDescription(node)), at: at(node))
            return nil
        }
        var values: [String] = []
        var locations: [SourceLocation] = []
        values.reserveCapacity(items.count)
        locations.reserveCapacity(items.count)
        var ok = true
        for item in items {
            if let s = doc.scalar(item), !s.isNull {
                if !expand {
                    rejectExpression(s.text, at: item)
                    values.append(s.text)
                    locations.append(at(item))
                } else if Expression.mayContain(s.text) {
                    switch template(s.text).flatMap(scope.expandElement) {
                    case .success(let elements):
                        values += elements
                        locations += repeatElement(at(item), count: elements.count)
                    case .failure(let error):
                        collector.error(error, at: at(item))
                        ok = false
                    }
                } else {
                    values.append(s.text)
                    locations.append(at(item))
                }
            } else {
                collector.error(.wrongEntryType(key: key, expected: "a string", found: doc.kindDescription(item)), at: at(item))
                ok = false
            }
        }
        return ok ? (values, locations) : nil
    }

    /// A list of paths or globs: strings, none of them empty.
    mutating func pathList(_ node: YAMLNode, key: String) -> (values: [String], locations: [SourceLocation])? {
        guard let list = stringList(node, key: key, expand: true) else { return nil }
        var ok = true
        for (value, location) in zip(list.values, list.locations) where value.isEmpty {
            collector.error(.invalidValue(key: key, value: "", expected: "a path relative to the plan's folder"), at: location)
            ok = false
        }
        return ok ? list : nil
    }

    /// `env` maps: names to text. Numbers and booleans are taken as written
    /// (`VERBOSE: 1` is "1", `DEBUG: true` is "true"); null, lists and
    /// mappings are errors.
    mutating func environment(_ node: YAMLNode, key: String) -> [String: String] {
        guard let pairs = mapping(node, key: key) else { return [:] }
        var env: [String: String] = [:]
        env.reserveCapacity(pairs.count)
        for pair in pairs {
            guard let name = keyText(pair) else { continue }
            if !Self.isVariableName(name) {
                collector.error(.invalidValue(key: key, value: name, expected: "an environment variable name"), at: at(pair.key))
                continue
            }
            if let s = doc.scalar(pair.value), !s.isNull {
                // The reader has dropped keys with the same bytes; an entry
                // here is a name equal to this one only as a Swift String.
                if let index = env.index(forKey: name) {
                    reportNormalizationClash(pairs, key: name, first: env.keys[index], at: pair.key)
                    continue
                }
                if let value = Expression.mayContain(s.text) ? expand(s.text, at: pair.value) : s.text {
                    env[name] = value
                }
            } else {
                collector.error(
                    .wrongType(key: "\(key).\(name)", expected: "a string", found: doc.kindDescription(pair.value)), at: at(pair.value))
            }
        }
        return env
    }

    /// An http agent's `headers`: header name -> the name of the environment
    /// variable that holds its value.
    mutating func headers(_ node: YAMLNode) -> [String: String] {
        guard let pairs = mapping(node, key: "headers") else { return [:] }
        var headers: [String: String] = [:]
        for pair in pairs {
            guard let name = keyText(pair) else { continue }
            guard Self.isHeaderName(name) else {
                collector.error(.invalidValue(key: "headers", value: name, expected: "an HTTP header name"), at: at(pair.key))
                continue
            }
            guard let variable = text(pair.value, key: "headers.\(name)") else { continue }
            guard Self.isVariableName(variable) else {
                collector.error(
                    .invalidValue(key: "headers.\(name)", value: variable, expected: "the name of an environment variable"),
                    at: at(pair.value))
                continue
            }
            headers[name] = variable
        }
        return headers
    }

    /// `http://HOST...` or `https://HOST...` (scheme in any case).
    static func isHTTPURL(_ text: String) -> Bool {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else { return false }
        return true
    }

    /// An HTTP header field name (RFC 9110 `token`).
    static func isHeaderName(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.allSatisfy { c in
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || "!#$%&'*+-.^_`|~".unicodeScalars.contains(c)
        }
    }

    /// Reports a key that differs from an earlier one of the same mapping
    /// only in Unicode normalization (`é` and `e`+U+0301). The reader keeps
    /// both, but the model's String-keyed dictionaries (and the environment
    /// they become) would merge them, so one would be lost silently.
    mutating func reportNormalizationClash(_ pairs: YAMLPairs, key: String, first: String, at keyNode: YAMLNode) {
        let firstLine = pairs.first { doc.keyText($0) == key }.map { doc.line($0.key) } ?? doc.line(keyNode)
        collector.error(.keysDifferOnlyInNormalization(key: key, first: first, firstLine: firstLine), at: at(keyNode))
    }

    /// A name the environment can hold: not empty, no `=` and no NUL.
    static func isVariableName(_ name: String) -> Bool {
        !name.isEmpty && !name.utf8.contains(UInt8(ascii: "=")) && !name.utf8.contains(0)
    }
}

import Foundation

/// What `PlanBuilder` produces: the model, plus what validation needs to
/// point at (declaration order and locations not kept in the model).
struct PlanDraft {
    var plan: Plan
    /// Agent names in declaration order (for deterministic suggestions).
    var agentOrder: [String]
    /// Where `defaults.agent` is written, if it is.
    var defaultsAgentLocation: SourceLocation?
    /// `includes:` in declaration order (`PlanIncludes` resolves them).
    var includes: [IncludeDeclaration] = []
    /// The variables the plan declares (`vars`), in order.
    var variables: [String] = []
    /// `--var` names the plan does not declare: a command-line error.
    var undeclaredVariables: [Diagnostic] = []
}

/// Turns the nodes of a plan document into the model (`Plan`): every
/// key known, every value of the right type. Problems are collected, never
/// thrown, so one wrong field does not hide others; a field with a problem is
/// left at its default. References between parts (dependencies, agents,
/// outputs, cycles) are `PlanValidator`'s job.
struct PlanBuilder {
    let doc: YAMLDocument
    let file: String
    let directory: String
    let defaultName: String
    var collector: DiagnosticCollector
    /// `--var` values, applied before any variable is evaluated.
    let overrides: VariableOverrides
    /// What expressions may name where the builder is: the plan's
    /// variables, plus `item` or `matrix` while an instance is built.
    var scope = ExpressionScope(varsOnly: true)
    /// Group id -> instance ids, in plan order.
    var groups: [String: [String]] = [:]
    /// Group id -> where its id is written.
    var groupLocations: [String: SourceLocation] = [:]
    var foreachGlobs: [String] = []
    /// Texts with expressions, parsed (`template`).
    var templates: [String: Result<[ExpressionPart], PlanError>] = [:]

    static let planKeys = [
        "version", "name", "goal", "max_parallel", "approval", "vars", "env", "defaults", "agents", "includes", "subtasks",
    ]
    static let defaultsKeys = ["agent", "retries", "retry_backoff", "timeout"]
    static let agentKeys = [
        "kind", "shell", "command", "url", "headers", "max_parallel", "retries", "retry_backoff", "timeout", "env",
    ]
    static let subtaskKeys = [
        "id", "description", "agent", "run", "depends_on", "inputs", "outputs", "with", "cache", "env",
        "env_inputs", "retries", "retry_backoff", "timeout", "foreach", "matrix", "exclude", "depfile",
    ]

    init(
        document: YAMLDocument, directory: String, defaultName: String, collector: DiagnosticCollector,
        overrides: VariableOverrides = VariableOverrides()
    ) {
        self.doc = document
        self.overrides = overrides
        self.file = document.file
        self.directory = directory
        self.defaultName = defaultName
        self.collector = collector
    }

    func at(_ node: YAMLNode) -> SourceLocation { doc.location(node) }

    // MARK: Plan

    mutating func build(root: YAMLNode, pairs: YAMLPairs) -> PlanDraft {
        var version: Int?
        var sawVersion = false
        var name: String?
        var goal: String?
        var maxParallel: Int?
        var approval = ApprovalMode.none
        var env: [String: String] = [:]
        var defaults = SubtaskDefaults()
        var defaultsAgentLocation: SourceLocation?
        var agents: [String: AgentDefinition] = [:]
        var agentOrder: [String] = []
        var subtasks: [Subtask] = []
        var sawSubtasks = false
        var includes: [IncludeDeclaration] = []

        // Variables first: every other value may use them, wherever `vars` is written.
        let varsNode = pairs.first { doc.scalarBytesEqual($0.key, "vars") }?.value
        let undeclared = buildVariables(varsNode)

        for pair in pairs {
            guard let key = keyText(pair) else { continue }
            let value = pair.value
            switch key {
            case "version":
                sawVersion = true
                version = integer(value, key: key, minimum: nil)
                if let v = version, v != planFormatVersion {
                    collector.error(.unsupportedVersion(found: doc.scalar(value)?.text ?? String(v)), at: at(value))
                }
            case "name":
                name = text(value, key: key)
                if name?.isEmpty == true {
                    collector.error(.invalidValue(key: key, value: "", expected: "a non-empty name"), at: at(value))
                    name = nil
                }
            case "goal": goal = text(value, key: key)
            case "max_parallel": maxParallel = integer(value, key: key, minimum: 1)
            case "approval":
                if let t = text(value, key: key) {
                    if let mode = ApprovalMode(rawValue: t) { approval = mode } else {
                        collector.error(.invalidValue(key: key, value: t, expected: "`none` or `required`"), at: at(value))
                    }
                }
            case "vars": break
            case "env": env = environment(value, key: key)
            case "defaults":
                (defaults, defaultsAgentLocation) = buildDefaults(value)
            case "agents":
                (agents, agentOrder) = buildAgents(value)
            case "includes":
                includes = buildIncludes(value)
            case "subtasks":
                sawSubtasks = true
                subtasks = buildSubtaskList(value)
            default:
                unknown(pair, key: key, context: "the plan", known: Self.planKeys)
            }
        }
        if !sawVersion { collector.error(.missingKey(key: "version", context: "the plan"), at: at(root)) }
        if !sawSubtasks { collector.error(.missingKey(key: "subtasks", context: "the plan"), at: at(root)) }

        // Resolve each subtask's agent now that `defaults.agent` is known.
        if let agent = defaults.agent {
            for i in subtasks.indices where subtasks[i].locations.agent == nil { subtasks[i].agent = agent }
        }
        if !groups.isEmpty { resolveGroupDependencies(&subtasks) }
        let plan = Plan(
            file: file, directory: directory, version: version ?? planFormatVersion,
            name: name ?? defaultName, goal: goal, maxParallel: maxParallel, approval: approval,
            env: env, defaults: defaults, agents: agents, subtasks: subtasks, groups: groups,
            foreachGlobs: foreachGlobs)
        return PlanDraft(
            plan: plan, agentOrder: agentOrder, defaultsAgentLocation: defaultsAgentLocation, includes: includes,
            variables: scope.declared, undeclaredVariables: undeclared)
    }

    // MARK: Includes

    static let includeKeys = ["plan", "vars"]

    /// `includes:`: namespace -> path, or namespace -> `{plan: path, vars: {...}}`.
    mutating func buildIncludes(_ node: YAMLNode) -> [IncludeDeclaration] {
        guard let pairs = mapping(node, key: "includes") else { return [] }
        var includes: [IncludeDeclaration] = []
        for pair in pairs {
            guard let namespace = keyText(pair) else { continue }
            if !PlanValidator.isValidID(namespace) || namespace == "." || namespace == ".." {
                collector.error(
                    .invalidValue(key: "includes", value: namespace, expected: "a namespace of letters, digits, `_`, `.` and `-`"),
                    at: at(pair.key))
                continue
            }
            var path: (String, SourceLocation)?
            var vars: [IncludeDeclaration.Variable] = []
            if doc.scalar(pair.value) != nil {
                if let t = expandedText(pair.value, key: "includes.\(namespace)") { path = (t, at(pair.value)) }
            } else if let fields = mapping(pair.value, key: "includes.\(namespace)") {
                var sawPlan = false
                for field in fields {
                    guard let key = keyText(field) else { continue }
                    switch key {
                    case "plan":
                        sawPlan = true
                        if let t = expandedText(field.value, key: "plan") { path = (t, at(field.value)) }
                    case "vars":
                        guard let entries = mapping(field.value, key: "vars") else { continue }
                        for entry in entries {
                            guard let name = keyText(entry) else { continue }
                            if let s = doc.scalar(entry.value), !s.isNull {
                                let value = expand(s.text, at: entry.value) ?? s.text
                                vars.append(.init(name: name, value: .text(value), location: at(entry.key)))
                            } else if let list = stringList(entry.value, key: "vars.\(name)", expand: true) {
                                vars.append(.init(name: name, value: .list(list.values), location: at(entry.key)))
                            }
                        }
                    default:
                        unknown(field, key: key, context: "include `\(namespace)`", known: Self.includeKeys)
                    }
                }
                if !sawPlan { collector.error(.missingKey(key: "plan", context: "include `\(namespace)`"), at: at(pair.value)) }
            }
            guard let (text, location) = path else { continue }
            if text.isEmpty {
                collector.error(.invalidValue(key: "includes.\(namespace)", value: "", expected: "the path of a plan file"), at: location)
                continue
            }
            includes.append(IncludeDeclaration(
                namespace: namespace, namespaceLocation: at(pair.key), path: text, pathLocation: location, vars: vars))
        }
        return includes
    }

    // MARK: Defaults and agents

    mutating func buildDefaults(_ node: YAMLNode) -> (SubtaskDefaults, SourceLocation?) {
        var defaults = SubtaskDefaults()
        var agentLocation: SourceLocation?
        guard let pairs = mapping(node, key: "defaults") else { return (defaults, nil) }
        for pair in pairs {
            guard let key = keyText(pair) else { continue }
            switch key {
            case "agent":
                defaults.agent = text(pair.value, key: key)
                if defaults.agent != nil { agentLocation = at(pair.value) }
            case "retries": defaults.retries = integer(pair.value, key: key, minimum: 0)
            case "retry_backoff": defaults.retryBackoff = duration(pair.value, key: key)
            case "timeout": defaults.timeout = duration(pair.value, key: key)
            default: unknown(pair, key: key, context: "`defaults`", known: Self.defaultsKeys)
            }
        }
        return (defaults, agentLocation)
    }

    mutating func buildAgents(_ node: YAMLNode) -> ([String: AgentDefinition], [String]) {
        var agents: [String: AgentDefinition] = [:]
        var order: [String] = []
        guard let pairs = mapping(node, key: "agents") else { return (agents, order) }
        for pair in pairs {
            guard let name = keyText(pair) else { continue }
            if !PlanValidator.isValidID(name) {
                collector.error(
                    .invalidValue(key: "agents", value: name, expected: "an agent name of letters, digits, `_`, `.` and `-`"),
                    at: at(pair.key))
            }
            if let agent = buildAgent(name: name, pair: pair) {
                agents[name] = agent
                order.append(name)
            }
        }
        return (agents, order)
    }

    mutating func buildAgent(name: String, pair: YAMLPair) -> AgentDefinition? {
        guard let pairs = mapping(pair.value, key: name) else { return nil }
        let context = "agent `\(name)`"
        var kind: AgentKind?
        var agent = AgentDefinition(name: name, kind: .shell, location: at(pair.key))
        var command: YAMLNode?
        var url: YAMLNode?
        for field in pairs {
            guard let key = keyText(field) else { continue }
            let value = field.value
            switch key {
            case "kind":
                if let t = text(value, key: key) {
                    if let k = AgentKind(rawValue: t) { kind = k } else {
                        collector.error(.invalidValue(key: key, value: t, expected: "`shell`, `command` or `http`"), at: at(value))
                        kind = nil // inferred below, so that one mistake gives one error
                    }
                }
            case "shell":
                if let list = stringList(value, key: key) {
                    if list.values.isEmpty {
                        collector.error(.wrongType(key: key, expected: "a non-empty list of strings", found: "an empty list"), at: at(value))
                    } else {
                        agent.shell = list.values
                    }
                }
            case "command":
                command = value
                agent.command = stringList(value, key: key, expand: true)?.values ?? []
            case "url":
                url = value
                if let t = expandedText(value, key: key) {
                    if Self.isHTTPURL(t) { agent.url = t } else {
                        collector.error(.invalidValue(key: key, value: t, expected: "an `http://` or `https://` URL"), at: at(value))
                    }
                }
            case "headers": agent.headers = headers(value)
            case "max_parallel": agent.maxParallel = integer(value, key: key, minimum: 1)
            case "retries": agent.retries = integer(value, key: key, minimum: 0)
            case "retry_backoff": agent.retryBackoff = duration(value, key: key)
            case "timeout": agent.timeout = duration(value, key: key)
            case "env": agent.env = environment(value, key: key)
            default: unknown(field, key: key, context: context, known: Self.agentKeys)
            }
        }
        // Without `kind`, an agent with a `command` is a command agent, one
        // with a `url` an http agent.
        agent.kind = kind ?? (command != nil ? .command : url != nil ? .http : .shell)
        if agent.kind == .http, url == nil {
            collector.error(.missingKey(key: "url", context: "agent `\(name)` of kind `http`"), at: at(pair.key))
        }
        if agent.kind == .command {
            if let command {
                if doc.items(command)?.isEmpty == true {
                    collector.error(.missingCommand(agent: name), at: at(command))
                }
            } else {
                collector.error(.missingCommand(agent: name), at: at(pair.key))
            }
        }
        return agent
    }

    // MARK: Subtasks

    mutating func buildSubtaskList(_ node: YAMLNode) -> [Subtask] {
        guard let items = doc.items(node) else {
            collector.error(.wrongType(key: "subtasks", expected: "a list of subtasks", found: doc.kindDescription(node)), at: at(node))
            return []
        }
        if items.isEmpty {
            collector.error(.emptySubtasks, at: at(node))
            return []
        }
        var subtasks: [Subtask] = []
        subtasks.reserveCapacity(items.count)
        for item in items {
            guard let pairs = doc.pairs(item) else {
                collector.error(
                    .wrongEntryType(key: "subtasks", expected: "a mapping", found: doc.kindDescription(item)), at: at(item))
                continue
            }
            if let group = GroupKeys(pairs, doc) {
                subtasks += buildGroup(item, pairs: pairs, keys: group)
            } else if let subtask = buildSubtask(item, pairs: pairs) {
                subtasks.append(subtask)
            }
        }
        return subtasks
    }

    /// nil when the subtask has no usable id (reported).
    mutating func buildSubtask(_ item: YAMLNode, pairs: YAMLPairs) -> Subtask? {
        var locations = SubtaskLocations(item: at(item))
        var id: String?
        var sawID = false
        // The id first, so that messages about other keys can name it.
        for pair in pairs where doc.scalarBytesEqual(pair.key, "id") {
            sawID = true
            id = text(pair.value, key: "id")
            locations.id = at(pair.value)
            if let i = id, !PlanValidator.isValidID(i) { collector.error(.invalidID(id: i), at: at(pair.value)) }
        }
        if !sawID { collector.error(.missingKey(key: "id", context: "a subtask"), at: at(item)) }
        let context = id.map { "subtask `\($0)`" } ?? "a subtask"
        var subtask = Subtask(id: id ?? "", locations: locations)
        // A subtask's own fields may name `item` and `matrix` (errors outside a group).
        scope.varsOnly = false
        defer { scope.varsOnly = true }

        for pair in pairs {
            guard let key = keyText(pair) else { continue }
            let value = pair.value
            switch key {
            case "id", "foreach", "matrix": break
            case "exclude":
                // A group's `exclude` is checked with its `matrix` (`buildGroup`).
                if scope.item == nil && scope.matrix == nil { collector.error(.excludeWithoutMatrix, at: at(pair.key)) }
            case "depfile":
                if let path = expandedText(value, key: key) {
                    if path.isEmpty {
                        collector.error(
                            .invalidValue(key: key, value: "", expected: "a path relative to the plan's folder"), at: at(value))
                    } else {
                        subtask.depfile = path
                        subtask.locations.depfile = at(value)
                    }
                }
            case "description": subtask.description = expandedText(value, key: key)
            case "agent":
                if let a = text(value, key: key) {
                    subtask.agent = a
                    subtask.locations.agent = at(value)
                }
            case "run": subtask.run = expandedText(value, key: key)
            case "depends_on":
                if let list = stringList(value, key: key, expand: true) {
                    subtask.dependsOn = list.values
                    subtask.locations.dependsOn = list.locations
                }
            case "inputs":
                if let list = pathList(value, key: key) {
                    subtask.inputs = list.values
                    subtask.locations.inputs = list.locations
                }
            case "outputs":
                if let list = pathList(value, key: key) {
                    subtask.outputs = list.values
                    subtask.locations.outputs = list.locations
                }
            case "with": subtask.withJSON = json(value)
            case "cache": subtask.cache = boolean(value, key: key) ?? true
            case "env": subtask.env = environment(value, key: key)
            case "env_inputs":
                if let list = stringList(value, key: key) {
                    for (name, location) in zip(list.values, list.locations) where !Self.isVariableName(name) {
                        collector.error(
                            .invalidValue(key: key, value: name, expected: "an environment variable name"), at: location)
                    }
                    subtask.envInputs = list.values
                }
            case "retries": subtask.retries = integer(value, key: key, minimum: 0)
            case "retry_backoff": subtask.retryBackoff = duration(value, key: key)
            case "timeout": subtask.timeout = duration(value, key: key)
            default: unknown(pair, key: key, context: context, known: Self.subtaskKeys)
            }
        }
        return id == nil ? nil : subtask
    }

    // MARK: Values

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

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
}

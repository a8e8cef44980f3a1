import Foundation

/// The plan format version (`version:`) this build of planrun reads.
package let planFormatVersion = 1

/// Whether `build` needs a recorded approval of the plan's content
/// (`planrun approve`, `PlanApproval`).
package enum ApprovalMode: String, Sendable, Hashable, CaseIterable {
    case none
    case required
}

/// How an agent runs a subtask.
package enum AgentKind: String, Sendable, Hashable, CaseIterable {
    /// Runs the subtask's `run` text with the agent's `shell` command.
    case shell
    /// Runs the agent's program with the context JSON on standard input.
    case command
    /// POSTs the context JSON to the agent's `url`; the response is the result.
    case http
}

/// An agent as declared under `agents:` (or the built-in `shell`).
package struct AgentDefinition: Sendable, Hashable {
    package var name: String
    package var kind: AgentKind
    /// For `shell` agents: the shell and its flags; `run` is appended.
    package var shell: [String]
    /// For `command` agents: the program and its arguments.
    package var command: [String]
    /// For `http` agents: the `http` or `https` URL the context is POSTed to.
    package var url: String?
    /// For `http` agents: header name -> the NAME of the environment
    /// variable whose value is sent (secrets stay out of plan files).
    package var headers: [String: String]
    /// The agent's own concurrency pool; nil = only the plan's limit applies.
    package var maxParallel: Int?
    package var retries: Int?
    package var retryBackoff: Duration?
    package var timeout: Duration?
    package var env: [String: String]
    /// Where it was declared; nil for the built-in `shell`.
    package var location: SourceLocation?

    package static let defaultShell = ["/bin/sh", "-c"]

    package init(
        name: String, kind: AgentKind, shell: [String] = AgentDefinition.defaultShell,
        command: [String] = [], maxParallel: Int? = nil, retries: Int? = nil,
        retryBackoff: Duration? = nil, timeout: Duration? = nil,
        env: [String: String] = [:], location: SourceLocation? = nil,
        url: String? = nil, headers: [String: String] = [:]
    ) {
        self.name = name
        self.kind = kind
        self.shell = shell
        self.command = command
        self.maxParallel = maxParallel
        self.retries = retries
        self.retryBackoff = retryBackoff
        self.timeout = timeout
        self.env = env
        self.location = location
        self.url = url
        self.headers = headers
    }

    /// The agent that always exists, even when `agents:` does not name it.
    package static let builtinShell = AgentDefinition(name: "shell", kind: .shell)
}

/// Per-subtask defaults (`defaults:`). Precedence, lowest first:
/// built-in, plan defaults, agent, subtask.
package struct SubtaskDefaults: Sendable, Hashable {
    package var agent: String?
    package var retries: Int?
    package var retryBackoff: Duration?
    package var timeout: Duration?

    package init(agent: String? = nil, retries: Int? = nil, retryBackoff: Duration? = nil, timeout: Duration? = nil) {
        self.agent = agent
        self.retries = retries
        self.retryBackoff = retryBackoff
        self.timeout = timeout
    }
}

/// Locations of a subtask's fields, for diagnostics that point inside it.
package struct SubtaskLocations: Sendable, Hashable {
    /// The start of the subtask's mapping (the `- ` item).
    package var item: SourceLocation
    /// The `id` value.
    package var id: SourceLocation?
    package var agent: SourceLocation?
    /// One per `depends_on` entry, in order.
    package var dependsOn: [SourceLocation] = []
    /// One per `outputs` entry, in order.
    package var outputs: [SourceLocation] = []
    /// One per `inputs` entry, in order.
    package var inputs: [SourceLocation] = []
    /// The `depfile` value.
    package var depfile: SourceLocation?

    package init(item: SourceLocation) { self.item = item }
}

/// One unit of work in a plan. Invariant after loading: `id` is unique and
/// well-formed, `agent` names a defined agent, `dependsOn` names existing
/// subtasks (no self-dependency), and the dependency graph has no cycle.
package struct Subtask: Sendable, Hashable, Identifiable {
    package var id: String
    package var description: String?
    /// The resolved agent name (explicit, else `defaults.agent`, else `shell`).
    package var agent: String
    package var run: String?
    package var inputs: [String]
    package var outputs: [String]
    package var dependsOn: [String]
    /// Free-form metadata given to the agent (`with:`), as canonical JSON
    /// text: compact however many values it holds.
    package var withJSON: CanonicalJSON?
    /// `withJSON` as a value (decoded on each read).
    package var with: JSONValue? {
        get { withJSON?.value }
        set { withJSON = newValue.map(CanonicalJSON.init) }
    }
    /// false = always run (like make's `.PHONY`).
    package var cache: Bool
    package var env: [String: String]
    /// Names of caller environment variables whose values enter the cache key.
    package var envInputs: [String]
    /// Explicit per-subtask settings; use `Plan.retries(for:)` etc. for effective values.
    package var retries: Int?
    package var retryBackoff: Duration?
    package var timeout: Duration?
    /// The file the subtask writes in make's rule syntax (`depfile:`).
    package var depfile: String?
    /// For an instance of a `foreach` group: its item.
    package var item: String?
    /// For an instance of a `matrix` group: its values, in the matrix's key order.
    package var matrix: [MatrixValue]?
    package var locations: SubtaskLocations
    /// The namespace of the included plan this subtask comes from
    /// (`web`, `a/b`); empty for the top-level plan's own subtasks. Its id,
    /// dependencies and agent carry this prefix.
    package var namespace: String = ""
    /// The folder of the plan file that declares it, relative to the
    /// top-level plan's folder; empty for the top-level plan. The subtask
    /// runs there. Its `inputs` and `outputs` are already relative to the
    /// top-level plan's folder (the loader rebases them).
    package var folder: String = ""

    package init(
        id: String, description: String? = nil, agent: String = "shell", run: String? = nil,
        inputs: [String] = [], outputs: [String] = [], dependsOn: [String] = [],
        with: JSONValue? = nil, cache: Bool = true, env: [String: String] = [:],
        envInputs: [String] = [], retries: Int? = nil, retryBackoff: Duration? = nil,
        timeout: Duration? = nil, depfile: String? = nil,
        locations: SubtaskLocations = SubtaskLocations(item: SourceLocation(file: "<memory>", line: 1, column: 1))
    ) {
        self.depfile = depfile
        self.id = id
        self.description = description
        self.agent = agent
        self.run = run
        self.inputs = inputs
        self.outputs = outputs
        self.dependsOn = dependsOn
        self.withJSON = with.map(CanonicalJSON.init)
        self.cache = cache
        self.env = env
        self.envInputs = envInputs
        self.retries = retries
        self.retryBackoff = retryBackoff
        self.timeout = timeout
        self.locations = locations
    }
}

/// A plan included under a namespace (`includes:`), as far as its
/// subtasks need it after loading: the settings that apply to them in place
/// of the top-level plan's.
package struct IncludedPlan: Sendable, Hashable {
    /// The included plan file, absolute and standardized.
    package var file: String
    /// Its folder relative to the top-level plan's folder (`Subtask.folder`).
    package var folder: String
    package var name: String
    package var env: [String: String]
    package var defaults: SubtaskDefaults
    /// Its own `max_parallel`, which the build ignores (the top-level plan's
    /// governs); kept so that `plan` can say so.
    package var maxParallel: Int?

    package init(file: String, folder: String, name: String, env: [String: String], defaults: SubtaskDefaults, maxParallel: Int?) {
        self.file = file
        self.folder = folder
        self.name = name
        self.env = env
        self.defaults = defaults
        self.maxParallel = maxParallel
    }
}

extension Subtask {
    /// The file name (without extension) of a subtask's files in a folder
    /// of the run (`logs/RUN/NAME.log`, `NAME.result`): the id, with `/`,
    /// `%` and control characters percent-encoded, so that it is one path
    /// component and different ids give different names. An instance id
    /// may hold any item (`render:docs/My Notes.md`); ordinary ids are
    /// their own name.
    package static func fileName(_ id: String) -> String {
        func escaped(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: "/") || byte == UInt8(ascii: "%") || byte < 0x20 || byte == 0x7F
        }
        guard id.utf8.contains(where: escaped) else { return id }
        let hex = Array("0123456789ABCDEF".utf8)
        var name: [UInt8] = []
        for byte in id.utf8 {
            if escaped(byte) {
                name += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            } else {
                name.append(byte)
            }
        }
        return String(decoding: name, as: UTF8.self)
    }
}

/// A loaded, validated plan. Immutable once built.
package struct Plan: Sendable {
    /// The plan file's path as given by the user.
    package var file: String
    /// The folder holding the plan file: subtasks run here, and paths are
    /// relative to it. Absolute and standardized.
    package var directory: String
    package var version: Int
    package var name: String
    package var goal: String?
    /// nil = the number of CPUs; `-j` overrides (resolved once, by
    /// `RunConfiguration.limit(jobs:plan:processorCount:)`).
    package var maxParallel: Int?
    package var approval: ApprovalMode
    package var env: [String: String]
    package var defaults: SubtaskDefaults
    /// Every agent, including the built-in `shell` unless the plan redefines it.
    package var agents: [String: AgentDefinition]
    /// In plan order.
    package var subtasks: [Subtask]
    /// id -> position in `subtasks`.
    package var index: [String: Int]
    /// The included plans by namespace (`Subtask.namespace`): their own
    /// `env` and `defaults`, which apply to their subtasks instead of this
    /// plan's. Empty for a plan without `includes`.
    package var scopes: [String: IncludedPlan] = [:]
    /// Group id (a subtask with `foreach` or `matrix`) -> its instance ids,
    /// in plan order. A group may have none.
    package var groups: [String: [String]]
    /// The `foreach` glob patterns the plan was expanded with (without a
    /// leading `-`): what they match is part of the plan, so the up-to-date
    /// stamp records the folders they list.
    package var foreachGlobs: [String]

    package init(
        file: String, directory: String, version: Int = planFormatVersion, name: String,
        goal: String? = nil, maxParallel: Int? = nil, approval: ApprovalMode = .none,
        env: [String: String] = [:], defaults: SubtaskDefaults = SubtaskDefaults(),
        agents: [String: AgentDefinition] = [:], subtasks: [Subtask], groups: [String: [String]] = [:],
        foreachGlobs: [String] = []
    ) {
        self.groups = groups
        self.foreachGlobs = foreachGlobs
        self.file = file
        self.directory = directory
        self.version = version
        self.name = name
        self.goal = goal
        self.maxParallel = maxParallel
        self.approval = approval
        self.env = env
        self.defaults = defaults
        var agents = agents
        if agents["shell"] == nil { agents["shell"] = .builtinShell }
        self.agents = agents
        self.subtasks = subtasks
        var index: [String: Int] = [:]
        index.reserveCapacity(subtasks.count)
        // Last to first, so that the first subtask of an id is the one kept:
        // one hash per subtask, and no copy of a whole `Subtask`.
        for i in subtasks.indices.reversed() { index[subtasks[i].id] = i }
        self.index = index
    }

    package subscript(id: String) -> Subtask? {
        index[id].map { subtasks[$0] }
    }

    /// The subtask ids `name` stands for where ids are accepted: itself,
    /// or a group's instances (possibly none); nil when it names neither.
    package func ids(named name: String) -> [String]? {
        if index[name] != nil { return [name] }
        return groups[name]
    }

    /// The subtask ids `targets` stand for, in order, each once: a group
    /// gives its instances; other names are kept.
    package func targetIDs(_ targets: [String]) -> [String] {
        guard !groups.isEmpty else { return targets }
        var seen = Set<String>()
        return targets.flatMap { ids(named: $0) ?? [$0] }.filter { seen.insert($0).inserted }
    }

    package func agent(for subtask: Subtask) -> AgentDefinition {
        agents[subtask.agent] ?? .builtinShell
    }

    /// The `defaults` of the plan file that declares `subtask`.
    package func defaults(for subtask: Subtask) -> SubtaskDefaults {
        subtask.namespace.isEmpty ? defaults : scopes[subtask.namespace]?.defaults ?? SubtaskDefaults()
    }

    /// The plan-wide `env` of the plan file that declares `subtask`.
    package func planEnvironment(for subtask: Subtask) -> [String: String] {
        subtask.namespace.isEmpty ? env : scopes[subtask.namespace]?.env ?? [:]
    }

    /// The folder `subtask` runs in (absolute): the folder of the plan file
    /// that declares it.
    package func directory(for subtask: Subtask) -> String {
        subtask.folder.isEmpty ? directory : directory + "/" + subtask.folder
    }

    /// The included plan files (absolute, sorted, each once): with `file`,
    /// everything the plan was read from.
    package var includedFiles: [String] {
        Set(scopes.values.map(\.file)).sorted()
    }

    /// Extra attempts after the first: subtask, else agent, else defaults, else 0.
    package func retries(for subtask: Subtask) -> Int {
        subtask.retries ?? agent(for: subtask).retries ?? defaults(for: subtask).retries ?? 0
    }

    /// First delay between attempts (doubles each time): default 1s.
    package func retryBackoff(for subtask: Subtask) -> Duration {
        subtask.retryBackoff ?? agent(for: subtask).retryBackoff ?? defaults(for: subtask).retryBackoff ?? .seconds(1)
    }

    /// Per-attempt time limit; nil = none.
    package func timeout(for subtask: Subtask) -> Duration? {
        subtask.timeout ?? agent(for: subtask).timeout ?? defaults(for: subtask).timeout
    }

    /// The environment planrun adds for a subtask: plan (the plan file that
    /// declares it), then agent, then subtask `env` (later wins). The
    /// caller's environment is not included.
    package func environment(for subtask: Subtask) -> [String: String] {
        var env = planEnvironment(for: subtask)
        env.merge(agent(for: subtask).env) { _, new in new }
        env.merge(subtask.env) { _, new in new }
        return env
    }
}

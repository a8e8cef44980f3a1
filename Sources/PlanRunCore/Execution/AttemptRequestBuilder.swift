import Foundation

/// Builds the request of each attempt for the executor's loop: the
/// subtask's environment and context, and where its context, result and
/// log files go.
///
/// The environment of an attempt is the caller's, then the plan's, the
/// agent's and the subtask's `env` (later wins), plus `PLANRUN_*`. The
/// first three are the same for every subtask of an agent, so they are
/// built once per agent (`SpawnEnvironment`); only the subtask's `env`
/// and `PLANRUN_*` are added per attempt.
struct AttemptRequestBuilder {
    let plan: Plan
    let graph: TaskGraph
    let runID: String
    let callerEnvironment: [String: String]
    /// Where per-subtask logs go; nil = none.
    let logDirectory: String?
    /// The run's work folder for context and result files; nil = beside
    /// the logs.
    let workDirectory: String?
    /// `workDirectory` was created empty for this run.
    let workDirectoryIsNew: Bool
    private var baseEnvironments: [String: SpawnEnvironment] = [:]
    private var contextFiles: ContextFilePool?

    init(executor: Executor, selected: [Bool]) {
        plan = executor.graph.plan
        graph = executor.graph
        runID = executor.runID
        callerEnvironment = executor.configuration.environment
        logDirectory = executor.logDirectory
        workDirectory = executor.workDirectory
        workDirectoryIsNew = executor.workDirectoryIsNew
        contextFiles = executor.workDirectory.map { ContextFilePool(directory: $0) }
        for node in 0..<graph.count where selected[node] {
            let subtask = plan.subtasks[node]
            if baseEnvironments[subtask.agent] == nil {
                baseEnvironments[subtask.agent] = baseEnvironment(subtask)
            }
        }
    }

    /// The request for attempt `attempt` of `node`; `reports` gives its
    /// dependencies' status and result for the context.
    mutating func request(for node: Int, attempt: Int, reports: [SubtaskReport]) -> AttemptRequest {
        let subtask = plan.subtasks[node]
        let agent = plan.agent(for: subtask)
        var environment = subtask.env
        environment.reserveCapacity(subtask.env.count + 6) // no regrowth for PLANRUN_*
        environment["PLANRUN_PLAN"] = plan.name
        environment["PLANRUN_SUBTASK"] = subtask.id
        environment["PLANRUN_RUN_ID"] = runID
        environment["PLANRUN_ATTEMPT"] = String(attempt)
        var contextPath: String?, resultPath: String?, logPath: String?
        if let dir = logDirectory {
            logPath = SubtaskFiles.path(in: dir, id: subtask.id) + ".log"
        }
        if let dir = workDirectory {
            contextPath = contextFiles?.take(for: node)
            resultPath = SubtaskFiles.path(in: dir, id: subtask.id) + ".result"
        } else if let dir = logDirectory {
            let base = SubtaskFiles.path(in: dir, id: subtask.id)
            contextPath = base + ".context.json"
            resultPath = base + ".result"
        }
        if let contextPath, let resultPath {
            environment["PLANRUN_CONTEXT"] = contextPath
            environment["PLANRUN_RESULT"] = resultPath
        }
        var dependencies: [SubtaskContext.Dependency] = []
        for dep in graph.dependencies[node] {
            let report = reports[dep]
            dependencies.append(SubtaskContext.Dependency(
                id: report.id, description: plan.subtasks[dep].description, agent: report.agent,
                status: report.status.rawValue, result: report.resultText))
        }
        var context = SubtaskContext(
            subtaskID: subtask.id, plan: plan.name, planGoal: plan.goal, description: subtask.description,
            dependencies: dependencies, metadata: subtask.with ?? .object([:]), attempt: attempt, runID: runID)
        context.item = subtask.item
        context.matrix = subtask.matrix
        let base = baseEnvironments[subtask.agent] ?? baseEnvironment(subtask)
        return AttemptRequest(
            subtask: subtask, agent: agent, attempt: attempt, runID: runID,
            workingDirectory: plan.directory(for: subtask), baseEnvironment: base, environment: environment,
            context: context, contextPath: contextPath, resultPath: resultPath, logPath: logPath,
            timeout: plan.timeout(for: subtask),
            // Before a first attempt no result file of it can be in a work
            // folder made for this run, so the runner need not remove one.
            resultFileIsAbsent: attempt == 1 && workDirectoryIsNew && workDirectory != nil)
    }

    /// The attempt of `node` is over: its context file can serve another.
    mutating func attemptEnded(_ node: Int) {
        contextFiles?.release(node)
    }

    /// The caller's environment with the plan's and the agent's `env` (later
    /// wins). The same for every subtask of an agent: an agent belongs to
    /// one plan file (included agents are namespaced), whose `env` applies.
    private func baseEnvironment(_ subtask: Subtask) -> SpawnEnvironment {
        var environment = callerEnvironment
        environment.merge(plan.planEnvironment(for: subtask)) { _, new in new }
        environment.merge(plan.agent(for: subtask).env) { _, new in new }
        return SpawnEnvironment(environment)
    }

    /// `dir/name` (no Foundation path bridging on this per-subtask path).
    static func join(_ dir: String, _ name: String) -> String {
        dir.hasSuffix("/") ? dir + name : dir + "/" + name
    }
}

/// The context files of a run's work folder (`context-N.json`), as many as
/// attempts run at once: an attempt takes a free one (or a new one) and
/// gives it back when it is over, and the next attempt writes it again.
/// Creating and removing a file per subtask costs more than rewriting one
/// in a build of short subtasks, even in memory (/dev/shm).
struct ContextFilePool {
    let directory: String
    private var free: [String] = []
    private var made = 0
    private var inUse: [Int: String] = [:]

    init(directory: String) {
        self.directory = directory
    }

    /// A context file for the attempt of `node` that starts.
    mutating func take(for node: Int) -> String {
        let path: String
        if let file = free.popLast() {
            path = file
        } else {
            path = AttemptRequestBuilder.join(directory, "context-\(made).json")
            made += 1
        }
        inUse[node] = path
        return path
    }

    /// The attempt of `node` is over: its file is free again.
    mutating func release(_ node: Int) {
        if let path = inUse.removeValue(forKey: node) { free.append(path) }
    }
}

/// Where a subtask's per-run files (log, result) go in a run's folder:
/// `DIR/ID` plus a suffix. The namespaces of an included subtask are
/// subfolders (`web/build` → `DIR/web/build.log`), made on first use; an
/// instance's key, from its first `:` on, may hold any item and is
/// percent-encoded into the last component (`Subtask.fileName`:
/// `render:docs/a.md` → `render:docs%2Fa.md`). A namespace component that
/// could leave the folder or name it (`..`, `.`, empty) is written as
/// `%2E%2E`, `%2E` or `%`, so every id stays inside `DIR`, and different ids
/// give different paths.
package enum SubtaskFiles {
    /// `DIR/ID` with the id's folders made; without them, the attempt's
    /// files cannot be opened and the attempt reports that.
    package static func path(in directory: String, id: String) -> String {
        let relative = relative(id)
        let path = AttemptRequestBuilder.join(directory, relative)
        if relative.utf8.contains(UInt8(ascii: "/")) {
            let parent = (path as NSString).deletingLastPathComponent
            try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        }
        return path
    }

    /// The id as a path below the run's folder, without making anything.
    package static func relative(_ id: String) -> String {
        // An id with no `:` and no `/` is one namespace component and no
        // instance key: itself, unless the switch below rewrites it.
        if id != ".", id != "..", !id.isEmpty,
           !id.utf8.contains(where: { $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "/") }) {
            return id
        }
        // Namespaces and group ids never hold `:`, so the first one starts
        // the instance key.
        let colon = id.firstIndex(of: ":") ?? id.endIndex
        let key = Subtask.fileName(String(id[colon...]))
        let parts = id[..<colon].split(separator: "/", omittingEmptySubsequences: false).map { part in
            switch part {
            case "": "%"
            case ".": "%2E"
            case "..": "%2E%2E"
            default: String(part)
            }
        }
        return (parts.dropLast() + [parts[parts.count - 1] + key]).joined(separator: "/")
    }
}

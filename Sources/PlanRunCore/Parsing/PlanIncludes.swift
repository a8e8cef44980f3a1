import Foundation

/// One entry of `includes:`: the plan file at `path` (relative to the
/// including plan's folder) is included under `namespace`.
struct IncludeDeclaration {
    struct Variable {
        var name: String
        var value: VariableValue
        /// The variable's key in the include's `vars`.
        var location: SourceLocation
    }

    var namespace: String
    var namespaceLocation: SourceLocation
    var path: String
    var pathLocation: SourceLocation
    /// The include's `vars`, in the order written.
    var vars: [Variable]
}

/// Resolves `includes:` (DESIGN §8.5): loads each included file with the
/// per-file loader (`PlanLoader.draft`), validates it on its own terms
/// (its ids, agents and paths as written in it), and adds its subtasks to
/// the including plan under the namespace:
///
/// - ids, dependencies and agents get the prefix `NS/` (nested includes
///   compose: `a/b/x`), so an included plan reaches only its own subtasks
///   and the includer reaches them as `NS/ID`;
/// - `inputs` and `outputs` are rebased onto the top-level plan's folder
///   (`Subtask.folder` keeps where the subtask runs), so the cache, the
///   restorer, the stamp and `clean` see one root, as for a plan written in
///   one file;
/// - the included plan's `env` and `defaults` go to `Plan.scopes`; its
///   `max_parallel` is kept there only for `plan` to say it is ignored.
///
/// Included subtasks come after the includer's own, in include order.
/// Diagnostics point into the file that holds the problem.
enum PlanIncludes {
    /// The plan of the top-level `draft` with its includes resolved, and
    /// every plan file validated. Problems go to `collector`.
    /// `variables` are the `--var` values; those named `NS/NAME` go to the
    /// plan included as NS, and the problems with them (an unknown
    /// namespace, a variable the included plan does not declare) go to
    /// `usage`.
    static func combine(
        top draft: PlanDraft, variables: VariableOverrides, collector: inout DiagnosticCollector, usage: inout [Diagnostic]
    ) -> Plan {
        let topFile = draft.plan.directory + "/" + (draft.plan.file as NSString).lastPathComponent
        let context = Context(
            topDirectory: draft.plan.directory,
            shownDirectory: (draft.plan.file as NSString).deletingLastPathComponent)
        let included = context.resolve(
            draft, folder: "", chain: [topFile], variables: variables, shownPrefix: "", collector: &collector, usage: &usage)
        PlanValidator.validate(
            draft.plan, draft: draft, collector: &collector, external: included.ids.union(included.groups.keys))

        var plan = draft.plan
        var agents = plan.agents
        agents.merge(included.agents) { own, _ in own }
        var own = plan.subtasks
        PlanBuilder.expandGroupDependencies(&own, groups: included.groups)
        var combined = Plan(
            file: plan.file, directory: plan.directory, version: plan.version, name: plan.name, goal: plan.goal,
            maxParallel: plan.maxParallel, approval: plan.approval, env: plan.env, defaults: plan.defaults,
            agents: agents, subtasks: own + included.subtasks,
            groups: plan.groups.merging(included.groups) { own, _ in own },
            foreachGlobs: plan.foreachGlobs + included.foreachGlobs)
        combined.scopes = included.scopes
        plan = combined
        reportSharedOutputs(plan, collector: &collector)
        return plan
    }

    /// Two subtasks of different plan files (or of one file included twice)
    /// that declare the same output. Within one file the validator reports
    /// it already.
    private static func reportSharedOutputs(_ plan: Plan, collector: inout DiagnosticCollector) {
        var owners: [String: Int] = [:]
        for (i, subtask) in plan.subtasks.enumerated() {
            for (k, output) in subtask.outputs.enumerated() {
                guard let normalized = PlanValidator.normalizedRelativePath(output) else { continue }
                if let first = owners[normalized] {
                    if plan.subtasks[first].namespace != subtask.namespace {
                        let location = k < subtask.locations.outputs.count ? subtask.locations.outputs[k] : subtask.locations.item
                        collector.error(
                            .duplicateOutput(path: normalized, first: plan.subtasks[first].id, second: subtask.id), at: location)
                    }
                } else {
                    owners[normalized] = i
                }
            }
        }
    }

    /// What the includes of one plan file bring in, named relative to that
    /// file: ids `NS/ID`, agents `NS/AGENT`, scopes by namespace.
    struct Included {
        var subtasks: [Subtask] = []
        var agents: [String: AgentDefinition] = [:]
        var scopes: [String: IncludedPlan] = [:]
        var ids: Set<String> = []
        /// `NS/GROUP` -> its instances `NS/GROUP:KEY`.
        var groups: [String: [String]] = [:]
        /// `foreach` glob patterns, relative to the top-level folder.
        var foreachGlobs: [String] = []
    }

    struct Context {
        /// The top-level plan's folder, absolute: include paths stay inside it.
        let topDirectory: String
        /// The top-level plan's folder as the user named it (`""` for the
        /// current folder): included files are shown relative to it.
        let shownDirectory: String

        /// The includes of `draft`, a plan file whose folder is `folder`
        /// (relative to the top-level plan's folder). `chain` holds the
        /// absolute plan files from the top-level one down to `draft`'s.
        /// `variables`: the `--var` values addressed to `draft`'s file;
        /// `shownPrefix` is its namespace as the command line names it
        /// (`""` or `web/`).
        func resolve(
            _ draft: PlanDraft, folder: String, chain: [String], variables: VariableOverrides, shownPrefix: String,
            collector: inout DiagnosticCollector, usage: inout [Diagnostic]
        ) -> Included {
            let namespaces = draft.includes.map(\.namespace)
            for entry in variables.entries {
                guard let slash = entry.name.firstIndex(of: "/") else { continue }
                let namespace = String(entry.name[..<slash])
                if !namespaces.contains(namespace) {
                    usage.append(Diagnostic(.unknownVariableNamespace(
                        name: shownPrefix + entry.name, namespace: shownPrefix + namespace,
                        suggestion: Suggestion.closest(to: namespace, in: namespaces).map { shownPrefix + $0 }), at: nil))
                }
            }
            var result = Included()
            for include in draft.includes {
                let prefix = include.namespace + "/"
                let routed = VariableOverrides(variables.entries.compactMap { entry in
                    entry.name.hasPrefix(prefix) ? (String(entry.name.dropFirst(prefix.count)), entry.value) : nil
                })
                guard let child = load(
                    include, from: draft.plan.directory, chain: chain, commandLine: routed,
                    shownPrefix: shownPrefix + prefix, collector: &collector, usage: &usage)
                else {
                    continue
                }
                let childFolder = relativeToTop(child.draft.plan.directory) ?? ""
                let nested = resolve(
                    child.draft, folder: childFolder, chain: chain + [child.file], variables: routed,
                    shownPrefix: shownPrefix + prefix, collector: &collector, usage: &usage)
                PlanValidator.validate(
                    child.draft.plan, draft: child.draft, collector: &collector,
                    external: nested.ids.union(nested.groups.keys), includedAs: include.namespace)
                add(child.draft.plan, file: child.file, folder: childFolder, nested: nested,
                    as: include.namespace, to: &result)
            }
            return result
        }

        /// The plan file `include` names, read and built; nil (reported)
        /// when it is outside the top-level folder, missing, unreadable,
        /// part of a cycle or not a plan.
        private func load(
            _ include: IncludeDeclaration, from directory: String, chain: [String], commandLine: VariableOverrides,
            shownPrefix: String, collector: inout DiagnosticCollector, usage: inout [Diagnostic]
        ) -> (file: String, draft: PlanDraft)? {
            let joined = include.path.hasPrefix("/") ? include.path : directory + "/" + include.path
            let file = URL(fileURLWithPath: joined).standardizedFileURL.path
            guard let relative = relativeToTop(file), !relative.isEmpty,
                  PlanLoader.realPath(file).map({ relativeToTop($0, real: true) != nil }) ?? true
            else {
                collector.error(.includeOutside(path: include.path), at: include.pathLocation)
                return nil
            }
            if chain.contains(file) {
                let names = (chain + [file]).map { relativeToTop($0) ?? $0 }
                collector.error(.includeCycle(chain: names), at: include.pathLocation)
                return nil
            }
            var bytes: [UInt8]
            switch PlanLoader.readFile(file) {
            case .success(let b): bytes = b
            case .failure(.fileNotFound):
                collector.error(.includeNotFound(path: include.path), at: include.pathLocation)
                return nil
            case .failure(let error):
                collector.error(error, at: include.pathLocation)
                return nil
            }
            let shown = shownDirectory.isEmpty ? relative : (shownDirectory as NSString).appendingPathComponent(relative)
            // The include's `vars`, then the command line's (later wins).
            var overrides = VariableOverrides(include.vars.map { ($0.name, $0.value.joined) })
            overrides.entries += commandLine.entries.filter { !$0.name.contains("/") }
            let draft: PlanDraft
            do {
                draft = try PlanLoader.draft(
                    releasing: &bytes, file: shown, directory: (file as NSString).deletingLastPathComponent,
                    variables: overrides, collector: &collector)
            } catch {
                return nil // the problems are in `collector`
            }
            for variable in include.vars where !draft.variables.contains(variable.name) {
                collector.error(
                    .undeclaredIncludeVariable(
                        name: variable.name, plan: shown, suggestion: Suggestion.closest(to: variable.name, in: draft.variables)),
                    at: variable.location)
            }
            for entry in commandLine.entries where !entry.name.contains("/") && !draft.variables.contains(entry.name) {
                usage.append(Diagnostic(
                    .undeclaredVariable(
                        name: shownPrefix + entry.name,
                        suggestion: Suggestion.closest(to: entry.name, in: draft.variables).map { shownPrefix + $0 }),
                    at: nil))
            }
            return (file, draft)
        }

        /// `path` (absolute, standardized) relative to the top-level
        /// folder: `""` for the folder itself, nil outside it. With `real`,
        /// against the folder with its links resolved.
        func relativeToTop(_ path: String, real: Bool = false) -> String? {
            let top = real ? (PlanLoader.realPath(topDirectory) ?? topDirectory) : topDirectory
            if path == top { return "" }
            let prefix = top.hasSuffix("/") ? top : top + "/"
            guard path.hasPrefix(prefix) else { return nil }
            return String(path.dropFirst(prefix.count))
        }

        /// Adds `plan` (an included file, already validated) and what it
        /// includes itself to `result` under `namespace`.
        private func add(
            _ plan: Plan, file: String, folder: String, nested: Included, as namespace: String, to result: inout Included
        ) {
            let prefix = namespace + "/"
            var own = plan.subtasks
            for i in own.indices {
                own[i].folder = folder
                own[i].inputs = own[i].inputs.map { Self.rebase(input: $0, folder: folder) }
                own[i].outputs = own[i].outputs.map { Self.rebase(output: $0, folder: folder) }
                own[i].depfile = own[i].depfile.map { Self.rebase(output: $0, folder: folder) }
            }
            PlanBuilder.expandGroupDependencies(&own, groups: nested.groups)
            for var subtask in own + nested.subtasks {
                subtask.id = prefix + subtask.id
                subtask.dependsOn = subtask.dependsOn.map { prefix + $0 }
                subtask.agent = prefix + subtask.agent
                subtask.namespace = subtask.namespace.isEmpty ? namespace : prefix + subtask.namespace
                result.ids.insert(subtask.id)
                result.subtasks.append(subtask)
            }
            for (name, agent) in plan.agents.merging(nested.agents, uniquingKeysWith: { own, _ in own }) {
                var agent = agent
                agent.name = prefix + name
                result.agents[agent.name] = agent
            }
            for (group, instances) in plan.groups.merging(nested.groups, uniquingKeysWith: { own, _ in own }) {
                result.groups[prefix + group] = instances.map { prefix + $0 }
            }
            result.foreachGlobs += plan.foreachGlobs.map { Self.rebase(input: $0, folder: folder) } + nested.foreachGlobs
            result.scopes[namespace] = IncludedPlan(
                file: file, folder: folder, name: plan.name, env: plan.env, defaults: plan.defaults,
                maxParallel: plan.maxParallel)
            for (name, scope) in nested.scopes { result.scopes[prefix + name] = scope }
        }

        /// An input pattern of a plan in `folder`, relative to the
        /// top-level folder. Absolute patterns stay; the optional mark `-`
        /// stays in front.
        static func rebase(input pattern: String, folder: String) -> String {
            guard !folder.isEmpty else { return pattern }
            let optional = pattern.hasPrefix("-")
            let path = optional ? String(pattern.dropFirst()) : pattern
            if path.hasPrefix("/") { return pattern }
            let joined = folder + "/" + path
            return (optional ? "-" : "") + (PlanValidator.normalizedRelativePath(joined) ?? joined)
        }

        /// An output of a plan in `folder` (validated: inside that folder),
        /// relative to the top-level folder.
        static func rebase(output path: String, folder: String) -> String {
            guard !folder.isEmpty else { return path }
            return folder + "/" + (PlanValidator.normalizedRelativePath(path) ?? path)
        }
    }
}

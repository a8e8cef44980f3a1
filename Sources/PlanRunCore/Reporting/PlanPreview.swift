import Foundation

/// The dry run: the batches a plan would run in (`Scheduler.batches`), with
/// each subtask's action (`run` or `skip`) and the reason. Computing it
/// never runs anything and never writes state.
package struct PlanPreview: Sendable {
    /// One subtask in a batch.
    package struct Entry: Sendable, Hashable {
        package var id: String
        package var agent: String
        package var reason: RunReason
        package var action: String { reason.skips ? "skip" : "run" }
    }

    package var planName: String
    /// The plan-wide limit (`RunConfiguration.jobs`).
    package var maxParallel: Int
    package var batches: [[Entry]]
    /// The selected subtasks' dependency edges (dependency, dependent), plan order.
    package var edges: [(String, String)]
    /// Show only the subtasks that would run (`plan --changed`): text keeps
    /// its header (counts of every selected subtask) and batch numbers and
    /// drops the `skip` lines; JSON drops skipped entries and the batches
    /// left empty (`total` still counts every selected subtask); dot and
    /// mermaid drop skipped nodes and their edges.
    package var changedOnly = false
    /// The included plans whose own `max_parallel` the build ignores
    /// (namespace, value), for the text form.
    package var ignoredLimits: [(namespace: String, maxParallel: Int)] = []

    package var total: Int { batches.reduce(0) { $0 + $1.count } }

    /// The batches as shown: all entries, or only those that run.
    private var shownBatches: [[Entry]] {
        guard changedOnly else { return batches }
        return batches.map { $0.filter { !$0.reason.skips } }
    }

    /// The edges between shown entries.
    private var shownEdges: [(String, String)] {
        guard changedOnly else { return edges }
        let shown = Set(shownBatches.joined().map(\.id))
        return edges.filter { shown.contains($0.0) && shown.contains($0.1) }
    }

    /// Computes the preview. `reason` gives each subtask's verdict in the
    /// context of its dependencies (`ContentCache.preview` already turns a
    /// skip below a dependency that runs into `dependency ID changed`).
    package init(graph: TaskGraph, selected: [Bool], maxParallel: Int, reason: (Subtask) -> RunReason) {
        planName = graph.plan.name
        self.maxParallel = maxParallel
        ignoredLimits = graph.plan.scopes.compactMap { namespace, scope in
            scope.maxParallel.map { (namespace, $0) }
        }.sorted { $0.namespace < $1.namespace }
        batches = Scheduler.batches(graph: graph, selected: selected, limit: maxParallel).map { batch in
            batch.map { node in
                let subtask = graph.plan.subtasks[node]
                return Entry(id: subtask.id, agent: subtask.agent, reason: reason(subtask))
            }
        }
        // Ordered by dependent, then dependency, both in plan order.
        var edges: [(String, String)] = []
        for node in 0..<graph.count where selected[node] {
            for dep in graph.dependencies[node].sorted() { edges.append((graph.id(dep), graph.id(node))) }
        }
        self.edges = edges
    }

    /// The JSON document of `plan --format json`: a stable shape that
    /// users' scripts read.
    package var json: JSONText {
        .object([
            ("plan", .string(planName)),
            ("max_parallel", .int(maxParallel)),
            ("total", .int(total)),
            ("batches", .array(shownBatches.filter { !$0.isEmpty }.map { batch in
                .array(batch.map { entry in
                    .object([
                        ("id", .string(entry.id)),
                        ("agent", .string(entry.agent)),
                        ("action", .string(entry.action)),
                        ("reason", .string(entry.reason.description)),
                    ])
                })
            })),
        ])
    }

    /// Human-readable batches, one subtask per line.
    package var text: String {
        let runCount = batches.joined().filter { !$0.reason.skips }.count
        var out = "plan `\(planName)`: \(total) subtask\(total == 1 ? "" : "s") in \(batches.count) batch\(batches.count == 1 ? "" : "es") (max_parallel \(maxParallel)); \(runCount) to run, \(total - runCount) to skip\n"
        for (namespace, limit) in ignoredLimits {
            out += "note: max_parallel \(limit) of the plan included as `\(namespace)` is ignored; the top-level plan's governs\n"
        }
        let idWidth = min(40, batches.joined().map(\.id.count).max() ?? 0)
        let agentWidth = min(20, batches.joined().map(\.agent.count).max() ?? 0)
        for (i, batch) in shownBatches.enumerated() where !batch.isEmpty || !changedOnly {
            out += "batch \(i + 1):\n"
            for entry in batch {
                out += "  " + pad(entry.action, 4) + "  " + pad(entry.id, idWidth) + "  " + pad(entry.agent, agentWidth)
                    + "  " + entry.reason.description + "\n"
            }
        }
        return out
    }

    /// Graphviz: an edge goes from a dependency to its dependent.
    package var dot: String {
        var out = "digraph \(quoteDot(planName)) {\n  rankdir=LR;\n  node [shape=box];\n"
        for entry in shownBatches.joined() {
            out += "  \(quoteDot(entry.id))\(entry.reason.skips ? " [style=dashed]" : "");\n"
        }
        for (from, to) in shownEdges { out += "  \(quoteDot(from)) -> \(quoteDot(to));\n" }
        return out + "}\n"
    }

    /// Mermaid flowchart: nodes get safe ids (`n1`...) and their id as label.
    package var mermaid: String {
        var out = "flowchart LR\n"
        var nodeID: [String: String] = [:]
        for (i, entry) in shownBatches.joined().enumerated() {
            let name = "n\(i + 1)"
            nodeID[entry.id] = name
            out += "  \(name)[\"\(entry.id)\"]\n"
        }
        for (from, to) in shownEdges {
            if let a = nodeID[from], let b = nodeID[to] { out += "  \(a) --> \(b)\n" }
        }
        return out
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }

    private func quoteDot(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

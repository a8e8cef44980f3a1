import Collections

/// Decides which subtask starts next, as ninja's `Plan` with its `Pool`s
/// does: a pure value, with no processes, tasks or clocks, used by the
/// build's loop (`ExecutorLoop`) and by the dry run's batches
/// (`Scheduler.batches`), so both follow the same limits.
///
/// Pools: the plan-wide limit (`RunConfiguration.jobs`) holds every
/// running subtask; an agent with `max_parallel` has a pool of its own,
/// which holds its subtasks as well. A subtask starts only when both have
/// a free slot, and keeps them until `finished` (between the attempts of
/// a retry too).
///
/// Priority among ready subtasks: the longest remaining critical path
/// first (from the durations earlier runs recorded, as ninja does with its
/// build log), then plan order. Without durations every weight is 0, so
/// plan order decides alone.
///
/// Operations, in the order a subtask goes through them: `release` (a
/// dependency's result is known; returns the dependents that have all
/// theirs), `ready` (it must run), `scheduleNext` (it starts: the best
/// ready subtask that fits), `finished` (its slots are free).
package struct Scheduler {
    /// A ready subtask in a pool's queue: heavier first, then plan order.
    struct Entry: Comparable {
        var weight: Double
        var node: Int
        static func < (a: Entry, b: Entry) -> Bool {
            a.weight != b.weight ? a.weight > b.weight : a.node < b.node
        }
    }

    /// At most this many subtasks run at once (at least 1).
    package let limit: Int
    /// Subtasks holding a slot of the plan-wide limit.
    package private(set) var running = 0

    private let dependents: [[Int]]
    private let selected: [Bool]
    /// Each subtask's pool: 0 for the plan-wide limit alone, else the
    /// pool of its agent.
    private let poolOf: [Int]
    /// Per pool: its own limit (`Int.max` for pool 0), how many of its
    /// slots are taken, and its ready subtasks.
    private var poolLimit: [Int]
    private var inUse: [Int]
    private var queues: [Heap<Entry>]
    /// Remaining critical path of each subtask (0 everywhere without durations).
    private let weight: [Double]
    /// Per subtask: dependencies whose result is not known yet.
    private var waitingOn: [Int]

    /// `selected`: the subtasks of this run (all when nil). `durations`:
    /// seconds each subtask took when it last succeeded, by id.
    package init(graph: TaskGraph, selected: [Bool]? = nil, limit: Int, durations: [String: Double] = [:]) {
        let selected = selected ?? [Bool](repeating: true, count: graph.count)
        self.limit = max(1, limit)
        self.selected = selected
        dependents = graph.dependents
        waitingOn = graph.dependencies.map(\.count)
        weight = Self.criticalPaths(graph: graph, selected: selected, durations: durations)
        let plan = graph.plan
        var poolOfAgent: [String: Int] = [:]
        var poolLimit = [Int.max]
        poolOf = plan.subtasks.map { subtask in
            guard let own = plan.agents[subtask.agent]?.maxParallel else { return 0 }
            if let pool = poolOfAgent[subtask.agent] { return pool }
            poolLimit.append(max(1, own))
            poolOfAgent[subtask.agent] = poolLimit.count - 1
            return poolLimit.count - 1
        }
        self.poolLimit = poolLimit
        inUse = [Int](repeating: 0, count: poolLimit.count)
        queues = [Heap<Entry>](repeating: Heap(), count: poolLimit.count)
    }

    /// The selected subtasks that wait for no dependency, in plan order.
    package var roots: [Int] {
        (0..<waitingOn.count).filter { selected[$0] && waitingOn[$0] == 0 }
    }

    /// `node`'s result is known (it ran, or was up to date): returns its
    /// selected dependents whose dependencies are now all known, in plan order.
    package mutating func release(_ node: Int) -> [Int] {
        var released: [Int] = []
        for dependent in dependents[node] where selected[dependent] {
            waitingOn[dependent] -= 1
            if waitingOn[dependent] == 0 { released.append(dependent) }
        }
        return released
    }

    /// `node` must run: it joins its pool's queue.
    package mutating func ready(_ node: Int) {
        queues[poolOf[node]].insert(Entry(weight: weight[node], node: node))
    }

    /// Takes the best ready subtask whose pools both have a free slot and
    /// marks it running; nil when none fits.
    package mutating func scheduleNext() -> Int? {
        guard let pool = bestPool(freeing: nil) else { return nil }
        let node = queues[pool].removeMin().node
        inUse[pool] += 1
        running += 1
        return node
    }

    /// `node`, started by `scheduleNext`, is over: its slots are free.
    package mutating func finished(_ node: Int) {
        inUse[poolOf[node]] -= 1
        running -= 1
    }

    /// Whether the slot of running `node`, which just succeeded, can go to
    /// the next ready subtask before `release(node)`, with the same choice
    /// as after it: every dependent that `node` completes ranks below the
    /// subtask `scheduleNext` would take once `node` is `finished` (had
    /// the dependent been ready first, it would not have been chosen
    /// instead). True when `node` completes no dependent.
    package func canPassSlotBeforeRelease(of node: Int) -> Bool {
        let completes = { (d: Int) in self.selected[d] && self.waitingOn[d] == 1 }
        guard dependents[node].contains(where: completes) else { return true }
        guard let pool = bestPool(freeing: poolOf[node]), let next = queues[pool].min else { return false }
        return !dependents[node].contains { completes($0) && Entry(weight: weight[$0], node: $0) < next }
    }

    /// The pool whose best ready subtask is best among the pools with a
    /// free slot; nil when the plan-wide limit is reached. `freeing`: the
    /// pool of a running subtask whose slots are about to be freed (one
    /// more free there and in the plan-wide limit). The only place both
    /// kinds of limit are checked.
    private func bestPool(freeing: Int?) -> Int? {
        guard running - (freeing == nil ? 0 : 1) < limit else { return nil }
        var best: (pool: Int, entry: Entry)?
        for pool in queues.indices {
            guard let top = queues[pool].min else { continue }
            if inUse[pool] - (pool == freeing ? 1 : 0) >= poolLimit[pool] { continue }
            if best.map({ top < $0.entry }) ?? true { best = (pool, top) }
        }
        return best?.pool
    }

    /// Each subtask's duration plus the longest chain of selected
    /// dependents after it, from recorded durations (their mean where one
    /// is missing); all 0 without durations.
    static func criticalPaths(graph: TaskGraph, selected: [Bool], durations: [String: Double]) -> [Double] {
        var weight = [Double](repeating: 0, count: graph.count)
        guard !durations.isEmpty else { return weight }
        let mean = durations.values.reduce(0, +) / Double(durations.count)
        for node in graph.topologicalOrder().reversed() where selected[node] {
            let own = durations[graph.id(node)] ?? mean
            weight[node] = own + (graph.dependents[node].filter { selected[$0] }.map { weight[$0] }.max() ?? 0)
        }
        return weight
    }
}

extension Scheduler {
    /// The dry run's batches: levels by dependency depth (one more than
    /// the deepest dependency), and each level cut into the batches the
    /// scheduler would start if every subtask took the same time: as many
    /// as the plan-wide limit and the agents' pools allow, in plan order.
    /// Only selected subtasks appear. The build does not wait at batch
    /// boundaries, so the batches are a valid order and an upper bound on
    /// what a build waits for.
    package static func batches(graph: TaskGraph, selected: [Bool]? = nil, limit: Int) -> [[Int]] {
        let level = graph.levels()
        var byLevel: [[Int]] = []
        for node in 0..<graph.count where selected?[node] ?? true {
            while byLevel.count <= level[node] { byLevel.append([]) }
            byLevel[level[node]].append(node)
        }
        var scheduler = Scheduler(graph: graph, selected: selected, limit: limit)
        var batches: [[Int]] = []
        for nodes in byLevel where !nodes.isEmpty {
            for node in nodes { scheduler.ready(node) }
            while true {
                var batch: [Int] = []
                while let node = scheduler.scheduleNext() { batch.append(node) }
                if batch.isEmpty { break }
                for node in batch { scheduler.finished(node) }
                batches.append(batch)
            }
        }
        return batches
    }
}

import Foundation
@testable import PlanRunCore

/// A `CommandRunner` without processes (ninja's FakeCommandRunner): each
/// attempt sleeps for the subtask's scripted duration and succeeds or fails
/// as scripted; it records what ran, in what order, and how many at once.
final class FakeCommandRunner: CommandRunner {
    struct Script: Sendable {
        var duration: Duration = .milliseconds(5)
        /// Attempts (1-based) that fail.
        var failingAttempts: Set<Int> = []
        var result: String?
        /// Never finishes by itself (until cancelled).
        var hangs = false
        /// Does not finish before this subtask has finished (at most 10 s).
        var waitsFor: String?
    }

    struct Record: Sendable {
        var id: String
        var attempt: Int
        var start: ContinuousClock.Instant
        var end: ContinuousClock.Instant
        var cancelled: Bool
        var request: AttemptRequest
    }

    let scripts: [String: Script]
    let log = Log()

    init(_ scripts: [String: Script] = [:]) { self.scripts = scripts }

    actor Log {
        var records: [Record] = []
        var running = 0
        var peak = 0
        var runningByAgent: [String: Int] = [:]
        var peakByAgent: [String: Int] = [:]
        func begin(agent: String) {
            running += 1
            peak = max(peak, running)
            runningByAgent[agent, default: 0] += 1
            peakByAgent[agent] = max(peakByAgent[agent] ?? 0, runningByAgent[agent]!)
        }
        func end(_ record: Record) {
            running -= 1
            runningByAgent[record.request.agent.name, default: 1] -= 1
            records.append(record)
        }
    }

    func run(_ request: AttemptRequest) async -> AttemptOutcome {
        let script = scripts[request.subtask.id] ?? Script()
        let startDate = Date()
        let start = ContinuousClock.now
        await log.begin(agent: request.agent.name)
        var cancelled = false
        do {
            try await Task.sleep(for: script.hangs ? .seconds(3600) : script.duration)
            if let other = script.waitsFor {
                let deadline = ContinuousClock.now + .seconds(10)
                while await !log.records.contains(where: { $0.id == other }), ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
        } catch {
            cancelled = true
        }
        await log.end(Record(id: request.subtask.id, attempt: request.attempt, start: start, end: .now,
                             cancelled: cancelled, request: request))
        if cancelled {
            return AttemptOutcome(status: .cancelled, error: "cancelled", startedAt: startDate, completedAt: Date())
        }
        if script.failingAttempts.contains(request.attempt) {
            return AttemptOutcome(status: .failed, error: "exit status 1", exitCode: 1, startedAt: startDate, completedAt: Date())
        }
        return AttemptOutcome(status: .succeeded, result: Array((script.result ?? "result of \(request.subtask.id)").utf8),
                              exitCode: 0, startedAt: startDate, completedAt: Date())
    }
}

/// A new, empty folder under the temporary directory (`NAME-UUID`).
func makeTemporaryFolder(_ name: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    return path
}

/// Builds plans in memory for scheduler tests.
func makePlan(_ subtasks: [Subtask], maxParallel: Int? = nil, agents: [AgentDefinition] = [],
              defaults: SubtaskDefaults = SubtaskDefaults(), directory: String = "/tmp") -> Plan {
    Plan(file: "plan.yaml", directory: directory, name: "test", goal: "testing", maxParallel: maxParallel,
         defaults: defaults, agents: Dictionary(uniqueKeysWithValues: agents.map { ($0.name, $0) }),
         subtasks: subtasks)
}

func task(_ id: String, _ deps: [String] = [], agent: String = "shell", run: String = "true",
          retries: Int? = nil, backoff: Duration? = nil, timeout: Duration? = nil) -> Subtask {
    Subtask(id: id, agent: agent, run: run, dependsOn: deps, retries: retries, retryBackoff: backoff, timeout: timeout)
}

func runPlan(_ plan: Plan, runner: some CommandRunner, jobs: Int = 4, keepGoing: Bool = false,
             targets: [String] = [], cache: (any BuildCache)? = nil) async -> (RunSummary, RecordingReporter) {
    let graph = TaskGraph(plan: plan)
    let config = RunConfiguration(jobs: jobs, keepGoing: keepGoing, targets: targets, jitter: { 0 })
    let executor = Executor(graph: graph, configuration: config, runner: runner, cache: cache)
    let reporter = RecordingReporter()
    let selected = try! graph.selection(targets: targets)
    let summary = await executor.run(selected: selected, reporter: reporter)
    return (summary, reporter)
}

extension RunSummary {
    func status(of id: String) -> SubtaskStatus? { reports.first { $0.id == id }?.status }
    func report(_ id: String) -> SubtaskReport? { reports.first { $0.id == id } }
}

extension ActionKey {
    /// A key for fake caches, made of one component named `test`.
    static func named(_ text: String) -> ActionKey {
        ActionKey(cacheKey: CacheKey(components: ["test": text]), dependencyDigests: [:])
    }
}

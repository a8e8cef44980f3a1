import Foundation

/// The stats taken for the up-to-date stamp: each path with what `stat`
/// returned, as the key builder and the output check noted them
/// (`KeyBuilder.key(for:dependencyDigests:log:)`, `OutputReader.intact`).
/// A path seen twice with different answers makes the log unstable (a file
/// changed during the build).
///
/// Only the build's loop touches it (decisions are made there, one at a
/// time; the remote prefetch's tasks note nothing), so it has no lock; it
/// is `@unchecked Sendable` because the content cache and the stamping
/// wrapper, both `Sendable`, hold it (`CachingStampTests` exercise it).
package final class StatLog: @unchecked Sendable {
    private struct Key: Hashable {
        var path: String
        var follow: Bool
    }
    private struct State {
        var seen: [Key: FileStat?] = [:]
        var unstable = false
        var stopped = false
    }
    private var state = State()

    package init() {}

    package func note(_ path: String, followSymlinks: Bool, _ stat: FileStat?) {
        guard !state.stopped else { return }
        let key = Key(path: path, follow: followSymlinks)
        if let previous = state.seen[key] {
            if previous != stat { state.unstable = true }
        } else {
            state.seen[key] = stat
        }
    }

    /// Stops noting (once a decision rules out the stamp) and forgets.
    package func stop() {
        state.stopped = true
        state.seen = [:]
    }

    var isUnstable: Bool { state.unstable }

    var entries: [UpToDateStamp.Entry] {
        state.seen.map { key, stat in
            UpToDateStamp.Entry(path: key.path, flags: key.follow ? UpToDateStamp.Entry.follow : 0, stat: stat)
        }
    }
}

/// A `BuildCache` wrapper that watches a build for the up-to-date stamp:
/// it counts `cached` decisions, and when the build is over and every
/// selected subtask was `cached`, writes the stamp from the stats the
/// decisions noted in `log` (the inner cache's `ContentCache.statLog`).
package final class StampingBuildCache: BuildCache {
    private let inner: any BuildCache
    private let plan: Plan
    private let stateDirectory: String
    private let invocation: UpToDateStamp.Invocation
    private let log: StatLog
    /// Files outside the decisions whose stat the stamp also records (the
    /// plan's approval record when it needs one).
    private let alsoRecorded: [String]
    private struct Tally {
        var selected: Int?
        var envNames: Set<String> = []
        var cached = 0
        var other = false
    }
    /// Only the build's loop calls this wrapper (`prepare` before it starts,
    /// then `decide`, `record` and `finishBuild`), hence no lock.
    nonisolated(unsafe) private var tally = Tally()

    package init(wrapping inner: any BuildCache, log: StatLog, plan: Plan, stateDirectory: String,
                 invocation: UpToDateStamp.Invocation, alsoRecording alsoRecorded: [String] = []) {
        self.inner = inner
        self.log = log
        self.alsoRecorded = alsoRecorded
        self.plan = plan
        self.stateDirectory = stateDirectory
        self.invocation = invocation
    }

    package func prepare(graph: TaskGraph, selected: [Bool]) async throws {
        var names = Set<String>()
        var count = 0
        for (index, isSelected) in selected.enumerated() where isSelected {
            count += 1
            names.formUnion(plan.subtasks[index].envInputs)
        }
        tally.selected = count
        tally.envNames = names
        try await inner.prepare(graph: graph, selected: selected)
    }

    package func decide(_ subtask: Subtask, dependencyDigests: [String: String]) async throws -> CacheDecision {
        let decision = try await inner.decide(subtask, dependencyDigests: dependencyDigests)
        if case .upToDate(let outcome) = decision, outcome.reason == .cached {
            tally.cached += 1
        } else {
            ruleOut()
        }
        return decision
    }

    /// Something other than `cached` happened: there will be no stamp.
    private func ruleOut() {
        tally.other = true
        log.stop()
    }

    package func record(_ subtask: Subtask, key: ActionKey?, result: [UInt8]) async throws -> CacheRecord {
        ruleOut()
        return try await inner.record(subtask, key: key, result: result)
    }

    package var historyStore: (any SubtaskHistory)? { inner.historyStore }

    package func takeWarnings() -> [String] { inner.takeWarnings() }

    package func finishBuild() async throws {
        try await inner.finishBuild()
        _ = writeStampIfUpToDate()
    }

    /// Writes the stamp when every selected subtask was decided `cached`;
    /// returns whether it did.
    @discardableResult
    package func writeStampIfUpToDate(now: Int64 = FileDigester.now()) -> Bool {
        let (selected, names, cached, other) = (tally.selected, tally.envNames, tally.cached, tally.other)
        guard let selected, !other, cached == selected else { return false }
        // What a `foreach` glob matches decides the plan's instances: the
        // folders it lists are recorded like those of input globs.
        for pattern in plan.foreachGlobs {
            guard (try? InputGlob.expand(pattern, root: plan.directory, log: log)) != nil else { return false }
        }
        guard !log.isUnstable else { return false }
        var entries = log.entries
        let planStat = FileStat.of(invocation.planFile)
        guard planStat != nil else { return false }
        entries.append(.init(path: invocation.planFile, flags: UpToDateStamp.Entry.follow, stat: planStat))
        for path in alsoRecorded {
            entries.append(.init(path: path, flags: UpToDateStamp.Entry.follow, stat: FileStat.of(path)))
        }
        let database = (stateDirectory as NSString).appendingPathComponent("state.db")
        guard let databaseStat = FileStat.of(database) else { return false }
        entries.append(.init(path: database, flags: UpToDateStamp.Entry.follow | UpToDateStamp.Entry.identityOnly,
                             stat: databaseStat))
        return UpToDateStamp.write(stateDirectory: stateDirectory, invocation: invocation, root: plan.directory,
                                   envNames: names.sorted(by: byteOrder), count: selected, entries: entries, now: now)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A whole `planrun build`: takes the plan's build lock, closes runs a
/// killed build left open, records the run, runs the executor with real
/// processes and logs under `logs/RUN_ID/`, and returns the summary.
package struct BuildSession {
    /// Problems that stop a build before it runs anything.
    package enum Failure: Error, Sendable, CustomStringConvertible {
        /// Another build of the same plan holds the lock.
        case busy(pid: Int32, plan: String)
        case state(String)
        /// Unknown targets on the command line.
        case targets(PlanDiagnostics)

        package var description: String {
            switch self {
            case .busy(let pid, let plan):
                "another build of `\(plan)` is running (pid \(pid)); wait for it or run `planrun cancel`"
            case .state(let message): message
            case .targets(let diagnostics): diagnostics.description
            }
        }
    }

    /// The state folder: `--state-dir`, else `.planrun` beside the plan.
    package static func stateDirectory(for plan: Plan, configuration: RunConfiguration) -> String {
        stateDirectory(planDirectory: plan.directory, configured: configuration.stateDirectory)
    }

    /// The state folder of the plan in `planDirectory`: `configured`
    /// (`--state-dir`, absolute) when given.
    package static func stateDirectory(planDirectory: String, configured: String?) -> String {
        configured ?? (planDirectory as NSString).appendingPathComponent(".planrun")
    }

    /// A new run id: UTC time, then random hex (sorts by start time).
    /// Formatted with `gmtime_r`, not `DateFormatter`, so that no build
    /// pays for loading ICU's calendar data at start-up.
    package static func makeRunID(now: Date = Date()) -> String {
        var seconds = time_t(now.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let hex = String(UInt32.random(in: 0..<0x1000000), radix: 16)
        return digits(parts.tm_year + 1900, 4) + digits(parts.tm_mon + 1, 2) + digits(parts.tm_mday, 2) + "-"
            + digits(parts.tm_hour, 2) + digits(parts.tm_min, 2) + digits(parts.tm_sec, 2) + "-"
            + String(repeating: "0", count: 6 - hex.count) + hex
    }

    /// A private folder for the run's context and result files, removed
    /// when the run ends: in memory (`/dev/shm`) where there is one, since
    /// creating two files per subtask on disk costs more than running `true`;
    /// else `tmp/RUN_ID` in the state folder. `isNew`: this call created it
    /// (so it is empty), rather than finding it.
    /// Throws when neither place can be made.
    static func makeWorkDirectory(stateDirectory: String, runID: String) throws -> (path: String, isNew: Bool) {
        let fm = FileManager.default
        let candidates = workDirectoryCandidates(stateDirectory: stateDirectory, runID: runID)
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: "/dev/shm", isDirectory: &isDirectory), isDirectory.boolValue,
           access("/dev/shm", W_OK) == 0 {
            if mkdir(candidates[0], 0o700) == 0 { return (candidates[0], true) }
        }
        try fm.createDirectory(atPath: (candidates[1] as NSString).deletingLastPathComponent,
                               withIntermediateDirectories: true)
        if mkdir(candidates[1], 0o777) == 0 { return (candidates[1], true) }
        try fm.createDirectory(atPath: candidates[1], withIntermediateDirectories: true)
        return (candidates[1], false)
    }

    /// Where run `runID`'s work folder is: in memory first, else in the state folder.
    static func workDirectoryCandidates(stateDirectory: String, runID: String) -> [String] {
        ["/dev/shm/planrun-\(getuid())-\(runID)", (stateDirectory as NSString).appendingPathComponent("tmp/\(runID)")]
    }

    /// Removes the run's work folder: its files with `unlinkat` (one call
    /// each; `FileManager` also stats every entry, a cost paid after the
    /// last subtask while the user waits), then
    /// the folder. Anything else a subtask left there (a folder) goes
    /// through `FileManager`.
    /// A link there is not followed (only the link is removed).
    static func removeWorkDirectory(_ path: String) {
        let folder = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        let opened = folder >= 0 ? fdopendir(folder) : nil
        if folder >= 0, opened == nil { close(folder) }
        if let dir = opened {
            let fd = dirfd(dir)
            while let entry = readdir(dir) {
                let removed = withUnsafeBytes(of: entry.pointee.d_name) { raw -> Bool in
                    let name = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
                    if name[0] == 0x2E && (name[1] == 0 || (name[1] == 0x2E && name[2] == 0)) { return true }
                    return unlinkat(fd, name, 0) == 0
                }
                if !removed { break }
            }
            closedir(dir)
        }
        if folder < 0, FileStat.of(path, followSymlinks: false)?.kind == .symlink {
            unlink(path)
        } else if rmdir(path) != 0 {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    package static func run(
        plan: Plan, configuration: RunConfiguration, cache: (any BuildCache)? = nil,
        runner: (any CommandRunner)? = nil, canceller: RunCanceller, reporter: some ProgressReporter
    ) async throws(Failure) -> RunSummary {
        try await run(plan: plan, configuration: configuration, makeCache: { _ in cache ?? NoBuildCache(force: Force(all: configuration.forced)) }, runner: runner,
                      canceller: canceller, reporter: reporter)
    }

    /// Kills what is left of a build that did not end in order (its
    /// recorded process groups, `OrphanGuard`), closes the runs a killed
    /// build left `in_progress` and removes their work folders.
    static func closeStaleRuns(_ store: StateStore, stateDirectory directory: String) throws {
        let stale = try store.closeStaleRuns()
        OrphanGuard.killLeftovers(stateDirectory: directory, staleRuns: stale)
        for stale in stale where isRunID(stale) {
            for folder in workDirectoryCandidates(stateDirectory: directory, runID: stale) {
                removeWorkDirectory(folder)
            }
        }
    }

    /// Runs kept in the state (with their logs); older ones are deleted in
    /// batches of `pruneSlack` (`StateStore.pruneRuns`).
    package static let keptRuns = 20
    package static let pruneSlack = 10

    /// Deletes the runs beyond the newest `keptRuns`, and their log folders.
    static func pruneRuns(_ store: StateStore, stateDirectory directory: String) throws {
        for id in try store.pruneRuns(keeping: keptRuns, slack: pruneSlack) where isRunID(id) {
            let logs = (directory as NSString).appendingPathComponent("logs/\(id)")
            if FileManager.default.fileExists(atPath: logs) { try? FileManager.default.removeItem(atPath: logs) }
        }
    }

    /// Only ids planrun makes (digits, lowercase hex, `-`) name a folder to remove.
    static func isRunID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || $0 == 0x2D }
    }

    /// As above, with the cache opened from the state folder once the
    /// build lock is held. `prepared`: the lock, state and durations taken
    /// ahead (`BuildPreparation`), used when it is for this state folder.
    package static func run(
        plan: Plan, configuration: RunConfiguration, prepared: BuildPreparation? = nil,
        makeCache: (_ stateDirectory: String) throws -> any BuildCache,
        runner: (any CommandRunner)? = nil, canceller: RunCanceller, reporter: some ProgressReporter
    ) async throws(Failure) -> RunSummary {
        let graph = TaskGraph(plan: plan)
        let selected: [Bool]
        do { selected = try graph.selection(targets: configuration.targets) } catch { throw .targets(error) }

        let directory = stateDirectory(for: plan, configuration: configuration)
        if configuration.stateDirectory != nil, let overlap = StateFolder.outputOverlapping(directory, in: plan) {
            throw .state("output `\(overlap.output)` of `\(overlap.subtask)` holds or is inside the state folder \(directory); planrun's state is not an output")
        }
        let prepared = prepared?.directory == directory ? prepared : nil
        let lock: BuildLock
        if let prepared {
            lock = prepared.lock
        } else {
            do { lock = try BuildLock.acquire(directory: directory) } catch {
                switch error {
                case .held(let pid): throw .busy(pid: pid, plan: plan.file)
                case .io, .untrusted: throw .state(error.description)
                }
            }
        }
        let store: StateStore
        let runID = makeRunID()
        let logDirectory = (directory as NSString).appendingPathComponent("logs/\(runID)")
        do {
            if let prepared {
                store = prepared.store
            } else {
                store = try StateStore(directory: directory)
                // A build killed mid-run (SIGKILL) left its work folder behind.
                try closeStaleRuns(store, stateDirectory: directory)
            }
            try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
            // Event rows are queued from here and committed in the background.
            store.deferWrites()
            try store.beginRun(
                id: runID, plan: plan.name, planFile: plan.file, pid: getpid(), startedAt: Date(),
                subtasks: (0..<graph.count).filter { selected[$0] }.map {
                    (plan.subtasks[$0].id, $0, plan.subtasks[$0].agent)
                })
        } catch {
            throw .state("cannot open the state in \(directory): \(error)")
        }
        // The cache opens after the lock is held, so it never sees another build's writes.
        let cache: any BuildCache
        do { cache = try makeCache(directory) } catch {
            throw .state("cannot open the cache in \(directory): \(error)")
        }
        // Fetch ahead from a remote cache; `--only` refuses here, before anything runs.
        // A build that stops before the executor runs records its run as
        // failed with the reason, so that `status` does not show it running.
        func abandon(_ reason: String) -> Failure {
            do {
                try store.finishRun(id: runID, status: RunStatus.failed.rawValue, reason: reason, at: Date())
                try store.flush()
            } catch {
                return .state("\(reason); the run could not be recorded as failed either: \(error)")
            }
            return .state(reason)
        }
        do { try await cache.prepare(graph: graph, selected: selected) } catch {
            throw abandon("\(error)")
        }
        let durations: [String: Double]
        if let prepared { durations = prepared.durations } else {
            do { durations = try store.lastDurations() } catch {
                throw abandon("cannot read the state in \(directory): \(error)")
            }
        }
        let workDirectory: String, workDirectoryIsNew: Bool
        do { (workDirectory, workDirectoryIsNew) = try makeWorkDirectory(stateDirectory: directory, runID: runID) } catch {
            throw abandon("cannot create the run's work folder in \(directory): \(error)")
        }
        defer { removeWorkDirectory(workDirectory) }
        let orphanGuard = OrphanGuard(runID: runID, stateDirectory: directory,
                                      watchdogExecutable: configuration.watchdogExecutable)
        defer { orphanGuard.finish() }
        orphanGuard.start()
        var executor = Executor(
            graph: graph, configuration: configuration,
            runner: runner ?? ProcessCommandRunner(killGrace: configuration.killGrace, orphanGuard: orphanGuard),
            cache: cache, store: store, runID: runID, logDirectory: logDirectory,
            workDirectory: workDirectory, canceller: canceller)
        executor.expectedDurations = durations
        executor.workDirectoryIsNew = workDirectoryIsNew
        let summary = await executor.run(selected: selected, reporter: reporter)
        withExtendedLifetime(lock) {}
        return summary
    }
}

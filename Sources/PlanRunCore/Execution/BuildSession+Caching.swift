import Foundation

/// What a build asks of the cache besides the plan and the run
/// configuration: the command line's `--force ID`, `--only`, the remote
/// store and whether to write the up-to-date stamp.
package struct BuildCacheRequest: Sendable {
    /// Subtasks to run even when up to date (`build --force ID...`);
    /// `RunConfiguration.forced` forces all.
    package var forcedIDs: Set<String>
    /// `--remote-cache`, nil without one.
    package var remote: RemoteCacheStore?
    /// The subtasks `--only` builds; nil without `--only`.
    package var onlyTargets: Set<String>?
    /// The invocation to write the up-to-date stamp for when every selected
    /// subtask turns out cached (nil: never, as for `retry` and `--force`).
    package var stamp: UpToDateStamp.Invocation?

    package init(forcedIDs: Set<String> = [], remote: RemoteCacheStore? = nil, onlyTargets: Set<String>? = nil,
                 stamp: UpToDateStamp.Invocation? = nil) {
        self.forcedIDs = forcedIDs
        self.remote = remote
        self.onlyTargets = onlyTargets
        self.stamp = stamp
    }
}

extension BuildSession {
    /// A build with the content cache: the cache stack (history and stat
    /// records from the state folder, the local store, the remote, `--only`,
    /// the stamp) is opened under the build lock, after the stamp is
    /// removed and before anything changes. Returns the outcome and the
    /// warnings the cache collected (a refused entry, a remote that became
    /// unavailable), to be shown after the progress.
    package static func runCached(
        plan: Plan, configuration: RunConfiguration, caching: BuildCacheRequest, prepared: BuildPreparation? = nil,
        runner: (any CommandRunner)? = nil, canceller: RunCanceller, reporter: some ProgressReporter
    ) async -> (outcome: Result<RunSummary, Failure>, warnings: [String]) {
        var opened: (any BuildCache)?
        let outcome: Result<RunSummary, Failure>
        do throws(Failure) {
            outcome = .success(try await run(
                plan: plan, configuration: configuration, prepared: prepared,
                makeCache: { directory in
                    try UpToDateStamp.remove(stateDirectory: directory)
                    let log = caching.stamp == nil ? nil : StatLog()
                    let cache = try ContentCache.open(
                        plan: plan, stateDirectory: directory, callerEnvironment: configuration.environment,
                        force: Force(all: configuration.forced, ids: caching.forcedIDs), writeBehind: true,
                        state: prepared?.directory == directory ? prepared?.cacheState : nil, statLog: log,
                        remote: caching.remote, onlyTargets: caching.onlyTargets)
                    let stamped = caching.stamp.map { invocation in
                        // Approving the plan again changes what `build` accepts;
                        // an included plan file is part of the plan.
                        StampingBuildCache(wrapping: cache, log: log!, plan: plan, stateDirectory: directory,
                                           invocation: invocation,
                                           alsoRecording: (plan.approval == .required ? [PlanApproval.recordPath(directory)] : [])
                                               + plan.includedFiles)
                    }
                    opened = stamped ?? cache
                    return stamped ?? cache
                },
                runner: runner, canceller: canceller, reporter: reporter))
        } catch {
            outcome = .failure(error)
        }
        return (outcome, opened?.takeWarnings() ?? [])
    }
}

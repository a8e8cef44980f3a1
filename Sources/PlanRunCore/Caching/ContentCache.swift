import Foundation

/// The content-hash `BuildCache`, the one a build uses.
///
/// `decide`: a subtask whose key equals its last successful key, with its
/// outputs as that run left them, is skipped (`cached`); when the key is in
/// one of the stores (`sources`: the local `ac/KEY`, then the remote's) but
/// outputs are missing or changed, outputs and result are restored from
/// the first store with a usable entry (`restored`); otherwise it runs, with
/// the first differing key component as the reason (`Verdict`). `record`
/// (success only) returns the history entry and has the store's background
/// writer put outputs and result in the CAS, then `ac/KEY`; with a
/// `readwrite` remote it also uploads the entry (`WriteThrough`).
/// `prepare` fetches from the remote ahead (`ContentCache+Prefetch.swift`)
/// and checks `--only` (`ContentCache+Only.swift`).
///
/// A read-only cache (`explain`, `plan`, `status`) computes the same
/// decisions but writes nothing: no history, no store, no stat cache; a
/// would-be restore is reported as `restored` without touching files.
///
/// Threads: `prepare`, `decide`, `record` and `finishBuild` are called by
/// the build's loop only, one at a time; the remote prefetch's tasks use
/// the remote's `RemoteRestorer`, the store and the stat cache while the
/// loop waits for them, and the uploads run in `WriteThrough`'s tasks, so
/// those parts are locked, not this type.
package final class ContentCache: BuildCache {
    package let plan: Plan
    package let store: LocalCacheStore
    package let history: any SubtaskHistory
    package let digester: FileDigester
    package let readOnly: Bool
    /// Subtasks to run even when up to date.
    package let force: Force
    package let keys: KeyBuilder
    package let outputs: OutputReader
    package let restorer: Restorer
    /// The remote as a store to restore from (nil: none, or read-only).
    package let remote: RemoteRestorer?
    /// Where decisions restore from, in order: the local store, then the remote.
    package let sources: [any RestoreSource]
    /// Uploads of what `record` stores (a `readwrite` remote only).
    let writeThrough: WriteThrough?
    /// The subtasks `--only` builds; nil without `--only`.
    package let onlyTargets: Set<String>?
    /// Subtasks `prepare` restored from the remote, by id, until `decide`
    /// takes them (it checks the key first). Only the build's loop touches
    /// it (`prepare` fills it after its tasks are done, `decide` empties it),
    /// hence `nonisolated(unsafe)` rather than a lock.
    nonisolated(unsafe) var restoredAhead: [String: CachedOutcome] = [:]
    package let warnings = CacheWarnings()
    /// Where the stats a build's decisions take are noted for the
    /// up-to-date stamp (`StampingBuildCache`); nil when no stamp is wanted.
    package let statLog: StatLog?

    /// Flush the stat cache once this many new digests are pending.
    private static let flushThreshold = 512

    package init(
        plan: Plan, callerEnvironment: [String: String], store: LocalCacheStore,
        history: any SubtaskHistory, digests: any DigestStore, readOnly: Bool = false,
        force: Force = .none, racyWindowNs: Int64 = FileDigester.defaultRacyWindowNs, statLog: StatLog? = nil,
        remote: RemoteCacheStore? = nil, onlyTargets: Set<String>? = nil
    ) {
        self.statLog = statLog
        self.plan = plan
        self.store = store
        self.history = history
        let digester = FileDigester(store: digests, readOnly: readOnly, racyWindowNs: racyWindowNs)
        self.digester = digester
        self.readOnly = readOnly
        self.force = force
        keys = KeyBuilder(plan: plan, callerEnvironment: callerEnvironment, digester: digester)
        outputs = OutputReader(root: plan.directory, digester: digester)
        let restorer = Restorer(store: store, outputs: outputs, readOnly: readOnly, warnings: warnings)
        self.restorer = restorer
        // A read-only cache (explain, the dry run) never asks the remote.
        let remoteRestorer = readOnly ? nil : remote.map { RemoteRestorer(remote: $0, restorer: restorer) }
        self.remote = remoteRestorer
        sources = [restorer] + (remoteRestorer.map { [$0] } ?? [])
        writeThrough = remote.flatMap { remote in
            remote.mode == .readWrite && !readOnly ? WriteThrough(remote: remote, store: store) : nil
        }
        self.onlyTargets = onlyTargets
    }

    deinit {
        store.waitForBackgroundWrites()
        try? history.waitForWrites()
        try? digester.flush()
    }

    /// Warnings met along the way that did not stop the build, then one
    /// line when the remote became unavailable; each is reported once.
    package func takeWarnings() -> [String] {
        store.waitForBackgroundWrites()  // their failures are warnings too
        var out = warnings.take()
        if let line = remote?.unavailability() { out.append(line) }
        return out
    }

    /// Writes pending stat-cache records; call when the build ends (the
    /// history's rows are the recorder's: `RunRecorder.commitNow`). Throws
    /// when that fails (the build fails with it).
    package func finish() throws(CacheError) {
        // Every `ac` entry of this build is written before it ends.
        store.waitForBackgroundWrites()
        // Every restore this build made renamed or removed its temporary files.
        store.forgetTemporaries()
        try digester.flush()
    }

    /// Whether `subtask` runs even when up to date.
    package func isForced(_ subtask: Subtask) -> Bool { force.covers(subtask.id) }

    // MARK: BuildCache

    /// Computes the key once, then: a subtask the prefetch restored with
    /// that key is up to date; else the verdict, restoring from `sources`.
    package func decide(_ subtask: Subtask, dependencyDigests: [String: String]) async throws -> CacheDecision {
        guard subtask.cache else { return try await decide(subtask, key: nil, from: sources) }
        let key = try key(for: subtask, dependencyDigests: dependencyDigests)
        if let ahead = restoredAhead.removeValue(forKey: subtask.id), !isForced(subtask),
           ahead.key.cacheKey.declared.key == key.digest, discoveredStillMatch(ahead.key) {
            return .upToDate(ahead)
        }
        let decision = try await decide(subtask, key: key, from: sources)
        try flushIfDue()
        return decision
    }

    package func prepare(graph: TaskGraph, selected: [Bool]) async throws {
        // `build --force` without targets runs everything: nothing to fetch ahead.
        if let remote, remote.remote.isAvailable, !force.all { await prefetch(graph: graph, selected: selected, from: remote) }
        if let onlyTargets { try await checkOnly(graph: graph, selected: selected, targets: onlyTargets) }
    }

    /// Waits for the uploads, then writes the stat cache (`finish`).
    package func finishBuild() async throws {
        await writeThrough?.drain()
        try finish()
    }

    /// Writes the stat cache's pending records once there are many.
    package func flushIfDue() throws(CacheError) {
        if digester.pendingCount >= ContentCache.flushThreshold { try digester.flush() }
    }

    /// The decision from the local store alone (`explain`, the dry run,
    /// `--only`): computes the key, then decides with it.
    package func decideLocally(_ subtask: Subtask, dependencyDigests: [String: String]) async throws(CacheError) -> CacheDecision {
        guard subtask.cache else { return try await decide(subtask, key: nil, from: [restorer]) }
        return try await decide(subtask, key: key(for: subtask, dependencyDigests: dependencyDigests), from: [restorer])
    }

    /// The key a decision uses: its stats are noted in `statLog`.
    package func key(for subtask: Subtask, dependencyDigests: [String: String]) throws(CacheError) -> ActionKey {
        try keys.key(for: subtask, dependencyDigests: dependencyDigests, log: statLog)
    }

    /// The decision for `subtask` with its current `key` (nil only when the
    /// subtask is not cacheable): the verdict, then the restore it calls for
    /// from the first of `sources` that has a usable entry.
    package func decide(_ subtask: Subtask, key: ActionKey?, from sources: [any RestoreSource]) async throws(CacheError) -> CacheDecision {
        let isForced = isForced(subtask)
        guard subtask.cache, let key else {
            return .run(reason: isForced ? .forced : .cacheDisabled, key: nil)
        }
        // A declared key: the discovered inputs give the full key first.
        if subtask.depfile != nil, !key.cacheKey.isFull {
            return try await decideDiscovered(subtask, declared: key, from: sources)
        }
        let last: HistoryEntry?
        var previous: CacheKey?
        var intact: Bool?
        if isForced {
            last = nil
        } else {
            do { last = try history.entry(for: subtask.id) } catch { throw .stateRead(reason: "\(error)") }
            if let last, last.key == key.digest {
                intact = outputs.intact(last.outputs, log: statLog)
            } else if last != nil {
                do { previous = try history.cacheKey(for: subtask.id) } catch { throw .stateRead(reason: "\(error)") }
            }
        }
        switch Verdict.of(key: key, forced: isForced, last: last, outputsIntact: intact, previous: previous,
                          dependsOn: subtask.dependsOn) {
        case .skip:
            return .upToDate(CachedOutcome(key: key, resultDigest: last!.resultDigest, result: last!.result, reason: .cached))
        case .restore(let otherwise):
            for source in sources {
                guard let restored = try await restore(subtask, key: key, from: source) else { continue }
                var outcome = restored.outcome
                outcome.history = restored.entry
                return .upToDate(outcome)
            }
            return .run(reason: otherwise, key: key)
        case .run(let reason):
            return .run(reason: reason, key: key)
        }
    }

    /// The one place a key is looked up in a store: restores `subtask` from
    /// `source`'s entry for `key`; nil when it has none, refuses it (a
    /// warning) or cannot restore it.
    func restore(_ subtask: Subtask, key: ActionKey, from source: any RestoreSource) async throws(CacheError) -> RestoredAction? {
        switch await source.action(for: key.digest, subtask: subtask) {
        case .found(let action): return try await source.restore(action, of: subtask, key: key)
        case .absent: return nil
        case .refused(let warning):
            warnings.add(warning)
            return nil
        }
    }

    package func record(_ subtask: Subtask, key: ActionKey?, result: [UInt8]) async throws -> CacheRecord {
        let recorded = try recordNow(subtask, key: key, result: result)
        if let writeThrough, let stored = recorded.history?.components.map(CacheKey.init(components:)) {
            await writeThrough.upload(key: stored.key, manifest: stored.isFull ? stored.declared.key : nil)
        }
        return recorded
    }

    package var historyStore: (any SubtaskHistory)? { readOnly ? nil : history }

    /// `record` without suspension points. `key`: the one `decide` returned.
    package func recordNow(_ subtask: Subtask, key: ActionKey?, result: [UInt8]) throws(CacheError) -> CacheRecord {
        // Outputs as the run left them (also checks they exist).
        var outputs: [OutputEntry] = []
        for path in subtask.outputs {
            guard let entry = try self.outputs.snapshot(path) else { throw .outputMissing(subtask: subtask.id, path: path) }
            outputs.append(entry)
        }
        // The depfile is read after every successful attempt, cached or not.
        let discovered = try discoveredInputs(of: subtask)
        let resultDigest = ContentCache.resultDigest(result: result, outputs: outputs)
        guard let key, !readOnly else { return CacheRecord(resultDigest: resultDigest) }

        // The inputs must still be as the key saw them: an input edited
        // while the subtask ran gives another key, and then nothing is
        // recorded, so the next build runs it again. Inputs are in the stat
        // cache, so this costs a stat per input.
        // Without `inputs` the key is made of the definition, the caller's
        // environment and the dependencies' digests, none of which changes
        // during a build: nothing to check.
        let declared = key.cacheKey.declared
        if !subtask.inputs.isEmpty {
            guard let current = try? keys.key(for: subtask, dependencyDigests: key.dependencyDigests, log: nil),
                  current.digest == declared.key
            else {
                warnings.add("inputs of `\(subtask.id)` changed while it ran; it will run again next time")
                return CacheRecord(resultDigest: resultDigest)
            }
        }
        // With a depfile, the result is stored under the full key of what it lists.
        let stored = discovered.map { CacheKey.full(declared: declared, discovered: $0) } ?? key.cacheKey

        // Outputs, result and then `ac/KEY` are stored by the store's
        // background writer (`LocalCacheStore+Background.swift`), off the
        // loop's thread; only a folder's files are listed here (through
        // the stat cache, which only this thread uses). An output that
        // changed since its snapshot above stores under another digest:
        // then no entry is written (the history names the snapshot, so the
        // next build runs the subtask). A failing store (disk full) costs
        // only the ability to restore, so it is a warning, not a failure.
        let warnings = warnings, id = subtask.id, store = store
        do {
            var storedFolders: [OutputEntry?] = []
            for entry in outputs { storedFolders.append(entry.kind == .folder ? try storeFolder(entry) : nil) }
            let folders = storedFolders, snapshot = outputs, paths = outputs.map { self.outputs.absolute($0.path) }
            let key = stored.key, components = stored.components
            store.writeInBackground(entry: key) {
                do throws(CacheError) {
                    var storedOutputs: [OutputEntry] = []
                    for (i, entry) in snapshot.enumerated() {
                        let kept = if let folder = folders[i] { folder } else { try ContentCache.store(entry, at: paths[i], in: store) }
                        guard kept.digest == entry.digest else { return }
                        storedOutputs.append(kept)
                    }
                    try store.putAction(key, ActionResult(resultDigest: resultDigest, resultBlob: store.putBlob(result),
                                                          outputs: storedOutputs, components: components))
                } catch {
                    warnings.add("cannot store `\(id)` in the cache: \(error)")
                }
            }
            // The manifest after the entry it leads to (`manifest` waits for it).
            if let discovered {
                let manifest = store.manifest(declared.key) ?? DiscoveredManifest()
                try store.putManifest(declared.key, manifest.adding(.init(key: stored.key, files: discovered)))
            }
        } catch {
            warnings.add("cannot store `\(subtask.id)` in the cache: \(error)")
        }
        try flushIfDue()
        return CacheRecord(resultDigest: resultDigest,
                           history: HistoryEntry(key: stored, resultDigest: resultDigest, result: result, outputs: outputs))
    }

    /// SHA-256 over a result's content digest and its outputs (path, kind,
    /// digest, and a file's permission bits when recorded, in path order):
    /// what dependents' keys see, so a dependent runs again when an output
    /// only changed its mode (a script made executable).
    package static func resultDigest(result: [UInt8], outputs: [OutputEntry]) -> String {
        var framer = FieldFramer()
        framer.add("planrun-result")
        framer.add(Digest.sha256Hex(result))
        for o in outputs.sorted(by: { byteOrder($0.path, $1.path) }) {
            framer.add(o.path)
            framer.add(o.kind.rawValue)
            framer.add(o.digest)
            if let mode = o.mode { framer.add("mode:" + String(mode, radix: 8)) }
        }
        return framer.digest
    }

    // MARK: Outputs

    /// Copies a file output into the CAS (a link: its target text);
    /// returns the entry with the digest of what was stored.
    private static func store(_ entry: OutputEntry, at full: String, in store: LocalCacheStore) throws(CacheError) -> OutputEntry {
        var stored = entry
        switch entry.kind {
        case .file:
            if !store.isStored(entry.digest) { stored.digest = try store.putFile(full) }
        case .symlink:
            stored.digest = try store.putBlob(Array(try OutputReader.linkTarget(full).utf8))
        case .folder:
            preconditionFailure("a folder is stored by storeFolder")
        }
        return stored
    }

    /// Copies a folder output into the CAS: its files and manifest.
    private func storeFolder(_ entry: OutputEntry) throws(CacheError) -> OutputEntry {
        let full = outputs.absolute(entry.path)
        var manifest = try outputs.folderManifest(full)
        for (i, file) in manifest.files.enumerated() where file.link == nil && !store.isStored(file.digest) {
            manifest.files[i].digest = try store.putFile(full + "/" + file.path)
        }
        var stored = entry
        stored.digest = try store.putBlob(manifest.bytes)
        return stored
    }
}

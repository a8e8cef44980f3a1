import Foundation

/// The content-hash `BuildCache`.
///
/// `decide`: a subtask whose key equals its last successful key, with its
/// outputs as that run left them, is skipped (`cached`); when the key is in
/// the store (`ac/KEY`) but outputs are missing or changed, outputs and
/// result are restored (`restored`); otherwise it runs, with the first
/// differing key component as the reason (`Verdict`). `record` (success
/// only) stores outputs and result in the CAS, writes `ac/KEY` and the
/// history.
///
/// A read-only cache (`explain`, `plan`, `status`) computes the same
/// decisions but writes nothing: no history, no store, no stat cache; a
/// would-be restore is reported as `restored` without touching files.
///
/// Threads: `decide` and `record` are called by the build's loop only, one
/// at a time; the remote prefetch (`LayeredBuildCache`) reads the history,
/// the store and the stat cache from its own tasks while the loop waits
/// for it, so those parts are locked, not this type.
package final class ContentCache: BuildCache {
    package let plan: Plan
    package let store: LocalCacheStore
    package let history: any SubtaskHistory
    package let digester: FileDigester
    package let readOnly: Bool
    /// Subtasks to run even when up to date; `forced` on `decide` forces all.
    package let force: Force
    package let keys: KeyBuilder
    package let outputs: OutputReader
    package let restorer: Restorer
    package let warnings = CacheWarnings()
    /// Where the stats a build's decisions take are noted for the
    /// up-to-date stamp (`StampingBuildCache`); nil when no stamp is wanted.
    package let statLog: StatLog?

    /// Flush the stat cache once this many new digests are pending.
    private static let flushThreshold = 512

    package init(
        plan: Plan, callerEnvironment: [String: String], store: LocalCacheStore,
        history: any SubtaskHistory, digests: any DigestStore, readOnly: Bool = false,
        force: Force = .none, racyWindowNs: Int64 = FileDigester.defaultRacyWindowNs, statLog: StatLog? = nil
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
        restorer = Restorer(store: store, history: history, outputs: outputs, readOnly: readOnly, warnings: warnings)
    }

    deinit {
        try? history.waitForWrites()
        try? digester.flush()
    }

    /// Warnings met along the way that did not stop the build; each is
    /// reported once.
    package func takeWarnings() -> [String] { warnings.take() }

    /// Waits for history rows written behind and writes pending stat-cache
    /// records; call when the build ends. Throws the first write that
    /// failed (the build fails with it).
    package func finish() throws(CacheError) {
        var failure: CacheError?
        do { try history.waitForWrites() } catch {
            failure = (error as? CacheError) ?? .stateWrite(reason: "\(error)")
        }
        // Every restore this build made renamed or removed its temporary files.
        store.forgetTemporaries()
        do { try digester.flush() } catch { failure = failure ?? error }
        if let failure { throw failure }
    }

    /// Whether `subtask` runs even when up to date.
    package func isForced(_ subtask: Subtask, forced: Bool) -> Bool {
        forced || force.covers(subtask.id)
    }

    // MARK: BuildCache

    package func decide(_ subtask: Subtask, dependencyDigests: [String: String], forced: Bool) async throws -> CacheDecision {
        let decision = try decideNow(subtask, dependencyDigests: dependencyDigests, forced: forced)
        try flushIfDue()
        return decision
    }

    /// Writes the stat cache's pending records once there are many.
    package func flushIfDue() throws(CacheError) {
        if digester.pendingCount >= ContentCache.flushThreshold { try digester.flush() }
    }

    /// `decide` without suspension points (also used by `explain`): computes
    /// the key, then decides with it.
    package func decideNow(_ subtask: Subtask, dependencyDigests: [String: String], forced: Bool) throws(CacheError) -> CacheDecision {
        guard subtask.cache else { return try decide(subtask, key: nil, forced: forced) }
        return try decide(subtask, key: key(for: subtask, dependencyDigests: dependencyDigests), forced: forced)
    }

    /// The key a decision uses: its stats are noted in `statLog`.
    package func key(for subtask: Subtask, dependencyDigests: [String: String]) throws(CacheError) -> ActionKey {
        try keys.key(for: subtask, dependencyDigests: dependencyDigests, log: statLog)
    }

    /// The decision for `subtask` with its current `key` (nil only when the
    /// subtask is not cacheable): the verdict, then the restore it calls for.
    package func decide(_ subtask: Subtask, key: ActionKey?, forced: Bool) throws(CacheError) -> CacheDecision {
        let isForced = isForced(subtask, forced: forced)
        guard subtask.cache, let key else {
            return .run(reason: isForced ? .forced : .cacheDisabled, key: nil)
        }
        // A declared key: the discovered inputs give the full key first.
        if subtask.depfile != nil, !key.cacheKey.isFull {
            return try decideDiscovered(subtask, declared: key, forced: forced)
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
            if let outcome = try restorer.restore(subtask, key: key) { return .upToDate(outcome) }
            return .run(reason: otherwise, key: key)
        case .run(let reason):
            return .run(reason: reason, key: key)
        }
    }

    package func record(_ subtask: Subtask, key: ActionKey?, result: [UInt8]) async throws -> String {
        try recordNow(subtask, key: key, result: result).resultDigest
    }

    package func commitPendingWrites() { history.commitQueued() }

    /// `record` without suspension points. `key`: the one `decide` returned.
    /// Returns the result digest and the key the result was stored under
    /// (the full key of a subtask with a depfile; nil when nothing was
    /// stored).
    package func recordNow(_ subtask: Subtask, key: ActionKey?, result: [UInt8]) throws(CacheError)
        -> (resultDigest: String, stored: CacheKey?)
    {
        // Outputs as the run left them (also checks they exist).
        var outputs: [OutputEntry] = []
        for path in subtask.outputs {
            guard let entry = try self.outputs.snapshot(path) else { throw .outputMissing(subtask: subtask.id, path: path) }
            outputs.append(entry)
        }
        // The depfile is read after every successful attempt, cached or not.
        let discovered = try discoveredInputs(of: subtask)
        let resultDigest = ContentCache.resultDigest(result: result, outputs: outputs)
        guard let key, !readOnly else { return (resultDigest, nil) }

        // The inputs must still be as the key saw them: an input edited
        // while the subtask ran gives another key, and then nothing is
        // recorded, so the next build runs it again. Inputs are in the stat
        // cache, so this costs a stat per input.
        let declared = key.cacheKey.declared
        guard let current = try? keys.key(for: subtask, dependencyDigests: key.dependencyDigests, log: nil),
              current.digest == declared.key
        else {
            warnings.add("inputs of `\(subtask.id)` changed while it ran; it will run again next time")
            return (resultDigest, nil)
        }
        let stored = discovered.map { CacheKey.full(declared: declared, discovered: $0) } ?? key.cacheKey

        // Store outputs and result; a failing store (disk full) costs only
        // the ability to restore, so it is a warning, not a failure.
        do {
            var storedOutputs: [OutputEntry] = []
            for entry in outputs { storedOutputs.append(try storeOutput(entry)) }
            outputs = storedOutputs
            let resultBlob = try store.putBlob(result)
            try store.putAction(stored.key, ActionResult(
                resultDigest: resultDigest, resultBlob: resultBlob, outputs: outputs, components: stored.components))
            // The manifest after the entry it leads to.
            if let discovered {
                let manifest = store.manifest(declared.key) ?? DiscoveredManifest()
                try store.putManifest(declared.key, manifest.adding(.init(key: stored.key, files: discovered)))
            }
        } catch {
            warnings.add("cannot store `\(subtask.id)` in the cache: \(error)")
        }
        do {
            try history.save(HistoryEntry(key: stored, resultDigest: resultDigest, result: result, outputs: outputs), for: subtask.id)
        } catch {
            throw .stateWrite(reason: "\(error)")
        }
        try flushIfDue()
        return (resultDigest, stored)
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

    /// Copies an output into the CAS (a folder: its files and manifest; a
    /// link: its target text).
    private func storeOutput(_ entry: OutputEntry) throws(CacheError) -> OutputEntry {
        let full = outputs.absolute(entry.path)
        switch entry.kind {
        case .file:
            var stored = entry
            if !store.isStored(entry.digest) { stored.digest = try store.putFile(full) }
            return stored
        case .symlink:
            var stored = entry
            stored.digest = try store.putBlob(Array(try OutputReader.linkTarget(full).utf8))
            return stored
        case .folder:
            var manifest = try outputs.folderManifest(full)
            for (i, file) in manifest.files.enumerated() where file.link == nil && !store.isStored(file.digest) {
                manifest.files[i].digest = try store.putFile(full + "/" + file.path)
            }
            var stored = entry
            stored.digest = try store.putBlob(manifest.bytes)
            return stored
        }
    }
}

import Foundation

/// Discovered inputs (a subtask with a `depfile`, DESIGN §8.4), as ccache's
/// direct mode does it: `KeyBuilder` makes the declared key (declared
/// inputs only); the sets of discovered inputs recorded under it (the last
/// success's, from the history, then the manifest at `ac/DECLARED_KEY`,
/// newest first) are hashed now, and the first whose files all still have
/// their recorded digests gives the full key (`CacheKey.full`), with which
/// the subtask is skipped or restored as any other. No set matches: it
/// runs, and `record` reads the depfile, hashes what it lists and records
/// the result under the new full key and the set in the manifest.
///
/// Every file hashed for a decision goes through the stat cache and is
/// noted in the decision's `StatLog`, so the up-to-date stamp covers the
/// discovered inputs too. Files outside the plan's folder are only read.
extension ContentCache {
    /// What the recorded sets of discovered inputs say.
    package enum Discovery: Sendable, Hashable {
        /// This set's files are as recorded: the full key.
        case matched(ActionKey)
        /// No set matches (or none was recorded): the subtask runs, for this reason.
        case unmatched(RunReason)
    }

    /// The decision for a subtask with a depfile given its declared key:
    /// the local sets first; when none matches and the remote is among
    /// `sources`, its manifest's sets (hashed here: the digests that decide
    /// are computed locally, so the remote cannot cause a stale hit).
    func decideDiscovered(_ subtask: Subtask, declared: ActionKey, from sources: [any RestoreSource]) async throws(CacheError)
        -> CacheDecision
    {
        if isForced(subtask) { return .run(reason: .forced, key: declared) }
        let local = try discovery(for: subtask, declared: declared, log: statLog)
        if case .matched(let full) = local { return try await decide(subtask, key: full, from: sources) }
        if let remote = sources.lazy.compactMap({ $0 as? RemoteRestorer }).first,
           let full = await remoteFullKey(subtask, declared: declared, from: remote) {
            return try await decide(subtask, key: full, from: sources)
        }
        guard case .unmatched(let reason) = local else { return .run(reason: .neverRan, key: declared) }
        return .run(reason: reason, key: declared)
    }

    /// The full key a set of the remote's manifest gives with the files as
    /// they are here; the manifest is merged into the local one first, so
    /// that the next upload of it keeps the remote's sets.
    func remoteFullKey(_ subtask: Subtask, declared: ActionKey, from remote: RemoteRestorer) async -> ActionKey? {
        guard let manifest = await remote.manifest(for: declared.digest, subtask: subtask) else { return nil }
        try? store.putManifest(declared.digest, (store.manifest(declared.digest) ?? DiscoveredManifest()).merging(manifest))
        guard case .matched(let full)? = try? discovery(for: subtask, declared: declared, also: manifest, log: nil) else {
            return nil
        }
        return full
    }

    /// The full key when the subtask has a depfile and one of its local
    /// sets matches; else `declared` itself (the prefetch's first look).
    func localFullKey(_ subtask: Subtask, declared: ActionKey) -> ActionKey {
        guard subtask.depfile != nil,
              case .matched(let full)? = try? discovery(for: subtask, declared: declared, log: nil)
        else { return declared }
        return full
    }

    /// Hashes the recorded sets of `subtask`'s discovered inputs, newest
    /// first: the last success's (when it had this declared key), the local
    /// manifest's, then `also`'s (a manifest fetched from a remote). A set
    /// that names a missing file does not match. The reason when none
    /// matches: the first file (in path order) of the last success's set
    /// that changed, else the declared key's difference.
    package func discovery(
        for subtask: Subtask, declared: ActionKey, also extra: DiscoveredManifest? = nil, log: StatLog?
    ) throws(CacheError) -> Discovery {
        let last: HistoryEntry?
        var previous: CacheKey?
        do {
            last = try history.entry(for: subtask.id)
            if last != nil { previous = try history.cacheKey(for: subtask.id) }
        } catch {
            throw .stateRead(reason: "\(error)")
        }
        var candidates: [(files: [String: String], fromHistory: Bool)] = []
        var tried = Set<String>()
        if let previous, previous.isFull, previous.declared.key == declared.digest {
            candidates.append((previous.discovered, true))
            tried.insert(previous.key)
        }
        for manifest in [store.manifest(declared.digest), extra] {
            for set in manifest?.sets ?? [] where tried.insert(set.key).inserted { candidates.append((set.files, false)) }
        }
        var changed: String?
        for candidate in candidates {
            if let mismatch = firstChange(in: candidate.files, log: log) {
                if candidate.fromHistory { changed = mismatch }
                continue
            }
            let full = CacheKey.full(declared: declared.cacheKey, discovered: candidate.files)
            return .matched(ActionKey(cacheKey: full, dependencyDigests: declared.dependencyDigests))
        }
        if let changed { return .unmatched(.discoveredInputChanged(path: changed)) }
        guard last != nil else { return .unmatched(.neverRan) }
        guard let previous else { return .unmatched(.definitionChanged) }
        return .unmatched(declared.cacheKey.reason(comparedTo: previous.declared, dependsOn: subtask.dependsOn) ?? .definitionChanged)
    }

    /// The first file (in path order) whose content is not `files`' digest
    /// for it, or that cannot be hashed; nil when all match.
    func firstChange(in files: [String: String], log: StatLog?) -> String? {
        for path in files.keys.sorted(by: byteOrder) {
            guard let now = try? digester.digest(ofFile: discoveredAbsolutePath(path), log: log), now == files[path] else {
                return path
            }
        }
        return nil
    }

    /// The absolute path of a discovered input as recorded.
    func discoveredAbsolutePath(_ path: String) -> String {
        path.hasPrefix("/") ? path : keys.absolute(path)
    }

    /// The largest depfile read (thousands of prerequisites take a few hundred KiB).
    static let depfileSizeLimit = 64 << 20

    /// Reads `subtask`'s depfile after a successful attempt and hashes what
    /// it lists: path -> content digest. Paths inside the plan's folder are
    /// made plan relative (`./a.h`, `src/../a.h` and the folder's absolute
    /// path are written `a.h`); others (system headers, `../x.h`) are kept
    /// as written. The subtask's own outputs (and files inside output
    /// folders) are left out. Throws `.depfile` when the depfile is
    /// missing, unreadable or does not parse, or a file it lists cannot be
    /// hashed. nil when the subtask has no depfile.
    func discoveredInputs(of subtask: Subtask) throws(CacheError) -> [String: String]? {
        guard let depfile = subtask.depfile else { return nil }
        let bytes: [UInt8]
        switch FileBytes.readRegular(keys.absolute(depfile), limit: Self.depfileSizeLimit) {
        case .bytes(let read): bytes = read
        case .absent: throw .depfile(path: depfile, reason: "no such file (the subtask did not write it)")
        case .refused(let reason): throw .depfile(path: depfile, reason: reason)
        }
        let prerequisites: [String]
        do {
            prerequisites = try Depfile.parse(bytes)
        } catch {
            throw .depfile(path: "\(depfile):\(error.line):\(error.column)", reason: error.message)
        }
        let outputs = subtask.outputs.map(PathSafety.normalized)
        var out: [String: String] = [:]
        out.reserveCapacity(prerequisites.count)
        for raw in prerequisites {
            let path = discoveredPath(raw, folder: subtask.folder)
            guard !path.isEmpty, !outputs.contains(where: { path == $0 || path.hasPrefix($0 + "/") }) else { continue }
            do {
                out[path] = try digester.digest(ofFile: discoveredAbsolutePath(path), log: nil)
            } catch {
                throw .depfile(path: depfile, reason: "cannot hash `\(raw)`: \(error)")
            }
        }
        return out
    }

    /// A depfile's prerequisite as recorded: relative to the top-level
    /// plan's folder and normal when inside it, else as written (absolute,
    /// or relative and leaving it). A relative one is relative to `folder`,
    /// the folder the subtask ran in (`Subtask.folder`).
    func discoveredPath(_ raw: String, folder: String) -> String {
        let root = plan.directory.hasSuffix("/") ? plan.directory : plan.directory + "/"
        if raw.hasPrefix(root) { return PlanValidator.normalizedRelativePath(String(raw.dropFirst(root.count))) ?? raw }
        if raw.hasPrefix("/") { return raw }
        let path = folder.isEmpty ? raw : folder + "/" + raw
        return PlanValidator.normalizedRelativePath(path) ?? path
    }
}

extension ContentCache {
    /// Whether a full key's discovered inputs still have their digests
    /// (noted in the decisions' `StatLog`); true for any other key.
    package func discoveredStillMatch(_ key: ActionKey) -> Bool {
        !key.cacheKey.isFull || firstChange(in: key.cacheKey.discovered, log: statLog) == nil
    }
}

extension LayeredBuildCache {
    // MARK: Discovered inputs

    /// `writeFromRemote(_:key:)` for the key a decision gave: a full key,
    /// or the declared key of a subtask with a depfile whose recorded sets
    /// of discovered inputs did not match locally. Then the remote's
    /// manifest (`ac/DECLARED_KEY`) is fetched, its sets are hashed here
    /// (`ContentCache.discovery`: the digests that decide are computed
    /// locally, so the remote cannot cause a stale hit) and a match is
    /// restored under its full key.
    func writeFromRemote(_ subtask: Subtask, decided: ActionKey) async -> Restored? {
        guard subtask.depfile != nil, !decided.cacheKey.isFull else { return await writeFromRemote(subtask, key: decided) }
        guard let manifest = await remoteManifest(for: subtask, declaredKey: decided.digest),
              case .matched(let full)? = try? local.discovery(for: subtask, declared: decided, also: manifest, log: nil)
        else { return nil }
        return await writeFromRemote(subtask, key: full)
    }

    /// The full key when the subtask has a depfile and a recorded set
    /// matches locally; else `declared` itself.
    func localFullKey(_ subtask: Subtask, declared: ActionKey) -> ActionKey {
        guard subtask.depfile != nil,
              case .matched(let full)? = try? local.discovery(for: subtask, declared: declared, log: nil)
        else { return declared }
        return full
    }

    /// The remote's manifest for `declaredKey` (once per build), merged
    /// into the local one so that the next upload of it keeps its sets; nil
    /// on a miss, an unavailable remote or an entry that is not a manifest
    /// (with a warning).
    private func remoteManifest(for subtask: Subtask, declaredKey: String) async -> DiscoveredManifest? {
        guard let remote, !local.readOnly, lookedUp.withLock({ $0.insert(declaredKey).inserted }) else { return nil }
        switch await remote.action(declaredKey) {
        case .hit(let bytes):
            guard let manifest = DiscoveredManifest.decode(bytes) else {
                warn("remote cache manifest for `\(subtask.id)` refused: it is not a manifest of discovered inputs; running it")
                return nil
            }
            let merged = (local.store.manifest(declaredKey) ?? DiscoveredManifest()).merging(manifest)
            try? local.store.putManifest(declaredKey, merged)
            return manifest
        case .refused(let reason):
            warn("remote cache manifest for `\(subtask.id)` refused: \(reason); running it")
            return nil
        case .miss, .unavailable:
            return nil
        }
    }

    /// Uploads a manifest (after the entry of its newest set).
    func upload(_ manifest: DiscoveredManifest, declaredKey: String, to remote: RemoteCacheStore) async {
        guard let bytes = manifest.jsonBytes(sizeLimit: RemoteCacheStore.actionLimit) else { return }
        _ = await remote.putAction(declaredKey, bytes)
    }
}

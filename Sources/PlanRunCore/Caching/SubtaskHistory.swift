import Foundation
import Synchronization

/// A subtask's last successful state: the key it ran (or was restored)
/// with, its component digests, its result and its outputs as it left them.
package struct HistoryEntry: Sendable, Hashable {
    package var key: String
    package var resultDigest: String
    package var result: [UInt8]
    package var outputs: [OutputEntry]
    /// The key's component digests, when loaded; a database history loads
    /// them only on demand (`SubtaskHistory.cacheKey(for:)`), since a
    /// skipped subtask needs only the key.
    package var components: [String: String]?

    package init(key: CacheKey, resultDigest: String, result: [UInt8], outputs: [OutputEntry]) {
        self.key = key.key
        self.components = key.components
        self.resultDigest = resultDigest
        self.result = result
        self.outputs = outputs
    }

    package init(key: String, resultDigest: String, result: [UInt8], outputs: [OutputEntry]) {
        self.key = key
        self.components = nil
        self.resultDigest = resultDigest
        self.result = result
        self.outputs = outputs
    }
}

/// Where last successful states are kept (`subtask_state`, or memory).
package protocol SubtaskHistory: Sendable {
    func entry(for id: String) throws -> HistoryEntry?
    /// The last successful key with its components (to explain a change);
    /// nil when absent or when the stored components do not match the key.
    func cacheKey(for id: String) throws -> CacheKey?
    func save(_ entry: HistoryEntry, for id: String) throws
    /// Saves several entries at once (one transaction where there is one):
    /// all or none.
    func saveAll(_ entries: [(id: String, entry: HistoryEntry)]) throws
    /// Forgets the given subtasks (all when nil).
    func remove(_ ids: [String]?) throws
    /// Waits until saved entries are written; throws when one could not be.
    func waitForWrites() throws
    /// Starts writing the entries saved so far, without waiting.
    func commitQueued()
}

extension SubtaskHistory {
    package func waitForWrites() throws {}
    package func commitQueued() {}

    package func saveAll(_ entries: [(id: String, entry: HistoryEntry)]) throws {
        for (id, entry) in entries { try save(entry, for: id) }
    }
}

/// A `SubtaskHistory` in memory (tests).
package final class InMemorySubtaskHistory: SubtaskHistory {
    private let entries = Mutex<[String: HistoryEntry]>([:])

    package init() {}

    package func entry(for id: String) throws -> HistoryEntry? { entries.withLock { $0[id] } }

    package func cacheKey(for id: String) throws -> CacheKey? {
        guard let entry = try entry(for: id), let components = entry.components else { return nil }
        let key = CacheKey(components: components)
        return key.key == entry.key ? key : nil
    }

    package func save(_ entry: HistoryEntry, for id: String) throws { entries.withLock { $0[id] = entry } }

    package func remove(_ ids: [String]?) throws {
        entries.withLock { dict in
            if let ids { for id in ids { dict[id] = nil } } else { dict = [:] }
        }
    }
}


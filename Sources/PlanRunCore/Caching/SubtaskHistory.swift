import Foundation
import GRDB
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
    /// Forgets the given subtasks (all when nil).
    func remove(_ ids: [String]?) throws
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

/// `SubtaskHistory` over the state database's `subtask_state` table.
/// Columns: `cache_key`, `result_digest`, `result` (blob), `outputs` (JSON
/// `{"outputs": [OutputEntry], "components": {NAME: DIGEST}}`), `updated_at`.
/// All rows are read once, on first use (one query instead of one per
/// subtask); writes go straight to the database. A row that cannot be
/// decoded reads as absent, so the subtask runs again.
package final class DatabaseSubtaskHistory: SubtaskHistory {
    private let reader: any DatabaseReader
    private let writer: (any DatabaseWriter)?

    /// `writer` nil = read-only (`explain`, `plan`, `status`).
    package init(reader: any DatabaseReader, writer: (any DatabaseWriter)?) {
        self.reader = reader
        self.writer = writer
    }

    private struct OutputsColumn: Codable {
        var outputs: [OutputEntry]
        var components: [String: String]
    }

    /// The same column, decoding only `outputs` (the components are most
    /// of the text and are needed only to explain a changed key).
    private struct OutputsOnly: Decodable {
        var outputs: [OutputEntry]
    }

    private struct Loaded: Sendable {
        var entries: [String: HistoryEntry]
        var columns: [String: String]
    }

    private let loaded = Mutex<Loaded?>(nil)

    private func load() throws -> Loaded {
        if let done = loaded.withLock({ $0 }) { return done }
        var all = Loaded(entries: [:], columns: [:])
        try reader.read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT subtask_id, cache_key, result_digest, result, outputs FROM subtask_state")
            let decoder = JSONDecoder()
            while let row = try rows.next() {
                guard let id = row["subtask_id"] as String?, let key = row["cache_key"] as String?,
                      let digest = row["result_digest"] as String?, let outputsText = row["outputs"] as String?,
                      let column = try? decoder.decode(OutputsOnly.self, from: Data(outputsText.utf8))
                else { continue } // torn or tampered row: the subtask runs again
                let result = (row["result"] as Data?).map { Array($0) } ?? []
                all.entries[id] = HistoryEntry(key: key, resultDigest: digest, result: result, outputs: column.outputs)
                all.columns[id] = outputsText
            }
        }
        return loaded.withLock { l in
            if l == nil { l = all }
            return l!
        }
    }

    package func entry(for id: String) throws -> HistoryEntry? {
        try load().entries[id]
    }

    package func cacheKey(for id: String) throws -> CacheKey? {
        let all = try load()
        guard let entry = all.entries[id], let text = all.columns[id],
              let column = try? JSONDecoder().decode(OutputsColumn.self, from: Data(text.utf8))
        else { return nil }
        let key = CacheKey(components: column.components)
        return key.key == entry.key ? key : nil
    }

    package func save(_ entry: HistoryEntry, for id: String) throws {
        guard let writer else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let outputs = String(decoding: try encoder.encode(OutputsColumn(outputs: entry.outputs, components: entry.components ?? [:])), as: UTF8.self)
        try writer.write { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO subtask_state (subtask_id, cache_key, result_digest, result, outputs, updated_at)
                VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [id, entry.key, entry.resultDigest, Data(entry.result), outputs, Date().timeIntervalSince1970])
        }
        loaded.withLock { l in
            l?.entries[id] = entry
            l?.columns[id] = outputs
        }
    }

    package func remove(_ ids: [String]?) throws {
        guard let writer else { return }
        try writer.write { db in
            if let ids {
                for id in ids { try db.execute(sql: "DELETE FROM subtask_state WHERE subtask_id = ?", arguments: [id]) }
            } else {
                try db.execute(sql: "DELETE FROM subtask_state")
            }
        }
        loaded.withLock { l in
            if let ids {
                for id in ids {
                    l?.entries[id] = nil
                    l?.columns[id] = nil
                }
            } else {
                l = Loaded(entries: [:], columns: [:])
            }
        }
    }
}

/// `DigestStore` over the state database's `file_digests` table.
package struct DatabaseDigestStore: DigestStore {
    private let reader: any DatabaseReader
    private let writer: (any DatabaseWriter)?

    package init(reader: any DatabaseReader, writer: (any DatabaseWriter)?) {
        self.reader = reader
        self.writer = writer
    }

    package func loadAll() throws -> [String: FileDigestRecord] {
        try reader.read { db in
            var all: [String: FileDigestRecord] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT path, size, mtime_ns, inode, ctime_ns, digest FROM file_digests")
            while let row = try rows.next() {
                guard let path = row["path"] as String?, let size = row["size"] as Int64?,
                      let mtime = row["mtime_ns"] as Int64?, let inode = row["inode"] as Int64?,
                      let ctime = row["ctime_ns"] as Int64?, let digest = row["digest"] as String?
                else { continue }
                all[path] = FileDigestRecord(
                    path: path, size: size, mtimeNs: mtime, inode: UInt64(bitPattern: inode), ctimeNs: ctime, digest: digest)
            }
            return all
        }
    }

    package func save(_ records: [FileDigestRecord], removing removed: [String]) throws {
        guard let writer else { return }
        try writer.write { db in
            let delete = try db.makeStatement(sql: "DELETE FROM file_digests WHERE path = ?")
            for path in removed { try delete.execute(arguments: [path]) }
            let insert = try db.makeStatement(sql: """
                INSERT OR REPLACE INTO file_digests (path, size, mtime_ns, inode, ctime_ns, digest)
                VALUES (?, ?, ?, ?, ?, ?)
                """)
            for r in records {
                try insert.execute(arguments: [r.path, r.size, r.mtimeNs, Int64(bitPattern: r.inode), r.ctimeNs, r.digest])
            }
        }
    }
}

import Foundation
import GRDB
import Synchronization

/// A subtask's last successful state: the key it ran (or was restored)
/// with, its component digests, its result and its outputs as it left them.
package struct HistoryEntry: Sendable, Hashable {
    package var key: CacheKey
    package var resultDigest: String
    package var result: [UInt8]
    package var outputs: [OutputEntry]

    package init(key: CacheKey, resultDigest: String, result: [UInt8], outputs: [OutputEntry]) {
        self.key = key
        self.resultDigest = resultDigest
        self.result = result
        self.outputs = outputs
    }
}

/// Where last successful states are kept (`subtask_state`, or memory).
package protocol SubtaskHistory: Sendable {
    func entry(for id: String) throws -> HistoryEntry?
    func save(_ entry: HistoryEntry, for id: String) throws
    /// Forgets the given subtasks (all when nil).
    func remove(_ ids: [String]?) throws
}

/// A `SubtaskHistory` in memory (tests).
package final class InMemorySubtaskHistory: SubtaskHistory {
    private let entries = Mutex<[String: HistoryEntry]>([:])

    package init() {}

    package func entry(for id: String) throws -> HistoryEntry? { entries.withLock { $0[id] } }

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
    private let cache = Mutex<[String: HistoryEntry]?>(nil)

    /// `writer` nil = read-only (`explain`, `plan`, `status`).
    package init(reader: any DatabaseReader, writer: (any DatabaseWriter)?) {
        self.reader = reader
        self.writer = writer
    }

    private struct OutputsColumn: Codable {
        var outputs: [OutputEntry]
        var components: [String: String]
    }

    package func entry(for id: String) throws -> HistoryEntry? {
        if let loaded = cache.withLock({ $0 }) { return loaded[id] }
        var all: [String: HistoryEntry] = [:]
        try reader.read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT subtask_id, cache_key, result_digest, result, outputs FROM subtask_state")
            let decoder = JSONDecoder()
            while let row = try rows.next() {
                guard let id = row["subtask_id"] as String?, let key = row["cache_key"] as String?,
                      let digest = row["result_digest"] as String?, let outputsText = row["outputs"] as String?,
                      let column = try? decoder.decode(OutputsColumn.self, from: Data(outputsText.utf8))
                else { continue }
                let cacheKey = CacheKey(components: column.components)
                guard cacheKey.key == key else { continue } // tampered or torn row: ignore it
                let result = (row["result"] as Data?).map { Array($0) } ?? []
                all[id] = HistoryEntry(key: cacheKey, resultDigest: digest, result: result, outputs: column.outputs)
            }
        }
        return cache.withLock { c in
            if c == nil { c = all }
            return c?[id]
        }
    }

    package func save(_ entry: HistoryEntry, for id: String) throws {
        guard let writer else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let outputs = String(decoding: try encoder.encode(OutputsColumn(outputs: entry.outputs, components: entry.key.components)), as: UTF8.self)
        try writer.write { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO subtask_state (subtask_id, cache_key, result_digest, result, outputs, updated_at)
                VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [id, entry.key.key, entry.resultDigest, Data(entry.result), outputs, Date().timeIntervalSince1970])
        }
        cache.withLock { c in c?[id] = entry }
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
        cache.withLock { c in
            if let ids { for id in ids { c?[id] = nil } } else { c = [:] }
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

import Foundation
import GRDB
import Synchronization

/// `SubtaskHistory` over the state database's `subtask_state` table.
/// Columns: `cache_key`, `result_digest`, `result` (blob), `outputs`
/// (outputs and key components, `HistoryColumn`), `updated_at`.
/// All rows are read once, on first use (one query instead of one per
/// subtask); writes go straight to the database, or behind it
/// (`writeBehind`). A row that cannot be decoded reads as absent, so the
/// subtask runs again.
package final class DatabaseSubtaskHistory: SubtaskHistory {
    private let reader: any DatabaseReader
    private let writer: (any DatabaseWriter)?
    private let writeBehind: Bool
    /// The first write-behind transaction that failed.
    private let writeFailure = Mutex<String?>(nil)

    /// `writer` nil = read-only (`explain`, `plan`, `status`).
    /// `writeBehind`: saves are queued (reads here see them at once) and
    /// committed on the writer's queue by `commitQueued`, many in one
    /// transaction, while the caller goes on; `waitForWrites` writes the
    /// rest and waits. A build's loop would otherwise wait for a commit
    /// per subtask, and now and then for SQLite's checkpoint (two
    /// `fdatasync`, tens of milliseconds). A save lost to a crash makes
    /// the subtask run again, as a crash just before it would.
    package init(reader: any DatabaseReader, writer: (any DatabaseWriter)?, writeBehind: Bool = false) {
        self.reader = reader
        self.writer = writer
        self.writeBehind = writeBehind
    }

    package func waitForWrites() throws {
        guard let writer, writeBehind else { return }
        // Rows not handed over yet go now, after every commit handed over.
        let batch = takeQueued()
        do {
            if batch.isEmpty {
                writer.writeWithoutTransaction { _ in }
            } else {
                try writer.write { db in try Self.insert(batch, into: db) }
            }
        } catch {
            throw CacheError.stateWrite(reason: "\(error)")
        }
        if let failure = writeFailure.withLock({ $0 }) {
            throw CacheError.stateWrite(reason: failure)
        }
    }

    /// Hands the queued rows to the writer's queue in one transaction.
    package func commitQueued() {
        guard let writer, writeBehind else { return }
        let batch = takeQueued()
        guard !batch.isEmpty else { return }
        writer.asyncWrite({ db in try Self.insert(batch, into: db) }, completion: { [self] _, result in
            if case .failure(let error) = result {
                writeFailure.withLock { if $0 == nil { $0 = "\(error)" } }
            }
        })
    }

    private func takeQueued() -> [StateRow] {
        queued.withLock { rows -> [StateRow] in
            defer { rows = [] }
            return rows
        }
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
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM subtask_state") ?? 0
            all.entries.reserveCapacity(count)
            all.columns.reserveCapacity(count)
            let rows = try Row.fetchCursor(db, sql: "SELECT subtask_id, cache_key, result_digest, result, outputs FROM subtask_state")
            while let row = try rows.next() {
                guard let id = row[0] as String?, let key = row[1] as String?,
                      let digest = row[2] as String?, let outputsText = row[4] as String?,
                      let outputs = HistoryColumn.outputs(outputsText)
                else { continue } // torn or tampered row: the subtask runs again
                let result = try row.withUnsafeData(atIndex: 3) { $0.map { Array($0) } } ?? []
                all.entries[id] = HistoryEntry(key: key, resultDigest: digest, result: result, outputs: outputs)
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

    /// Reads every row now instead of at the first lookup.
    package func preload() throws { _ = try load() }

    package func cacheKey(for id: String) throws -> CacheKey? {
        let all = try load()
        guard let entry = all.entries[id], let text = all.columns[id],
              let components = HistoryColumn.components(text)
        else { return nil }
        let key = CacheKey(components: components)
        return key.key == entry.key ? key : nil
    }

    package func save(_ entry: HistoryEntry, for id: String) throws {
        try saveAll([(id, entry)])
    }

    /// One transaction and one prepared statement for all `entries`: a
    /// remote restore of thousands of subtasks records them per level
    /// instead of committing once per subtask.
    package func saveAll(_ entries: [(id: String, entry: HistoryEntry)]) throws {
        guard let writer, !entries.isEmpty else { return }
        let columns = entries.map { HistoryColumn.encode(outputs: $0.entry.outputs, components: $0.entry.components ?? [:]) }
        let rows = entries.enumerated().map { index, item in
            StateRow(id: item.id, key: item.entry.key, digest: item.entry.resultDigest, result: Data(item.entry.result),
                outputs: columns[index])
        }
        if writeBehind {
            // Lookups answer from memory from here on (rows may not be
            // committed yet), so the history must be read first.
            _ = try load()
            queued.withLock { $0.append(contentsOf: rows) }
        } else {
            try writer.write { db in try Self.insert(rows, into: db) }
        }
        loaded.withLock { l in
            for (index, item) in entries.enumerated() {
                l?.entries[item.id] = item.entry
                l?.columns[item.id] = columns[index]
            }
        }
    }

    /// A `subtask_state` row to write.
    private struct StateRow: Sendable {
        var id: String
        var key: String
        var digest: String
        var result: Data
        var outputs: String
    }

    /// Saved rows not yet handed to the writer (`commitQueued`).
    private let queued = Mutex<[StateRow]>([])

    private static func insert(_ rows: [StateRow], into db: Database) throws {
        let statement = try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO subtask_state (subtask_id, cache_key, result_digest, result, outputs, updated_at)
            VALUES (?, ?, ?, ?, ?, ?)
            """)
        let now = Date().timeIntervalSince1970
        for row in rows {
            try statement.execute(arguments: [row.id, row.key, row.digest, row.result, row.outputs, now])
        }
    }

    package func remove(_ ids: [String]?) throws {
        guard let writer else { return }
        // A row saved behind and not handed over yet would bring them back.
        let removed = ids.map(Set.init)
        queued.withLock { rows in rows.removeAll { removed?.contains($0.id) ?? true } }
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


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

/// The `outputs` column of `subtask_state`, format 2: netstring fields
/// (`FieldFramer`'s framing, `LENGTH:BYTES,`) in this order:
///   "h2", the number of outputs N, then N times: path, kind (`file`,
///   `folder` or `symlink`), digest, then `m` and the permission bits in
///   octal (`m644`) when a mode is recorded, else `x` (executable) or `-`
///   (rows written before modes were recorded); then name, digest for
///   each key component, names in ascending byte order.
/// Skipping a subtask needs only the outputs, which come first, so a
/// history load reads a few short fields per row and stops; the
/// components are read only to explain a changed key. Format 1 (JSON
/// `{"components": {...}, "outputs": [...]}`), written by earlier
/// versions, is still read. Any text that does not parse is nil: the row
/// reads as absent and the subtask runs again.
enum HistoryColumn {
    static let marker = "h2"

    static func encode(outputs: [OutputEntry], components: [String: String]) -> String {
        var framer = FieldFramer()
        framer.add(marker)
        framer.add(String(outputs.count))
        for output in outputs {
            framer.add(output.path)
            framer.add(output.kind.rawValue)
            framer.add(output.digest)
            if let mode = output.mode {
                framer.add("m" + String(mode, radix: 8))
            } else {
                framer.add(output.executable ? "x" : "-")
            }
        }
        for name in components.keys.sorted(by: byteOrder) {
            framer.add(name)
            framer.add(components[name]!)
        }
        return String(decoding: framer.bytes, as: UTF8.self)
    }

    /// The outputs of a column; nil when it does not parse.
    static func outputs(_ text: String) -> [OutputEntry]? {
        if text.utf8.first == UInt8(ascii: "{") { return JSONColumn.decode(text)?.outputs }
        var text = text
        return text.withUTF8 { bytes -> [OutputEntry]? in
            var reader = FieldReader(bytes)
            return reader.readOutputs()
        }
    }

    /// The key components of a column; nil when it does not parse.
    static func components(_ text: String) -> [String: String]? {
        if text.utf8.first == UInt8(ascii: "{") { return JSONColumn.decode(text)?.components }
        var text = text
        return text.withUTF8 { bytes -> [String: String]? in
            var reader = FieldReader(bytes)
            guard reader.readOutputs() != nil else { return nil }
            var components: [String: String] = [:]
            while !reader.atEnd {
                guard let name = reader.nextString(), let digest = reader.nextString() else { return nil }
                components[name] = digest
            }
            return components
        }
    }

    /// Format 1, as written before format 2.
    private struct JSONColumn: Decodable {
        var outputs: [OutputEntry]
        var components: [String: String]

        static func decode(_ text: String) -> JSONColumn? {
            try? JSONDecoder().decode(JSONColumn.self, from: Data(text.utf8))
        }
    }

    /// Reads netstring fields from UTF-8 bytes.
    private struct FieldReader {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0

        init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        var atEnd: Bool { position == bytes.count }

        /// The byte range of the next field; nil when malformed or at the end.
        mutating func next() -> Range<Int>? {
            var length = 0
            var digits = 0
            while position < bytes.count, bytes[position] >= UInt8(ascii: "0"), bytes[position] <= UInt8(ascii: "9") {
                length = length * 10 + Int(bytes[position] - UInt8(ascii: "0"))
                position += 1
                digits += 1
                if digits > 9 { return nil }
            }
            guard digits > 0, position < bytes.count, bytes[position] == UInt8(ascii: ":") else { return nil }
            let start = position + 1
            guard length < bytes.count - start, bytes[start + length] == UInt8(ascii: ",") else { return nil }
            position = start + length + 1
            return start..<(start + length)
        }

        mutating func nextString() -> String? {
            guard let range = next() else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }

        func equals(_ range: Range<Int>, _ text: StaticString) -> Bool {
            range.count == text.utf8CodeUnitCount
                && memcmp(bytes.baseAddress! + range.lowerBound, text.utf8Start, range.count) == 0
        }

        /// The marker, the count and the outputs.
        mutating func readOutputs() -> [OutputEntry]? {
            guard let marker = next(), equals(marker, "h2"), let countField = nextString(),
                  let count = Int(countField), count >= 0, count <= bytes.count
            else { return nil }
            var outputs: [OutputEntry] = []
            outputs.reserveCapacity(count)
            for _ in 0..<count {
                guard let path = nextString(), let kindRange = next(), let digest = nextString(), let flag = next()
                else { return nil }
                let kind: OutputEntry.Kind
                if equals(kindRange, "file") {
                    kind = .file
                } else if equals(kindRange, "folder") {
                    kind = .folder
                } else if equals(kindRange, "symlink") {
                    kind = .symlink
                } else {
                    return nil
                }
                let executable: Bool
                var mode: Int?
                if equals(flag, "x") {
                    executable = true
                } else if equals(flag, "-") {
                    executable = false
                } else if flag.count >= 2, flag.count <= 4, bytes[flag.lowerBound] == UInt8(ascii: "m"),
                          let bits = Int(String(decoding: UnsafeBufferPointer(rebasing: bytes[(flag.lowerBound + 1)..<flag.upperBound]), as: UTF8.self), radix: 8),
                          bits >= 0, bits <= 0o777 {
                    mode = bits
                    executable = bits & 0o111 != 0
                } else {
                    return nil
                }
                outputs.append(OutputEntry(path: path, kind: kind, digest: digest, executable: executable, mode: mode))
            }
            return outputs
        }
    }
}

/// A `DigestStore` whose records were read ahead (`CacheState.load`);
/// saves go to `base`.
package struct LoadedDigestStore: DigestStore {
    let records: [String: FileDigestRecord]
    let base: any DigestStore

    package func loadAll() throws -> [String: FileDigestRecord] { records }

    package func save(_ records: [FileDigestRecord], removing removed: [String]) throws {
        try base.save(records, removing: removed)
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
            all.reserveCapacity(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM file_digests") ?? 0)
            let rows = try Row.fetchCursor(db, sql: "SELECT path, size, mtime_ns, inode, ctime_ns, digest FROM file_digests")
            while let row = try rows.next() {
                // Columns by index (as selected): no name lookups per row.
                guard let path = row[0] as String?, let size = row[1] as Int64?,
                      let mtime = row[2] as Int64?, let inode = row[3] as Int64?,
                      let ctime = row[4] as Int64?, let digest = row[5] as String?
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

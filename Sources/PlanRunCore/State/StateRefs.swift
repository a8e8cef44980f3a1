import Foundation
import GRDB
import Synchronization

/// How `outcomes` stores a cache key or result digest: a SHA-256 in
/// planrun's lowercase hex (`Digest`) as its 32 bytes, anything else (a
/// test's `"k1"`) as the text it is, so every value reads back unchanged
/// (the `run_subtasks` and `attempts` views turn blobs back into hex).
enum StateDigest {
    static func value(_ text: String?) -> DatabaseValue {
        guard var text else { return .null }
        // One pass that decodes and checks (a row of a cached rebuild
        // converts two of these).
        let bytes = text.withUTF8 { hex -> Data? in
            guard hex.count == 64 else { return nil }
            var out = Data(count: 32)
            let ok = out.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) -> Bool in
                for i in 0..<32 {
                    guard let high = nibble(hex[2 * i]), let low = nibble(hex[2 * i + 1]) else { return false }
                    raw[i] = high << 4 | low
                }
                return true
            }
            return ok ? out : nil
        }
        return bytes?.databaseValue ?? text.databaseValue
    }

    /// A lowercase hex digit's value (`Digest` writes no other).
    @inline(__always)
    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    /// `planrun_digest(TEXT)`: `value` in SQL, for the migration of rows
    /// written in hex (`v4-compact-runs`).
    static let sqlFunction = DatabaseFunction("planrun_digest", argumentCount: 1, pure: true) { values in
        guard let text = String.fromDatabaseValue(values[0]) else { return values[0] }
        return value(text)
    }
}

/// The integer ids that `run_rows` and `run_attempts` store instead of
/// repeated text (`v4-compact-runs`): a run's `seq`, a name's id in
/// `names`, an outcome's id in `outcomes`. Used only on the writer's queue
/// inside a transaction. Run and name ids are remembered across
/// transactions; a transaction that fails may have rolled back ids it
/// added, so the writer calls `forget` after a failure and they are read
/// again from the database.
final class StateRefs: Sendable {
    /// A run's `seq` and `started_at`, which its rows' times count from.
    struct Run: Sendable {
        var seq: Int64
        var startedAt: Double

        /// Microseconds from the run's start to `time` (seconds since 1970).
        func offset(_ time: Double) -> Int64 { Int64(((time - startedAt) * 1e6).rounded()) }
    }

    private struct Known: Sendable {
        var runs: [String: Run] = [:]
        var names: [String: Int64]?
    }

    private let known = Mutex(Known())

    func forget() {
        known.withLock { $0 = Known() }
    }

    func run(_ db: Database, _ id: String) throws -> Run {
        if let run = known.withLock({ $0.runs[id] }) { return run }
        guard let row = try Row.fetchOne(db, sql: "SELECT seq, started_at FROM runs WHERE id = ?", arguments: [id]) else {
            throw DatabaseError(resultCode: .SQLITE_CONSTRAINT, message: "no run `\(id)` in the state database")
        }
        let run = Run(seq: row[0], startedAt: row[1])
        known.withLock { $0.runs[id] = run }
        return run
    }

    /// The id of `name` in `names`, added when new. The first call reads
    /// every name (one query instead of one per subtask).
    func name(_ db: Database, _ name: String) throws -> Int64 {
        if let id = known.withLock({ $0.names?[name] }) { return id }
        if known.withLock({ $0.names == nil }) {
            var all: [String: Int64] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT name, id FROM names")
            while let row = try rows.next() { all[row[0]] = row[1] }
            known.withLock { $0.names = all }
            if let id = all[name] { return id }
        }
        try db.cachedStatement(sql: "INSERT INTO names (name) VALUES (?)").execute(arguments: [name])
        let id = db.lastInsertedRowID
        known.withLock { $0.names?[name] = id }
        return id
    }

    /// The id of the outcome (key, result digest, result) in `outcomes`,
    /// added when new; nil when all three are absent. Rows of the same
    /// subtask with an unchanged key and result (a cached rebuild) share
    /// one.
    static func outcome(_ db: Database, key: String?, digest: String?, result: Data?) throws -> Int64? {
        try Outcomes(db).id(key: key, digest: digest, result: result)
    }

    /// The statements of `outcome`, prepared once for a batch of rows.
    struct Outcomes {
        let db: Database
        let find: Statement
        let add: Statement

        init(_ db: Database) throws {
            self.db = db
            find = try db.cachedStatement(sql: """
                SELECT id FROM outcomes WHERE cache_key IS ? AND result_digest IS ? AND result IS ?
                """)
            add = try db.cachedStatement(sql: "INSERT INTO outcomes (cache_key, result_digest, result) VALUES (?, ?, ?)")
        }

        func id(key: String?, digest: String?, result: Data?) throws -> Int64? {
            guard key != nil || digest != nil || result != nil else { return nil }
            let arguments: StatementArguments = [StateDigest.value(key), StateDigest.value(digest), result]
            if let id = try Int64.fetchOne(find, arguments: arguments) { return id }
            try add.execute(arguments: arguments)
            return db.lastInsertedRowID
        }
    }

    /// Deletes the names and outcomes no run refers to any more (after
    /// pruning runs).
    static func deleteUnused(_ db: Database) throws {
        try db.execute(sql: """
            DELETE FROM outcomes WHERE id NOT IN
                (SELECT outcome FROM run_rows WHERE outcome IS NOT NULL
                 UNION SELECT outcome FROM run_attempts WHERE outcome IS NOT NULL);
            DELETE FROM names WHERE id NOT IN
                (SELECT subtask FROM run_rows UNION SELECT agent FROM run_rows UNION SELECT subtask FROM run_attempts);
            """)
    }
}

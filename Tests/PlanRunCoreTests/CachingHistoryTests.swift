import Foundation
import Testing
@testable import PlanRunCore

/// History and stat cache over the real state database.
@Suite struct CachingHistoryTests {
    static func entry(_ n: Int) -> HistoryEntry {
        HistoryEntry(
            key: CacheKey(components: ["command": "c\(n)", "input:a.txt": "d\(n)"]), resultDigest: "r\(n)",
            result: Array("result \(n)".utf8),
            outputs: [OutputEntry(path: "out/\(n).txt", kind: .file, digest: String(repeating: "a", count: 64), executable: n % 2 == 0)])
    }

    /// An entry as read back from the database: components load on demand.
    static func stored(_ n: Int) -> HistoryEntry {
        var e = entry(n)
        e.components = nil
        return e
    }

    @Test func historyRoundTripsThroughTheDatabase() throws {
        let dir = CachingTempDir()
        let state = try StateStore(directory: dir.url(".planrun"))
        let history = DatabaseSubtaskHistory(reader: state.database, writer: state.database)
        try history.save(Self.entry(1), for: "a")
        try history.save(Self.entry(2), for: "b")
        let fresh = DatabaseSubtaskHistory(reader: state.database, writer: state.database)
        #expect(try fresh.entry(for: "a") == Self.stored(1))
        #expect(try fresh.entry(for: "b") == Self.stored(2))
        #expect(try fresh.cacheKey(for: "b") == CacheKey(components: Self.entry(2).components!))
        #expect(try fresh.entry(for: "c") == nil)
        try fresh.remove(["a"])
        #expect(try DatabaseSubtaskHistory(reader: state.database, writer: nil).entry(for: "a") == nil)
    }

    @Test func tamperedOrTornHistoryRowReadsAsAbsent() throws {
        let dir = CachingTempDir()
        let state = try StateStore(directory: dir.url(".planrun"))
        let history = DatabaseSubtaskHistory(reader: state.database, writer: state.database)
        try history.save(Self.entry(1), for: "a")
        try history.save(Self.entry(2), for: "b")
        try history.save(Self.entry(3), for: "c")
        try state.database.write { db in
            // A key that does not match its components, and outputs that are not JSON.
            try db.execute(sql: "UPDATE subtask_state SET cache_key = 'bogus' WHERE subtask_id = 'a'")
            try db.execute(sql: "UPDATE subtask_state SET outputs = '{not json' WHERE subtask_id = 'b'")
        }
        let fresh = DatabaseSubtaskHistory(reader: state.database, writer: nil)
        // The key no longer matches any computed key (the subtask runs), and
        // its components cannot explain it.
        #expect(try fresh.entry(for: "a")?.key == "bogus")
        #expect(try fresh.cacheKey(for: "a") == nil)
        #expect(try fresh.entry(for: "b") == nil)
        #expect(try fresh.entry(for: "c") == Self.stored(3))
        #expect(try fresh.cacheKey(for: "c")?.key == Self.entry(3).key)
    }

    @Test func statCacheRoundTripsThroughTheDatabase() throws {
        let dir = CachingTempDir()
        let state = try StateStore(directory: dir.url(".planrun"))
        let store = DatabaseDigestStore(reader: state.database, writer: state.database)
        let r1 = FileDigestRecord(path: "/x/a", size: 3, mtimeNs: 1_700_000_000_123_456_789, inode: UInt64.max - 1, ctimeNs: 5, digest: "d1")
        let r2 = FileDigestRecord(path: "/x/b", size: 4, mtimeNs: 6, inode: 7, ctimeNs: 8, digest: "d2")
        try store.save([r1, r2], removing: [])
        #expect(try store.loadAll() == ["/x/a": r1, "/x/b": r2])
        try store.save([], removing: ["/x/a"])
        #expect(try store.loadAll() == ["/x/b": r2])
    }

    @Test func readOnlyOpeningCreatesNoFile() throws {
        let dir = CachingTempDir()
        #expect(try ContentCache.openReadOnly(stateDirectory: dir.url(".planrun")) == nil)
        #expect(!dir.exists(".planrun"))
        do {
            let state = try StateStore(directory: dir.url(".planrun"))
            try DatabaseSubtaskHistory(reader: state.database, writer: state.database).save(Self.entry(1), for: "a")
        }
        let before = try snapshotTree(dir.path)
        let database = try #require(try ContentCache.openReadOnly(stateDirectory: dir.url(".planrun")))
        #expect(try DatabaseSubtaskHistory(reader: database, writer: nil).entry(for: "a") == Self.stored(1))
        #expect(try snapshotTree(dir.path) == before)
    }
}

import Foundation
import Testing
import PlanRunTestSupport
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

    /// Written behind (a build's history): saves are read back at once by
    /// the same history, reach the database for another connection by
    /// `waitForWrites`, and a commit that failed is thrown there.
    @Test func writeBehindSavesLandByWaitForWritesAndReportFailures() throws {
        let dir = CachingTempDir()
        let state = try StateStore(directory: dir.url(".planrun"))
        let history = DatabaseSubtaskHistory(reader: state.database, writer: state.database, writeBehind: true)
        for n in 1...50 { try history.save(Self.entry(n), for: "s\(n)") }
        #expect(try history.entry(for: "s50")?.key == Self.entry(50).key)
        try history.waitForWrites()
        let other = try StateStore(directory: dir.url(".planrun"))
        let fresh = DatabaseSubtaskHistory(reader: other.database, writer: nil)
        for n in 1...50 { #expect(try fresh.entry(for: "s\(n)") == Self.stored(n)) }

        try other.database.write { db in try db.execute(sql: "DROP TABLE subtask_state") }
        try history.save(Self.entry(51), for: "s51")
        #expect(throws: CacheError.self) { try history.waitForWrites() }
    }

    /// Removing subtasks whose rows were saved behind and not committed yet
    /// removes them for good: the later commit does not bring them back.
    @Test func removeDropsRowsSavedBehind() throws {
        let dir = CachingTempDir()
        let state = try StateStore(directory: dir.url(".planrun"))
        let history = DatabaseSubtaskHistory(reader: state.database, writer: state.database, writeBehind: true)
        for n in 1...3 { try history.save(Self.entry(n), for: "s\(n)") }
        try history.remove(["s2"])
        history.commitQueued()
        try history.waitForWrites()
        let fresh = DatabaseSubtaskHistory(reader: state.database, writer: nil)
        #expect(try fresh.entry(for: "s1") == Self.stored(1))
        #expect(try fresh.entry(for: "s2") == nil)
        try history.save(Self.entry(4), for: "s4")
        try history.remove(nil)
        try history.waitForWrites()
        #expect(try DatabaseSubtaskHistory(reader: state.database, writer: nil).entry(for: "s4") == nil)
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

    @Test func historyColumnRoundTripsAwkwardPathsAndComponents() throws {
        let outputs = [
            OutputEntry(path: "out/a,b:1.txt", kind: .file, digest: String(repeating: "1", count: 64), executable: true),
            OutputEntry(path: "12:é\n,", kind: .folder, digest: String(repeating: "2", count: 64)),
        ]
        let components = ["command": "c", "input:x,y:z": "d", "dep:10:": ""]
        let text = HistoryColumn.encode(outputs: outputs, components: components)
        #expect(HistoryColumn.outputs(text) == outputs)
        #expect(HistoryColumn.components(text) == components)
        #expect(HistoryColumn.outputs(HistoryColumn.encode(outputs: [], components: [:])) == [])

        // A cut anywhere loses the outputs or changes the components.
        for length in 0..<text.utf8.count {
            let cut = String(decoding: Array(text.utf8.prefix(length)), as: UTF8.self)
            #expect(HistoryColumn.outputs(cut) == nil || HistoryColumn.components(cut) != components, "cut at \(length)")
        }
        for bad in ["", "h2", "2:h2,", "2:h2,1:1,", "2:h2,1:0,1:x", "2:h2,1:1,1:a,4:fil,1:d,1:-,", "2:h2,1:0,1:a,",
                    "2:h2,99999999999:0,", "2:h2,1:1,1:a,4:file,1:d,1:?,", "2:h3,1:0,"] {
            #expect(HistoryColumn.outputs(bad) == nil || HistoryColumn.components(bad) == nil, "\(bad)")
        }
        #expect(HistoryColumn.outputs("2:h2,1:0,1:a,") == [])
        #expect(HistoryColumn.components("2:h2,1:0,1:a,") == nil)
    }

    /// Rows written before format 2 (JSON) still read, so an upgrade does
    /// not make every subtask run again.
    @Test func historyWrittenAsJSONStillReads() throws {
        let dir = CachingTempDir()
        let state = try StateStore(directory: dir.url(".planrun"))
        let e = Self.entry(4)
        let json = #"{"components":{"command":"c4","input:a.txt":"d4"},"outputs":[{"digest":"\#(String(repeating: "a", count: 64))","executable":true,"kind":"file","path":"out/4.txt"}]}"#
        try state.database.write { db in
            try db.execute(sql: "INSERT INTO subtask_state (subtask_id, cache_key, result_digest, result, outputs, updated_at) VALUES (?, ?, ?, ?, ?, 0)",
                           arguments: ["d", e.key, e.resultDigest, Data(e.result), json])
        }
        let history = DatabaseSubtaskHistory(reader: state.database, writer: state.database)
        #expect(try history.entry(for: "d") == Self.stored(4))
        #expect(try history.cacheKey(for: "d") == CacheKey(components: e.components!))
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
        let before = try snapshotFolder(dir.path)
        let database = try #require(try ContentCache.openReadOnly(stateDirectory: dir.url(".planrun")))
        #expect(try DatabaseSubtaskHistory(reader: database, writer: nil).entry(for: "a") == Self.stored(1))
        #expect(try snapshotFolder(dir.path) == before)
    }
}

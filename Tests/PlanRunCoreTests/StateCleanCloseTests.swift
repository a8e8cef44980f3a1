import Foundation
import GRDB
import Testing
@testable import PlanRunCore

/// `verify` skips `quick_check` only for a database exactly as a planrun
/// process closed it in order (`StateStore+CleanClose`), and still refuses
/// a damaged one.
@Suite struct StateCleanCloseTests {
    let dir: String
    var path: String { dir + "/state.db" }

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("planrun-clean-close-\(UUID().uuidString)").path
    }

    /// A database of a few hundred rows (dozens of pages), written and closed.
    func makeClosedDatabase() throws {
        do {
            let store = try StateStore(directory: dir)
            try store.beginRun(id: "r1", plan: "p", planFile: "plan.yaml", pid: getpid(), startedAt: Date(),
                               subtasks: (0..<400).map { ("subtask-with-a-longer-name-\($0)", $0, "shell") })
            try store.finishRun(id: "r1", status: "completed", reason: nil, at: Date())
        }
    }

    /// Overwrites 4 KiB in the middle of the file (its size is kept).
    func overwritePage() throws {
        let handle = try #require(FileHandle(forWritingAtPath: path))
        let size = try #require(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        try handle.seek(toOffset: UInt64(size / 2 / 4096 * 4096))
        handle.write(Data(repeating: 0x5a, count: 4096))
        try handle.close()
    }

    @Test func aDatabaseClosedInOrderIsTrustedUntilItChanges() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeClosedDatabase()
        #expect(Self.size(path + "-wal") == 0)
        #expect(!StateStore.isUnchangedSinceCleanClose(path))
        StateStore.recordCleanClose(path)
        #expect(StateStore.isUnchangedSinceCleanClose(path))
        #expect(throws: Never.self) { _ = try StateStore(directory: dir) }

        try overwritePage()
        #expect(!StateStore.isUnchangedSinceCleanClose(path))
        #expect(throws: StateDamage.self) { _ = try StateStore(directory: dir) }
        #expect(throws: StateDamage.self) { _ = try StateStore(readingDirectory: dir) }
    }

    static func size(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int
    }

    /// The writer's clean close keeps `-wal` (truncated to zero bytes, every
    /// frame checkpointed into the main file) and `-shm` rather than
    /// deleting them; the record is then written and the next writer and
    /// readers (immutable, ignoring both files) read every row.
    @Test func aCleanCloseKeepsAnEmptyLogAndEveryRowIsInTheMainFile() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeClosedDatabase()
        #expect(Self.size(path + "-wal") == 0)
        #expect(FileManager.default.fileExists(atPath: path + "-shm"))
        StateStore.recordCleanClose(path)
        #expect(StateStore.isUnchangedSinceCleanClose(path))

        // Only the main file, as a copy would hold it: every row is there.
        let alone = dir + "/alone"
        try FileManager.default.createDirectory(atPath: alone, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: path, toPath: alone + "/state.db")
        let count = "SELECT count(*) FROM run_rows"
        let copied = try #require(try StateStore(readingDirectory: alone))
        #expect(try copied.database.read { try Int.fetchOne($0, sql: count) } == 400)
        let reader = try #require(try StateStore(readingDirectory: dir))
        #expect(try reader.database.read { try Int.fetchOne($0, sql: count) } == 400)
        #expect(StateStore.isUnchangedSinceCleanClose(path))

        // A second writer reuses the files and closes them the same way.
        do {
            let store = try StateStore(directory: dir)
            try store.finishRun(id: "r1", status: "failed", reason: "again", at: Date())
            #expect(Self.size(path + "-wal")! > 0)
        }
        #expect(Self.size(path + "-wal") == 0)
        let again = try #require(try StateStore(readingDirectory: dir))
        #expect(try again.database.read { try Int.fetchOne($0, sql: count) } == 400)
        #expect(try again.database.read { try String.fetchOne($0, sql: "SELECT status FROM runs") } == "failed")
    }

    /// A log with frames (a killed writer) or a record that does not name
    /// the file: the check runs.
    @Test func aLeftLogOrAnotherFileIsNotTrusted() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeClosedDatabase()
        StateStore.recordCleanClose(path)
        try Data(repeating: 1, count: 32).write(to: URL(fileURLWithPath: path + "-wal"))
        #expect(!StateStore.isUnchangedSinceCleanClose(path))
        try FileManager.default.removeItem(atPath: path + "-wal")
        #expect(StateStore.isUnchangedSinceCleanClose(path))

        // The same bytes in a new file (a copy over it): another inode.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try FileManager.default.removeItem(atPath: path)
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(!StateStore.isUnchangedSinceCleanClose(path))
    }

    /// A record that is a link, or does not parse, counts as none; a
    /// record is never written through a link.
    @Test func aLinkOrGarbageIsNoRecord() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeClosedDatabase()
        let record = path + StateStore.cleanCloseSuffix
        try "PLANRUN-STATE-CHECKED-1 1 2\n".write(toFile: record, atomically: false, encoding: .utf8)
        #expect(!StateStore.isUnchangedSinceCleanClose(path))
        try FileManager.default.removeItem(atPath: record)
        let elsewhere = dir + "/elsewhere"
        try FileManager.default.createSymbolicLink(atPath: record, withDestinationPath: elsewhere)
        StateStore.recordCleanClose(path)
        #expect(!FileManager.default.fileExists(atPath: elsewhere))
        #expect(!StateStore.isUnchangedSinceCleanClose(path))
    }
}

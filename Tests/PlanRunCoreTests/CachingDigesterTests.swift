import Foundation
import Testing
@testable import PlanRunCore

@Suite struct CachingDigesterTests {
    @Test func digestIsSHA256OfContent() throws {
        let dir = CachingTempDir()
        dir.write("a.txt", "hello\n")
        let digester = FileDigester(store: InMemoryDigestStore())
        #expect(try digester.digest(ofFile: dir.url("a.txt")) == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
    }

    @Test func largeFileIsStreamed() throws {
        let dir = CachingTempDir()
        let bytes = (0..<(1_000_000)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try Data(bytes).write(to: URL(fileURLWithPath: dir.url("big")))
        #expect(try FileDigester.sha256(ofFile: dir.url("big")) == Digest.sha256Hex(bytes))
    }

    @Test func unchangedOldFileIsNotRehashed() throws {
        let dir = CachingTempDir()
        dir.write("a.txt", "one")
        dir.age("a.txt")
        let store = InMemoryDigestStore()
        let first = FileDigester(store: store, racyWindowNs: 0)
        _ = try first.digest(ofFile: dir.url("a.txt"))
        try first.flush()
        #expect(try store.loadAll().count == 1)

        let second = FileDigester(store: store, racyWindowNs: 0)
        let d = try second.digest(ofFile: dir.url("a.txt"))
        #expect(second.hashCount == 0)
        #expect(d == Digest.sha256Hex(Array("one".utf8)))
    }

    @Test func changedFileIsRehashedEvenWithSameSizeAndMtime() throws {
        let dir = CachingTempDir()
        dir.write("a.txt", "one")
        dir.age("a.txt")
        let store = InMemoryDigestStore()
        let first = FileDigester(store: store, racyWindowNs: 0)
        _ = try first.digest(ofFile: dir.url("a.txt"))
        try first.flush()
        #expect(try store.loadAll().count == 1)
        let mtime = try FileManager.default.attributesOfItem(atPath: dir.url("a.txt"))[.modificationDate] as! Date
        dir.write("a.txt", "two")  // same size
        try FileManager.default.setAttributes([.modificationDate: mtime], ofItemAtPath: dir.url("a.txt"))
        let second = FileDigester(store: store, racyWindowNs: 0)
        #expect(try second.digest(ofFile: dir.url("a.txt")) == Digest.sha256Hex(Array("two".utf8)))
        #expect(second.hashCount == 1)  // ctime (and maybe inode) changed
    }

    @Test func racyFileIsNotTrustedNextTime() throws {
        let dir = CachingTempDir()
        dir.write("a.txt", "fresh")  // mtime = now: within the racy window
        let store = InMemoryDigestStore()
        let first = FileDigester(store: store)
        _ = try first.digest(ofFile: dir.url("a.txt"))
        try first.flush()
        #expect(try store.loadAll().isEmpty)
        let second = FileDigester(store: store)
        _ = try second.digest(ofFile: dir.url("a.txt"))
        #expect(second.hashCount == 1)
    }

    @Test func readOnlyDigesterWritesNothing() throws {
        let dir = CachingTempDir()
        dir.write("a.txt", "x")
        dir.age("a.txt")
        let store = InMemoryDigestStore()
        let digester = FileDigester(store: store, readOnly: true, racyWindowNs: 0)
        _ = try digester.digest(ofFile: dir.url("a.txt"))
        try digester.flush()
        #expect(try store.loadAll().isEmpty)
    }

    @Test func folderAndMissingFileAreErrors() {
        let dir = CachingTempDir()
        dir.write("d/x", "x")
        let digester = FileDigester(store: InMemoryDigestStore())
        #expect(throws: CacheError.isDirectory(path: dir.url("d"))) { try digester.digest(ofFile: dir.url("d")) }
        #expect(throws: CacheError.missingFile(path: dir.url("nope"))) { try digester.digest(ofFile: dir.url("nope")) }
    }
}

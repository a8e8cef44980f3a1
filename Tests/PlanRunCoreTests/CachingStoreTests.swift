import Foundation
import Testing
@testable import PlanRunCore

@Suite struct CachingStoreTests {
    @Test func blobsRoundTripAndAreVerifiedOnRead() throws {
        let dir = CachingTempDir()
        let store = LocalCacheStore(root: dir.url("cache"))
        let digest = try store.putBlob(Array("content".utf8))
        #expect(digest == Digest.sha256Hex(Array("content".utf8)))
        #expect(store.blob(digest) == Array("content".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url("cache/tmp")).isEmpty)

        try Data("tampered".utf8).write(to: URL(fileURLWithPath: store.blobPath(digest)))
        let readOnly = LocalCacheStore(root: dir.url("cache"), readOnly: true)
        #expect(readOnly.blob(digest) == nil)
        #expect(FileManager.default.fileExists(atPath: store.blobPath(digest)))  // read-only: left alone
        #expect(store.blob(digest) == nil)
        #expect(!FileManager.default.fileExists(atPath: store.blobPath(digest)))  // bad blob removed
    }

    /// The store remembers the blobs it wrote (a writer then skips them),
    /// but not one it found damaged and removed: the next write puts it back.
    @Test func aRemovedBadBlobIsWrittenAgain() throws {
        let dir = CachingTempDir()
        let store = LocalCacheStore(root: dir.url("cache"))
        let digest = try store.putBlob(Array("content".utf8))
        #expect(store.isStored(digest))
        try Data("tampered".utf8).write(to: URL(fileURLWithPath: store.blobPath(digest)))
        #expect(store.blob(digest) == nil)  // found bad, removed
        #expect(!FileManager.default.fileExists(atPath: store.blobPath(digest)))
        #expect(!store.isStored(digest))
        #expect(try store.putBlob(Array("content".utf8)) == digest)
        #expect(store.blob(digest) == Array("content".utf8))
        dir.write("src.bin", "content")
        #expect(try store.putFile(dir.url("src.bin")) == digest)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url("cache/tmp")).isEmpty)
    }

    @Test func restoreChecksTheContentBeforeReplacingAnything() throws {
        let dir = CachingTempDir()
        let store = LocalCacheStore(root: dir.url("cache"))
        dir.write("src.bin", "payload")
        let digest = try store.putFile(dir.url("src.bin"))
        #expect(try store.restoreBlob(digest, to: dir.url("out.bin"), executable: true))
        #expect(dir.read("out.bin") == "payload")
        #expect(FileStat.of(dir.url("out.bin"))?.isExecutable == true)

        dir.write("existing.bin", "keep")
        try Data("payloaX".utf8).write(to: URL(fileURLWithPath: store.blobPath(digest)))  // same size, wrong bytes
        #expect(try store.restoreBlob(digest, to: dir.url("existing.bin"), executable: false) == false)
        #expect(dir.read("existing.bin") == "keep")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains("planrun-tmp") }.isEmpty)
    }

    @Test(arguments: ["{not json", "{\"format\": 2}", "{\"format\":1,\"exit_status\":0,\"result_digest\":\"x\",\"result_blob\":\"../../etc/passwd\",\"outputs\":[],\"components\":{}}"])
    func unreadableActionResultIsAMissAndIsRemoved(_ text: String) throws {
        let dir = CachingTempDir()
        let store = LocalCacheStore(root: dir.url("cache"))
        let key = String(repeating: "ab", count: 32)
        dir.write("cache/ac/" + key, text)
        #expect(store.action(key) == nil)
        #expect(!dir.exists("cache/ac/" + key))
    }

    /// `ActionResult.jsonBytes` (hand-written) writes what `JSONEncoder`
    /// with sorted keys writes, and reads back as the same entry, with and
    /// without the optional inline contents and with characters that need
    /// escaping.
    @Test func actionResultJSONMatchesJSONEncoder() throws {
        var plain = ActionResult(
            resultDigest: String(repeating: "a", count: 64), resultBlob: String(repeating: "b", count: 64),
            outputs: [OutputEntry(path: "out/x.txt", kind: .file, digest: "d1", executable: true),
                      OutputEntry(path: "dist", kind: .folder, digest: "d2")],
            components: ["command": "c", "input:in/\"q\".txt": "e", "dep:z": "f", "env:A": "line\nbreak\ttab"])
        var inline = plain
        inline.resultContents = "aGVsbG8="
        inline.outputs[0].contents = "eA=="
        plain.exitStatus = 0
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for entry in [plain, inline, ActionResult(resultDigest: "r", resultBlob: "b", outputs: [], components: [:])] {
            let bytes = entry.jsonBytes
            #expect(String(decoding: bytes, as: UTF8.self) == String(decoding: try encoder.encode(entry), as: UTF8.self))
            #expect(try JSONDecoder().decode(ActionResult.self, from: Data(bytes)) == entry)
        }
    }

    @Test func actionKeysMustBeDigests() throws {
        let dir = CachingTempDir()
        let store = LocalCacheStore(root: dir.url("cache"))
        #expect(store.action("../state.db") == nil)
        let result = ActionResult(resultDigest: "r", resultBlob: String(repeating: "0", count: 64), outputs: [], components: [:])
        try store.putAction("../../escape", result)
        #expect(!dir.exists("escape") && !dir.exists("cache/escape"))
        let key = String(repeating: "cd", count: 32)
        try store.putAction(key, result)
        #expect(store.action(key) == result)
    }

    /// A new `ac` entry is created in place (no temporary file); one that
    /// a kill cut short at any byte reads as a miss and is removed; an
    /// entry already there is replaced whole, and a link there is replaced,
    /// never written through.
    @Test func actionEntriesWrittenInPlaceReadWholeOrAsAMiss() throws {
        let dir = CachingTempDir()
        let store = LocalCacheStore(root: dir.url("cache"))
        let key = String(repeating: "ef", count: 32)
        let first = ActionResult(
            resultDigest: String(repeating: "1", count: 64), resultBlob: String(repeating: "2", count: 64),
            outputs: [OutputEntry(path: "out/a.txt", kind: .file, digest: String(repeating: "3", count: 64), executable: false)],
            components: ["command": String(repeating: "4", count: 64)])
        try store.putAction(key, first)
        #expect(store.action(key) == first)
        let leftovers = dir.exists("cache/tmp") ? try FileManager.default.contentsOfDirectory(atPath: dir.url("cache/tmp")) : []
        #expect(leftovers.isEmpty)

        let bytes = first.jsonBytes
        for length in 0..<bytes.count {
            try Data(bytes.prefix(length)).write(to: URL(fileURLWithPath: store.actionPath(key)))
            #expect(store.action(key) == nil, "a torn entry of \(length) bytes must be a miss")
            #expect(!dir.exists("cache/ac/" + key))
        }

        try store.putAction(key, first)
        var second = first
        second.resultDigest = String(repeating: "5", count: 64)
        try store.putAction(key, second)
        #expect(store.action(key) == second)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url("cache/tmp")).isEmpty)

        dir.write("victim.txt", "keep")
        try FileManager.default.removeItem(atPath: store.actionPath(key))
        try FileManager.default.createSymbolicLink(atPath: store.actionPath(key), withDestinationPath: dir.url("victim.txt"))
        try store.putAction(key, first)
        #expect(dir.read("victim.txt") == "keep")
        #expect(FileStat.of(store.actionPath(key), followSymlinks: false)?.kind == .file)
        #expect(store.action(key) == first)
    }
}

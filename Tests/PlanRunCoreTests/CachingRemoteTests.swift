import Foundation
import Testing
@testable import PlanRunCore

/// Validation of entries downloaded from a remote cache (digests
/// well formed, no restored path leaves the plan's folder) and remote URLs.
@Suite struct CachingRemoteTests {
    static let hexA = String(repeating: "a", count: 64)
    static let hexB = String(repeating: "b", count: 64)
    static let subtask = Subtask(id: "gen", run: "true", outputs: ["out/a.txt", "site"])

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var json: String
        var expected: RemoteCacheStore.Refusal?
        var testDescription: String { name }
    }

    static func entry(_ outputs: String, format: Int = 2, exit: Int = 0, blob: String = hexA) -> String {
        #"{"format":\#(format),"exit_status":\#(exit),"result_digest":"\#(hexA)","result_blob":"\#(blob)","outputs":[\#(outputs)],"components":{}}"#
    }

    static func output(_ path: String, kind: String = "file", digest: String = hexB) -> String {
        #"{"path":"\#(path)","kind":"\#(kind)","digest":"\#(digest)","executable":false}"#
    }

    static let cases: [Case] = [
        Case(name: "valid", json: entry(output("out/a.txt") + "," + output("site", kind: "folder")), expected: nil),
        Case(name: "valid with ./ and trailing slash",
             json: entry(output("./out/a.txt") + "," + output("site/", kind: "folder")), expected: nil),
        Case(name: "not JSON", json: "{not json", expected: .malformed),
        Case(name: "an older format (no modes, links followed)", json: entry(output("out/a.txt") + "," + output("site"), format: 1),
             expected: .malformed),
        Case(name: "failed exit status", json: entry(output("out/a.txt") + "," + output("site"), exit: 1), expected: .malformed),
        Case(name: "missing fields", json: #"{"format":1}"#, expected: .malformed),
        Case(name: "result blob not a digest", json: entry(output("out/a.txt") + "," + output("site"), blob: "../../etc/passwd"),
             expected: .badDigest),
        Case(name: "output digest not a digest", json: entry(output("out/a.txt", digest: "XYZ") + "," + output("site")),
             expected: .badDigest),
        Case(name: "parent path", json: entry(output("../x") + "," + output("site")), expected: .unsafePath("../x")),
        Case(name: "parent inside path", json: entry(output("out/../../x") + "," + output("site")),
             expected: .unsafePath("out/../../x")),
        Case(name: "absolute path", json: entry(output("/etc/cron.d/x") + "," + output("site")),
             expected: .unsafePath("/etc/cron.d/x")),
        Case(name: "undeclared path", json: entry(output("out/a.txt") + "," + output("other")), expected: .undeclaredPaths),
        Case(name: "declared output missing", json: entry(output("out/a.txt")), expected: .undeclaredPaths),
        Case(name: "one path twice", json: entry(output("out/a.txt") + "," + output("out/a.txt") + "," + output("site")),
             expected: .undeclaredPaths),
    ]

    @Test(arguments: cases)
    func actionValidation(_ c: Case) {
        switch RemoteCacheStore.validateAction(Array(c.json.utf8), for: Self.subtask) {
        case .success(let action):
            #expect(c.expected == nil)
            #expect(action.outputs.count == 2)
        case .failure(let refusal):
            #expect(refusal == c.expected)
        }
    }

    @Test(arguments: [
        ("a/b.html", nil), ("../evil", RemoteCacheStore.Refusal.unsafePath("../evil")),
        ("/abs", .unsafePath("/abs")), ("a/../../evil", .unsafePath("a/../../evil")),
    ] as [(String, RemoteCacheStore.Refusal?)])
    func manifestValidation(path: String, expected: RemoteCacheStore.Refusal?) {
        let json = #"{"files":[{"path":"\#(path)","digest":"\#(Self.hexA)","executable":false}]}"#
        switch RemoteCacheStore.validateManifest(Array(json.utf8)) {
        case .success(let manifest):
            #expect(expected == nil)
            #expect(manifest.files.map(\.path) == [path])
        case .failure(let refusal):
            #expect(refusal == expected)
        }
    }

    @Test func manifestWithBadDigestIsRefused() {
        let json = #"{"files":[{"path":"a","digest":"nothex","executable":false}]}"#
        #expect(RemoteCacheStore.validateManifest(Array(json.utf8)) == .failure(.badDigest))
    }

    @Test func anEntryWrittenByTheLocalStoreIsAccepted() throws {
        let action = ActionResult(resultDigest: Self.hexA, resultBlob: Self.hexB,
                                  outputs: [OutputEntry(path: "out/a.txt", kind: .file, digest: Self.hexA),
                                            OutputEntry(path: "site", kind: .folder, digest: Self.hexB)],
                                  components: ["command": Self.hexA])
        let bytes = Array(try JSONEncoder().encode(action))
        #expect(RemoteCacheStore.validateAction(bytes, for: Self.subtask) == .success(action))
    }

    /// Inline blobs (`result_contents`, an output's `contents`): taken when
    /// they match their digest, refused otherwise; entries without them
    /// (the cases above) read as before.
    @Test func inlineBlobsAreCheckedAgainstTheirDigests() throws {
        let result = Array("gen-result\n".utf8), file = Array("a\n".utf8)
        let json = #"{"format":2,"exit_status":0,"result_digest":"\#(Self.hexA)","result_blob":"\#(Digest.sha256Hex(result))","#
            + #""result_contents":"\#(Data(result).base64EncodedString())","outputs":["#
            + #"{"path":"out/a.txt","kind":"file","digest":"\#(Digest.sha256Hex(file))","executable":false,"#
            + #""contents":"\#(Data(file).base64EncodedString())"},"# + Self.output("site", kind: "folder") + #"],"components":{}}"#
        let action = try RemoteCacheStore.validateAction(Array(json.utf8), for: Self.subtask).get()
        let blobs = try RemoteRestorer.inlineBlobs(of: action).get()
        #expect(blobs == [Digest.sha256Hex(result): result, Digest.sha256Hex(file): file])
        #expect(action.withoutContents.resultContents == nil)
        #expect(action.withoutContents.outputs.allSatisfy { $0.contents == nil })

        var wrong = action
        wrong.outputs[0].contents = Data("b\n".utf8).base64EncodedString()
        #expect(RemoteRestorer.inlineBlobs(of: wrong) == .failure(.blobMismatch(digest: Digest.sha256Hex(file))))
        var garbled = action
        garbled.resultContents = "%%%"
        #expect(RemoteRestorer.inlineBlobs(of: garbled) == .failure(.malformed))
        var onFolder = action
        onFolder.outputs[1].contents = Data(file).base64EncodedString()
        #expect(RemoteRestorer.inlineBlobs(of: onFolder) == .failure(.malformed))
    }

    @Test func theLocalStoreWritesNoInlineContents() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("planrun-inline-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = LocalCacheStore(root: dir)
        var action = ActionResult(resultDigest: Self.hexA, resultBlob: Self.hexB,
                                  outputs: [OutputEntry(path: "out/a.txt", kind: .file, digest: Self.hexA)], components: [:])
        try store.putAction(Self.hexA, action)
        let text = try String(contentsOfFile: store.actionPath(Self.hexA), encoding: .utf8)
        #expect(!text.contains("contents"))
        action.resultContents = ""
        #expect(store.action(Self.hexA) == action.withoutContents)
    }

    @Test(arguments: [
        ("http://cache:8080", "http://cache:8080"), ("https://cache.example.com/base/", "https://cache.example.com/base"),
        ("http://127.0.0.1:9/a//", "http://127.0.0.1:9/a"),
    ])
    func acceptedURLs(url: String, base: String) throws {
        let store = try #require(RemoteCacheStore(url: url, mode: .read))
        #expect(store.base == base)
        #expect(store.isAvailable)
    }

    @Test(arguments: ["ftp://cache", "cache:8080", "nope", "", "http://", "/tmp/cache", "http://h/x?y=1"])
    func refusedURLs(url: String) {
        #expect(RemoteCacheStore(url: url, mode: .readWrite) == nil)
    }

    @Test func refusalMessages() {
        #expect(RemoteCacheStore.Refusal.unsafePath("../x").description == "it names the path `../x`, which leaves the plan's folder")
        #expect(RemoteCacheStore.Refusal.blobMismatch(digest: Self.hexA).description == "blob `\(Self.hexA)` does not match its digest")
        #expect(OnlyFailure(dependency: "gen", dependent: "use", detail: nil).description
            == "dependency `gen` of `use` is not in the cache; build it first or drop --only")
    }
}

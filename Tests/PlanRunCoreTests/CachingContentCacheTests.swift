import Foundation
import Testing
import PlanRunTestSupport
@testable import PlanRunCore

/// The content cache against real files in a temporary plan folder; the
/// "subtask" is simulated by the test writing its outputs, then `record`.
@Suite struct CachingContentCacheTests {
    final class Fixture {
        let dir = CachingTempDir()
        let history = InMemorySubtaskHistory()
        let digests = InMemoryDigestStore()
        var subtasks: [Subtask]

        init(_ subtasks: [Subtask]) { self.subtasks = subtasks }

        var plan: Plan { Plan(file: dir.url("plan.yaml"), directory: dir.path, name: "p", subtasks: subtasks) }
        var cacheRoot: String { dir.url(".planrun/cache") }

        func cache(readOnly: Bool = false, forced: Set<String> = [], env: [String: String] = [:]) -> ContentCache {
            ContentCache(
                plan: plan, callerEnvironment: env, store: LocalCacheStore(root: cacheRoot, readOnly: readOnly),
                history: history, digests: digests, readOnly: readOnly, force: Force(ids: forced), racyWindowNs: 0)
        }

        subscript(id: String) -> Subtask { subtasks.first { $0.id == id }! }

        /// decide; when it says run, "run" the subtask (write its outputs) and record.
        @discardableResult
        func build(_ id: String, deps: [String: String] = [:], cache c: ContentCache? = nil, outputs: [String: String] = [:], result: String = "ok") async throws -> (RunReason, String) {
            let c = c ?? cache()
            switch try await c.decide(self[id], dependencyDigests: deps) {
            case .upToDate(let outcome):
                // The build's recorder writes what a restore returns.
                if let entry = outcome.history { try history.save(entry, for: id) }
                return (outcome.reason, outcome.resultDigest)
            case .run(let reason, let key):
                for (path, text) in outputs { dir.write(path, text) }
                let recorded = try await c.record(self[id], key: key, result: Array(result.utf8))
                if let entry = recorded.history { try history.save(entry, for: id) }
                return (reason, recorded.resultDigest)
            }
        }
    }

    static func copyTask(_ id: String = "copy") -> Subtask {
        Subtask(id: id, run: "cp in.txt out.txt", inputs: ["in.txt"], outputs: ["out.txt"])
    }

    @Test func skipsWhenUnchangedAndRunsWhenInputChanges() async throws {
        let f = Fixture([Self.copyTask()])
        f.dir.write("in.txt", "v1")
        #expect(try await f.build("copy", outputs: ["out.txt": "v1"]).0 == .neverRan)
        #expect(try await f.build("copy").0 == .cached)
        f.dir.write("in.txt", "v2")
        #expect(try await f.build("copy", outputs: ["out.txt": "v2"]).0 == .inputChanged(path: "in.txt"))
        #expect(try await f.build("copy").0 == .cached)
    }

    @Test func missingOrEditedOutputIsRestoredFromTheStore() async throws {
        let f = Fixture([Self.copyTask()])
        f.dir.write("in.txt", "v1")
        let (_, digest) = try await f.build("copy", outputs: ["out.txt": "v1"], result: "the result")
        f.dir.remove("out.txt")
        let c = f.cache()
        guard case .upToDate(let outcome) = try await c.decide(f["copy"], dependencyDigests: [:]) else {
            Issue.record("expected a restore"); return
        }
        #expect(outcome.reason == .restored)
        #expect(outcome.result == Array("the result".utf8))
        #expect(outcome.resultDigest == digest)
        #expect(f.dir.read("out.txt") == "v1")
        f.dir.write("out.txt", "tampered by hand")
        #expect(try await f.build("copy").0 == .restored)
        #expect(f.dir.read("out.txt") == "v1")
        #expect(try await f.build("copy").0 == .cached)
    }

    @Test func revertingAnInputRestoresTheEarlierOutputs() async throws {
        let f = Fixture([Self.copyTask()])
        f.dir.write("in.txt", "v1")
        try await f.build("copy", outputs: ["out.txt": "v1"])
        f.dir.write("in.txt", "v2")
        try await f.build("copy", outputs: ["out.txt": "v2"])
        f.dir.write("in.txt", "v1")
        #expect(try await f.build("copy").0 == .restored)
        #expect(f.dir.read("out.txt") == "v1")
    }

    @Test func folderOutputsAreStoredAsManifests() async throws {
        let f = Fixture([Subtask(id: "site", run: "gen", outputs: ["site"])])
        try await f.build("site", outputs: ["site/index.html": "<h1>", "site/css/a.css": "body{}"])
        f.dir.remove("site")
        #expect(try await f.build("site").0 == .restored)
        #expect(f.dir.read("site/index.html") == "<h1>")
        #expect(f.dir.read("site/css/a.css") == "body{}")
        f.dir.write("site/extra.txt", "x")
        #expect(try await f.build("site").0 == .restored)
        #expect(!f.dir.exists("site/extra.txt"))
    }

    @Test func dependencyWithIdenticalResultDoesNotInvalidateDependents() async throws {
        let f = Fixture([
            Subtask(id: "gen", run: "gen", inputs: ["src.txt"], outputs: ["gen.txt"]),
            Subtask(id: "use", run: "use", outputs: ["use.txt"], dependsOn: ["gen"]),
        ])
        f.dir.write("src.txt", "a")
        let (_, d1) = try await f.build("gen", outputs: ["gen.txt": "same"])
        try await f.build("use", deps: ["gen": d1], outputs: ["use.txt": "u"])
        f.dir.write("src.txt", "a, with a comment")
        let (reason, d2) = try await f.build("gen", outputs: ["gen.txt": "same"])
        #expect(reason == .inputChanged(path: "src.txt"))
        #expect(d2 == d1)
        #expect(try await f.build("use", deps: ["gen": d2]).0 == .cached)
        f.dir.write("src.txt", "b")
        let (_, d3) = try await f.build("gen", outputs: ["gen.txt": "different"])
        #expect(try await f.build("use", deps: ["gen": d3], outputs: ["use.txt": "u2"]).0 == .dependencyChanged(id: "gen"))
    }

    @Test func disabledAndForcedSubtasksRun() async throws {
        let f = Fixture([Self.copyTask(), Subtask(id: "phony", run: "date", cache: false)])
        f.dir.write("in.txt", "v1")
        try await f.build("copy", outputs: ["out.txt": "v1"])
        #expect(try await f.build("copy", cache: f.cache(forced: ["copy"])).0 == .forced)
        let c = f.cache()
        guard case .run(.forced, let key?) = try await f.cache(forced: ["copy"]).decide(f["copy"], dependencyDigests: [:]) else {
            Issue.record("expected forced with a key"); return
        }
        #expect(key.digest.count == 64)
        guard case .run(.cacheDisabled, nil) = try await c.decide(f["phony"], dependencyDigests: [:]) else {
            Issue.record("expected cache disabled"); return
        }
        #expect(try await f.build("phony").0 == .cacheDisabled)
    }

    @Test func missingDeclaredOutputIsNotRecorded() async throws {
        let f = Fixture([Self.copyTask()])
        f.dir.write("in.txt", "v1")
        await #expect(throws: CacheError.outputMissing(subtask: "copy", path: "out.txt")) {
            try await f.build("copy")
        }
        #expect(try f.history.entry(for: "copy") == nil)
        #expect(try await f.build("copy", outputs: ["out.txt": "v1"]).0 == .neverRan)
    }

    @Test func missingInputIsAClearError() async throws {
        let f = Fixture([Self.copyTask()])
        await #expect(throws: CacheError.inputNotFound(subtask: "copy", pattern: "in.txt")) {
            try await f.build("copy")
        }
    }

    @Test func tamperedOrTruncatedBlobIsNeverRestored() async throws {
        let f = Fixture([Self.copyTask()])
        f.dir.write("in.txt", "v1")
        try await f.build("copy", outputs: ["out.txt": "original content"])
        let blob = LocalCacheStore(root: f.cacheRoot).blobPath(Digest.sha256Hex(Array("original content".utf8)))
        #expect(FileManager.default.fileExists(atPath: blob))
        try Data("original".utf8).write(to: URL(fileURLWithPath: blob))  // truncated
        f.dir.remove("out.txt")
        #expect(try await f.build("copy", outputs: ["out.txt": "rebuilt"]).0 == .outputsMissing)
        #expect(f.dir.read("out.txt") == "rebuilt")
        #expect(!FileManager.default.fileExists(atPath: blob) || Digest.sha256Hex(Array(FileManager.default.contents(atPath: blob)!)) != Digest.sha256Hex(Array("original".utf8)))
    }

    @Test func cacheEntryNamingPathsOutsideThePlanIsRefused() async throws {
        let f = Fixture([Subtask(id: "t", run: "x", outputs: ["../escape.txt"])])
        let c = f.cache()
        guard case .run(_, let key?) = try await c.decide(f["t"], dependencyDigests: [:]) else {
            Issue.record("expected a run"); return
        }
        // A hand-made (malicious) entry for this key naming `../escape.txt`.
        let store = LocalCacheStore(root: f.cacheRoot)
        let blob = try store.putBlob(Array("evil".utf8))
        let resultBlob = try store.putBlob([])
        let outputs = [OutputEntry(path: "../escape.txt", kind: .file, digest: blob)]
        try store.putAction(key.digest, ActionResult(
            resultDigest: ContentCache.resultDigest(result: [], outputs: outputs), resultBlob: resultBlob,
            outputs: outputs, components: [:]))
        guard case .run = try await f.cache().decide(f["t"], dependencyDigests: [:]) else {
            Issue.record("restored a path outside the plan"); return
        }
        #expect(!FileManager.default.fileExists(atPath: f.dir.path + "/../escape.txt"))
    }

    @Test func restoreThroughASymlinkedParentLeavingThePlanIsRefused() throws {
        let f = Fixture([])
        let outside = CachingTempDir()
        try FileManager.default.createSymbolicLink(atPath: f.dir.url("link"), withDestinationPath: outside.path)
        #expect(throws: CacheError.pathEscapes(path: "link/x.txt")) {
            try PathSafety.prepareDestination("link/x.txt", root: f.dir.path)
        }
        #expect(throws: CacheError.pathEscapes(path: "/etc/passwd")) {
            try PathSafety.prepareDestination("/etc/passwd", root: f.dir.path)
        }
        #expect(throws: CacheError.pathEscapes(path: "a/../../b")) {
            try PathSafety.prepareDestination("a/../../b", root: f.dir.path)
        }
        try FileManager.default.createDirectory(atPath: f.dir.url("inside"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: f.dir.url("ok"), withDestinationPath: f.dir.url("inside"))
        #expect(try PathSafety.prepareDestination("ok/x.txt", root: f.dir.path) == f.dir.url("inside/x.txt"))
    }

    @Test func folderWhereAFileWasDeclaredRunsInsteadOfRestoring() async throws {
        let f = Fixture([Self.copyTask()])
        f.dir.write("in.txt", "v1")
        try await f.build("copy", outputs: ["out.txt": "v1"])
        f.dir.remove("out.txt")
        f.dir.write("out.txt/user-file", "keep me")
        guard case .run(.outputsMissing, _) = try await f.cache().decide(f["copy"], dependencyDigests: [:]) else {
            Issue.record("expected a run"); return
        }
        #expect(f.dir.read("out.txt/user-file") == "keep me")
    }

    @Test func failingStoreWritesWarnAndStillRecordHistory() async throws {
        let f = Fixture([Self.copyTask()])
        f.dir.write("in.txt", "v1")
        f.dir.write(".planrun/cache", "not a folder: every store write fails")
        let c = f.cache()
        #expect(try await f.build("copy", cache: c, outputs: ["out.txt": "v1"]).0 == .neverRan)
        #expect(c.takeWarnings().first?.hasPrefix("cannot store `copy` in the cache: ") == true)
        #expect(try await f.build("copy").0 == .cached)
        f.dir.remove("out.txt")
        #expect(try await f.build("copy", outputs: ["out.txt": "v1"]).0 == .outputsMissing)
    }

    @Test func readOnlyCacheChangesNothing() async throws {
        let f = Fixture([Self.copyTask()])
        f.dir.write("in.txt", "v1")
        try await f.build("copy", outputs: ["out.txt": "v1"])
        f.dir.remove("out.txt")
        let before = try snapshotFolder(f.dir.path)
        let digestsBefore = try f.digests.loadAll()
        let ro = f.cache(readOnly: true)
        guard case .upToDate(let outcome) = try await ro.decide(f["copy"], dependencyDigests: [:]) else {
            Issue.record("expected would-restore"); return
        }
        #expect(outcome.reason == .restored)
        try ro.finish()
        #expect(try snapshotFolder(f.dir.path) == before)
        #expect(try f.digests.loadAll() == digestsBefore)
    }

    @Test func inputEditedWhileRunningIsNotRecorded() async throws {
        let f = Fixture([Self.copyTask()])
        f.dir.write("in.txt", "v1")
        let c = f.cache()
        guard case .run(_, let key) = try await c.decide(f["copy"], dependencyDigests: [:]) else {
            Issue.record("expected run"); return
        }
        f.dir.write("in.txt", "v2 edited during the run")
        f.dir.write("out.txt", "v1")
        #expect(try await c.record(f["copy"], key: key, result: []).history == nil)
        #expect(c.takeWarnings() == ["inputs of `copy` changed while it ran; it will run again next time"])
    }
}

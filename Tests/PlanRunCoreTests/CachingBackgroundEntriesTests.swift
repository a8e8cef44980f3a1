import Dispatch
import Foundation
import Synchronization
import Testing
@testable import PlanRunCore

/// `ac` entries written by the store's background writer
/// (`LocalCacheStore+Background.swift`): a reader in the same build never
/// sees a queued entry as missing, a failed write is reported, and a
/// history row whose entry was never written (a build killed with entries
/// still queued) makes the next build skip or run, never restore wrongly.
@Suite struct CachingBackgroundEntriesTests {
    static func entry(_ n: Int) -> (key: String, result: ActionResult) {
        let hex = String(n, radix: 16)
        let key = String(repeating: "0", count: 64 - hex.count) + hex
        let result = ActionResult(
            resultDigest: String(repeating: "1", count: 64), resultBlob: String(repeating: "2", count: 64),
            outputs: [OutputEntry(path: "out\(n).txt", kind: .file, digest: String(repeating: "3", count: 64), executable: false)],
            components: ["command": key])
        return (key, result)
    }

    @Test func aQueuedEntryReadsAsWrittenRightAway() throws {
        let dir = CachingTempDir()
        let store = LocalCacheStore(root: dir.url("cache"))
        let failures = Mutex<[String]>([])
        let count = 300
        for n in 0..<count {
            let (key, result) = Self.entry(n)
            store.writeInBackground {
                do { try store.putAction(key, result) } catch { failures.withLock { $0.append("\(error)") } }
            }
        }
        // The last one queued is read first: the lookup waits for the queue.
        for n in (0..<count).reversed() {
            let (key, result) = Self.entry(n)
            #expect(store.action(key) == result, "entry \(n)")
        }
        store.waitForBackgroundWrites()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url("cache/ac")).count == count)
        #expect(failures.withLock { $0 }.isEmpty)
    }

    /// A lookup waits only for a queued job that writes its own key: a
    /// subtask deciding while other entries are written is not held up.
    @Test func aLookupWaitsOnlyForItsOwnKey() throws {
        let dir = CachingTempDir()
        let store = LocalCacheStore(root: dir.url("cache"))
        let (held, heldResult) = Self.entry(1)
        let (other, otherResult) = Self.entry(2)
        try store.putAction(other, otherResult)
        let release = DispatchSemaphore(value: 0)
        store.writeInBackground(entry: held) {
            release.wait()
            try? store.putAction(held, heldResult)
        }
        // The writer is held: this lookup would never return if it waited.
        #expect(store.action(other) == otherResult)
        let done = DispatchSemaphore(value: 0)
        let found = Mutex<ActionResult?>(nil)
        Thread { found.withLock { $0 = store.action(held) }; done.signal() }.start()
        #expect(done.wait(timeout: .now() + 0.3) == .timedOut)  // waits for its own key
        release.signal()
        done.wait()
        #expect(found.withLock { $0 } == heldResult)
    }

    /// An output edited after `record` took its snapshot but before the
    /// writer copied it: no entry is written (it would name content the
    /// history does not), and the history keeps the snapshot's digest.
    @Test func anOutputChangedBeforeTheWriterCopiesItIsNotStored() async throws {
        let f = CachingContentCacheTests.Fixture([CachingContentCacheTests.copyTask()])
        f.dir.write("in.txt", "v1")
        let c = f.cache()
        guard case .run(_, let key) = try await c.decide(f["copy"], dependencyDigests: [:]) else {
            Issue.record("expected a run"); return
        }
        f.dir.write("out.txt", "v1")
        // Hold the writer until the output has been edited.
        let held = DispatchSemaphore(value: 0)
        c.store.writeInBackground { held.wait() }
        let recorded = try c.recordNow(f["copy"], key: key, result: [])
        f.dir.write("out.txt", "edited while queued")
        held.signal()
        try c.finish()
        #expect(recorded.history?.outputs.first?.digest == Digest.sha256Hex(Array("v1".utf8)))
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: f.cacheRoot + "/ac")) ?? []
        #expect(entries.isEmpty)
        if let entry = recorded.history { try f.history.save(entry, for: "copy") }
        // The edited output is not the recorded one, and there is nothing to restore.
        #expect(try await f.build("copy", outputs: ["out.txt": "v1"]).0 == .outputsMissing)
    }

    #if os(Linux)
    /// The writer runs below the priority of the thread that queued the
    /// job (the loop's, which spawns the next subtasks): Dispatch gives a
    /// `.background` queue's threads nice 10 (or leaves a higher one it
    /// cannot lower), and the caller's own is left as it was.
    @Test func theWriterRunsBelowTheCallersPriority() throws {
        let dir = CachingTempDir()
        let store = LocalCacheStore(root: dir.url("cache"))
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        let caller = getpriority(which, 0)
        let seen = Mutex<Int32?>(nil)
        store.writeInBackground { seen.withLock { $0 = getpriority(which, 0) } }
        store.waitForBackgroundWrites()
        let writer = try #require(seen.withLock { $0 })
        #expect(writer >= 10)
        #expect(getpriority(which, 0) == caller)
    }
    #endif

    @Test func aFailedBackgroundWriteIsReportedOnce() throws {
        let dir = CachingTempDir()
        dir.write("cache/ac", "a file where the folder should be")
        let store = LocalCacheStore(root: dir.url("cache"))
        let failures = Mutex<[String]>([])
        let (key, result) = Self.entry(7)
        store.writeInBackground {
            do { try store.putAction(key, result) } catch { failures.withLock { $0.append("\(error)") } }
        }
        store.waitForBackgroundWrites()
        let reported = failures.withLock { $0 }
        #expect(reported.count == 1)
        #expect(reported.first?.contains("cache/ac") == true)
        #expect(store.action(key) == nil)
    }

    /// `ContentCache.finish` returns only once the build's entries are on
    /// disk, and the warning of one that failed is among the build's.
    @Test func finishWaitsForTheEntriesAndKeepsTheirWarnings() async throws {
        let f = CachingContentCacheTests.Fixture([CachingContentCacheTests.copyTask()])
        f.dir.write("in.txt", "v1")
        let c = f.cache()
        try await f.build("copy", cache: c, outputs: ["out.txt": "v1"])
        try c.finish()
        let entries = try FileManager.default.contentsOfDirectory(atPath: f.cacheRoot + "/ac")
        #expect(entries.count == 1)
        #expect(c.takeWarnings().isEmpty)

        let g = CachingContentCacheTests.Fixture([CachingContentCacheTests.copyTask()])
        g.dir.write("in.txt", "v1")
        g.dir.write(".planrun/cache/ac", "not a folder")
        let d = g.cache()
        #expect(try await g.build("copy", cache: d, outputs: ["out.txt": "v1"]).0 == .neverRan)
        try d.finish()
        let warnings = d.takeWarnings()
        #expect(warnings.count == 1)
        #expect(warnings.first?.hasPrefix("cannot store `copy` in the cache:") == true)
    }

    /// A kill after the history row was saved but before the writer wrote
    /// `ac/KEY`: outputs as recorded are skipped (the row says so), edited
    /// outputs make the subtask run (nothing to restore from), and the run
    /// records the entry again.
    @Test func aHistoryRowWithoutItsEntrySkipsOrRunsNeverRestores() async throws {
        let f = CachingContentCacheTests.Fixture([CachingContentCacheTests.copyTask()])
        f.dir.write("in.txt", "v1")
        let first = f.cache()
        try await f.build("copy", cache: first, outputs: ["out.txt": "v1"])
        try first.finish()
        f.dir.remove(".planrun/cache/ac")

        #expect(try await f.build("copy").0 == .cached)
        f.dir.write("out.txt", "edited by hand")
        let again = f.cache()
        #expect(try await f.build("copy", cache: again, outputs: ["out.txt": "v1"]).0 == .outputsMissing)
        try again.finish()
        #expect(f.dir.read("out.txt") == "v1")
        f.dir.remove("out.txt")
        #expect(try await f.build("copy").0 == .restored)
        #expect(f.dir.read("out.txt") == "v1")
    }
}

import Foundation
import Testing
@testable import PlanRunCore

/// The trust rules (see docs/DESIGN.md, Trust rules) at the level of the
/// cache store, the glob and the state folder check: nothing followed in
/// the state folder, bounded local cache reads, globs that terminate, no
/// litter.
@Suite struct CachingTrustBoundaryTests {
    /// Issue 10 item 9: folders d0..dK, each with `f.txt` and two links `x`,
    /// `y` to the next one. Following links would make `d0/**` visit 2^K
    /// paths; `**` and a folder named literally do not enter linked
    /// folders, so this is K+1 folders' worth of work at most.
    @Test func issue10GlobOverASymlinkDiamondEndsFast() throws {
        let dir = CachingTempDir()
        let k = 18
        for i in 0...k {
            dir.write("d\(i)/f.txt", "f\(i)")
            if i < k {
                try FileManager.default.createSymbolicLink(atPath: dir.url("d\(i)/x"), withDestinationPath: "../d\(i + 1)")
                try FileManager.default.createSymbolicLink(atPath: dir.url("d\(i)/y"), withDestinationPath: "../d\(i + 1)")
            }
        }
        let started = ContinuousClock.now
        #expect(try InputGlob.expand("d0/**", root: dir.path) == ["d0/f.txt"])
        #expect(try InputGlob.expand("d0", root: dir.path) == ["d0/f.txt"])
        #expect(try InputGlob.expand("**/f.txt", root: dir.path) == (0...k).map { "d\($0)/f.txt" }.sorted())
        #expect(ContinuousClock.now - started < .seconds(2))
    }

    /// A link to a file matches as a file, and what is hashed is its
    /// target's content; a link to a folder written out in the pattern is
    /// still followed.
    @Test func aLinkToAFileMatchesAsAFileAndHashesItsTarget() throws {
        let dir = CachingTempDir()
        dir.write("real/target.txt", "content")
        dir.write("src/a.c", "a")
        try FileManager.default.createSymbolicLink(atPath: dir.url("src/link.c"), withDestinationPath: "../real/target.txt")
        try FileManager.default.createSymbolicLink(atPath: dir.url("src/linked"), withDestinationPath: "../real")
        #expect(try InputGlob.expand("src/**", root: dir.path) == ["src/a.c", "src/link.c"])
        #expect(try InputGlob.expand("src", root: dir.path) == ["src/a.c", "src/link.c"])
        #expect(try InputGlob.expand("src/*.c", root: dir.path) == ["src/a.c", "src/link.c"])
        #expect(try InputGlob.expand("src/linked/*.txt", root: dir.path) == ["src/linked/target.txt"])
        let digester = FileDigester(store: InMemoryDigestStore())
        #expect(try digester.digest(ofFile: dir.url("src/link.c")) == Digest.sha256Hex(Array("content".utf8)))
    }

    /// The state folder is never an input, not even through a wildcard
    /// that matches dot names.
    @Test func wildcardsNeverMatchTheStateFolder() throws {
        let dir = CachingTempDir()
        dir.write(".planrun/state.db", "s")
        dir.write(".config/a.txt", "a")
        #expect(try InputGlob.expand(".*/*", root: dir.path) == [".config/a.txt"])
    }

    /// Issue 10 item 10: a restore's temporary file never matches a glob.
    @Test func issue10GlobsSkipRestoreTemporaries() throws {
        let dir = CachingTempDir()
        dir.write("out/a.txt", "a")
        dir.write("out/a.txt.planrun-tmp-4242-17", "half written")
        #expect(try InputGlob.expand("out/*", root: dir.path) == ["out/a.txt"])
        #expect(try InputGlob.expand("out/**", root: dir.path) == ["out/a.txt"])
        #expect(try InputGlob.expand("out", root: dir.path) == ["out/a.txt"])
        #expect(LocalCacheStore.isTemporaryName("a.txt.planrun-tmp-4242-17"))
        #expect(!LocalCacheStore.isTemporaryName("a.txt.planrun-tmp-x-17"))
        #expect(!LocalCacheStore.isTemporaryName(".planrun-tmp-1-2"))
    }

    /// Issue 10 item 10: what a kill during a restore leaves (the journal
    /// line, then the temporary file beside the output) is removed when the
    /// store is opened next; a temporary-looking name outside the journaled
    /// folder, and other files, are left alone.
    @Test func issue10LeftoverRestoreTemporariesAreRemovedOnOpen() throws {
        let dir = CachingTempDir()
        let store = LocalCacheStore(root: dir.url(".planrun/cache"))
        dir.write("out/big.bin", "old")
        try store.noteTemporaries(besides: dir.url("out/big.bin"))
        dir.write("out/big.bin.planrun-tmp-99999-12345", "half")
        dir.write("other/x.planrun-tmp-99999-1", "not journaled")
        LocalCacheStore(root: dir.url(".planrun/cache")).removeLeftovers(planDirectory: dir.path)
        #expect(!dir.exists("out/big.bin.planrun-tmp-99999-12345"))
        #expect(dir.read("out/big.bin") == "old")
        #expect(dir.exists("other/x.planrun-tmp-99999-1"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url(".planrun/cache/tmp")).isEmpty)
    }

    /// A journal naming a folder outside the plan's folder removes nothing there.
    @Test func aJournalNamingAFolderOutsideThePlanIsIgnored() throws {
        let dir = CachingTempDir()
        let outside = CachingTempDir()
        outside.write("victim.planrun-tmp-1-2", "keep")
        dir.write(".planrun/cache/tmp/restores-1", outside.path + "\0")
        LocalCacheStore(root: dir.url(".planrun/cache")).removeLeftovers(planDirectory: dir.url("plan"))
        #expect(outside.exists("victim.planrun-tmp-1-2"))
    }

    /// Issue 10 item 2: a link in place of `cache/tmp` is refused; the
    /// files it points to are not deleted ("removing leftovers").
    @Test func issue10LeftoversAreNeverRemovedThroughALink() throws {
        let dir = CachingTempDir()
        dir.write("victim/keep.txt", "keep")
        try FileManager.default.createDirectory(atPath: dir.url(".planrun/cache"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir.url(".planrun/cache/tmp"), withDestinationPath: "../../victim")
        #expect(throws: StateFolder.Refusal(path: dir.url(".planrun/cache/tmp"), problem: .symlink)) {
            try StateFolder.check(dir.url(".planrun"))
        }
        LocalCacheStore(root: dir.url(".planrun/cache")).removeLeftovers(planDirectory: dir.path)
        #expect(dir.read("victim/keep.txt") == "keep")
    }

    struct EntryCase: Sendable, CustomTestStringConvertible {
        var entry: String
        var folder: Bool
        var problem: StateFolder.Refusal.Problem
        var testDescription: String { "\(entry) \(problem)" }
    }

    /// Each entry planrun owns, as a link, or as the wrong kind.
    @Test(arguments: [
        EntryCase(entry: "cache", folder: true, problem: .symlink),
        EntryCase(entry: "cache/ac", folder: true, problem: .symlink),
        EntryCase(entry: "cache/cas", folder: true, problem: .symlink),
        EntryCase(entry: "logs", folder: true, problem: .symlink),
        EntryCase(entry: "logs/20260101-000000-abcdef", folder: true, problem: .symlink),
        EntryCase(entry: "tmp/20260101-000000-abcdef", folder: true, problem: .symlink),
        EntryCase(entry: "state.db", folder: false, problem: .symlink),
        EntryCase(entry: "state.db-wal", folder: false, problem: .symlink),
        EntryCase(entry: "build.lock", folder: false, problem: .symlink),
        EntryCase(entry: "uptodate", folder: false, problem: .symlink),
        EntryCase(entry: "processes", folder: false, problem: .symlink),
        EntryCase(entry: "cache/tmp", folder: false, problem: .notFolder),
        EntryCase(entry: "state.db", folder: true, problem: .notFile),
    ])
    func stateFolderEntriesAreChecked(_ c: EntryCase) throws {
        let dir = CachingTempDir()
        let state = dir.url("state")
        let entry = state + "/" + c.entry
        try FileManager.default.createDirectory(
            atPath: (entry as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        switch c.problem {
        case .symlink:
            dir.write("elsewhere/file", "x")
            try FileManager.default.createSymbolicLink(
                atPath: entry, withDestinationPath: dir.url(c.folder ? "elsewhere" : "elsewhere/file"))
        case .notFolder:
            dir.write("state/" + c.entry, "x")
        case .notFile:
            try FileManager.default.createDirectory(atPath: entry, withIntermediateDirectories: true)
        }
        #expect(throws: StateFolder.Refusal(path: entry, problem: c.problem)) { try StateFolder.check(state) }
        #expect(throws: BuildLock.Failure.self) { _ = try BuildLock.acquire(directory: state) }
        #expect(dir.read("elsewhere/file") == (c.problem == .symlink ? "x" : nil))
    }

    /// The state folder itself may be a link to a folder (a user's choice).
    @Test func theStateFolderItselfMayBeALink() throws {
        let dir = CachingTempDir()
        try FileManager.default.createDirectory(atPath: dir.url("fast-disk"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir.url(".planrun"), withDestinationPath: dir.url("fast-disk"))
        let lock = try BuildLock.acquire(directory: dir.url(".planrun"))
        _ = try StateStore(directory: dir.url(".planrun"))
        #expect(dir.exists("fast-disk/build.lock") && dir.exists("fast-disk/state.db"))
        withExtendedLifetime(lock) {}
    }

    /// Issue 10 item 8: `ac/KEY` as a FIFO, a link to /dev/zero, or larger
    /// than 1 MiB is refused (a miss with a reason), never read; blobs that
    /// are links are not read either.
    @Test func issue10LocalCacheReadsOnlyRegularFilesOfBoundedSize() throws {
        let dir = CachingTempDir()
        let store = LocalCacheStore(root: dir.url("cache"))
        let key = String(repeating: "ab", count: 32)
        try FileManager.default.createDirectory(atPath: dir.url("cache/ac"), withIntermediateDirectories: true)

        #expect(mkfifo(store.actionPath(key), 0o644) == 0)
        guard case .refused(let fifo) = store.lookupAction(key) else { Issue.record("FIFO read"); return }
        #expect(fifo.hasSuffix("refused: it is not a regular file"))
        unlink(store.actionPath(key))

        try FileManager.default.createSymbolicLink(atPath: store.actionPath(key), withDestinationPath: "/dev/zero")
        guard case .refused(let link) = store.lookupAction(key) else { Issue.record("link read"); return }
        #expect(link.hasSuffix("refused: it is a symbolic link"))
        unlink(store.actionPath(key))

        dir.write("cache/ac/" + key, String(repeating: " ", count: LocalCacheStore.actionSizeLimit + 1))
        guard case .refused(let big) = store.lookupAction(key) else { Issue.record("large entry read"); return }
        #expect(big.hasSuffix("refused: it is larger than 1048576 bytes"))

        dir.write("secret.txt", "secret")
        let digest = Digest.sha256Hex(Array("secret".utf8))
        try FileManager.default.createDirectory(atPath: dir.url("cache/cas"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: store.blobPath(digest), withDestinationPath: dir.url("secret.txt"))
        #expect(store.blob(digest) == nil)
        #expect(!store.hasBlob(digest))
    }
}

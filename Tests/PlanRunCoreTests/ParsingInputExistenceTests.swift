import Foundation
@testable import PlanRunCore
import Testing

/// `validate`'s check of plain inputs reads a folder it is asked about
/// often with `readdir` instead of a `stat` per name. Its answer must be
/// `stat`'s for every kind of entry: links (to files, dangling), folders,
/// names that differ from a file's only in Unicode normalization, names
/// read before and after the listing starts.
@Suite struct ParsingInputExistenceTests {
    /// Creates `path` under `root` from its exact bytes (no normalization).
    static func create(_ path: String, in root: String) {
        let fd = open(root + "/" + path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(fd >= 0, "cannot create \(path)")
        close(fd)
    }

    @Test func listedFolderAnswersAsStatDoes() throws {
        let dir = CachingTempDir()
        try FileManager.default.createDirectory(atPath: dir.url("src/sub"), withIntermediateDirectories: true)
        let files = (0..<300).map { String(format: "src/f%03d.c", $0) }
        for file in files { Self.create(file, in: dir.path) }
        Self.create("src/caf\u{e9}.c", in: dir.path)          // NFC on disk
        Self.create("top.h", in: dir.path)
        symlink("f001.c", dir.url("src/link.c"))
        symlink("nowhere.c", dir.url("src/dangling.c"))
        symlink("sub", dir.url("src/linkdir"))

        // Names before the listing starts, names the listing has not reached
        // yet, and (since the listing of 300 entries ends after ~20 lookups)
        // names looked up once it is complete.
        let inputs = Array(files.prefix(5)) + [
            "src/nosuch0.c", "src/link.c", "src/dangling.c", "src/sub", "src/linkdir", "src/caf\u{e9}.c",
            "src/cafe\u{301}.c",                               // NFD: no such file
            "top.h", "src/nosuch1.c",
        ] + Array(files.dropFirst(5)) + [
            "src/nosuch2.c", "src/link.c", "src/dangling.c", "src/sub", "src/linkdir", "src/cafe\u{301}.c",
            "src/caf\u{e9}.c", "src/f299.c", "src/sub/none.c", "nofolder/x.c", "top.h", "src/top.h",
        ]
        let list = inputs.map { "\"\($0)\"" }.joined(separator: ", ")
        let plan = try PlanLoader.load(
            bytes: Array("version: 1\nsubtasks:\n  - id: t\n    run: 'true'\n    inputs: [\(list)]\n".utf8),
            file: "plan.yaml", directory: dir.path)

        let reported = MissingInput.diagnostics(for: plan).map { diagnostic -> String in
            let text = diagnostic.description
            let start = text.range(of: "input `")!.upperBound
            return String(text[start...].prefix { $0 != "`" })
        }
        var st = stat()
        let expected = inputs.filter { stat(dir.url($0), &st) != 0 }
        #expect(expected.map { Array($0.utf8) } == reported.map { Array($0.utf8) })
        // The oracle itself: what this test is about is in it.
        #expect(expected.count == 10)
        #expect(expected.contains { Array($0.utf8) == Array("src/cafe\u{301}.c".utf8) })
        #expect(expected.contains("src/dangling.c") && !expected.contains("src/link.c"))
    }

    @Test func aFolderLookedUpOftenIsListedNotStatted() throws {
        // The shape of a generated plan: each file of a big folder, with a
        // shared header of the same folder between them (so that the header,
        // found early, is what the lookups that would start the listing ask).
        let dir = CachingTempDir()
        try FileManager.default.createDirectory(atPath: dir.url("src"), withIntermediateDirectories: true)
        let files = (0..<1000).map { String(format: "src/m%04d.c", $0) }
        for file in files + ["src/common.h"] { Self.create(file, in: dir.path) }
        var probe = ExistenceProbe(root: dir.path)
        defer { probe.finish() }
        var found = 0
        for file in files {
            if probe.exists(file) { found += 1 }
            if probe.exists("src/common.h") { found += 1 }
        }
        let none = probe.exists("src/none.c")
        #expect(found == 2000 && !none)
        // 2,001 lookups; without the listing each distinct name costs a stat.
        #expect(probe.stats < 200, "stat calls: \(probe.stats)")
    }

    @Test func anUnreadableFolderIsStatted() throws {
        // A folder that may be searched but not read: `stat` of its files
        // works, `readdir` does not. Root ignores modes, so the check that
        // the listing failed is skipped there; the answers must hold anyway.
        let dir = CachingTempDir()
        let files = (0..<40).map { String(format: "locked/f%03d.c", $0) }
        try FileManager.default.createDirectory(atPath: dir.url("locked"), withIntermediateDirectories: true)
        for file in files { Self.create(file, in: dir.path) }
        chmod(dir.url("locked"), 0o311)
        defer { chmod(dir.url("locked"), 0o755) }
        let inputs = files + ["locked/missing.c"]
        let list = inputs.map { "\"\($0)\"" }.joined(separator: ", ")
        let plan = try PlanLoader.load(
            bytes: Array("version: 1\nsubtasks:\n  - id: t\n    run: 'true'\n    inputs: [\(list)]\n".utf8),
            file: "plan.yaml", directory: dir.path)
        let reported = MissingInput.diagnostics(for: plan).map(\.description)
        #expect(reported.count == 1)
        #expect(reported.first?.contains("input `locked/missing.c`") == true)
    }
}

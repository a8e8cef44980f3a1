import Foundation
import Testing
@testable import PlanRunCore

@Suite struct CachingGlobTests {
    struct MatchCase: Sendable, CustomTestStringConvertible {
        var pattern: String
        var name: String
        var matches: Bool
        var testDescription: String { "\(pattern) ~ \(name)" }
    }

    static let matchCases: [MatchCase] = [
        .init(pattern: "*.c", name: "a.c", matches: true),
        .init(pattern: "*.c", name: "a.h", matches: false),
        .init(pattern: "a?c", name: "abc", matches: true),
        .init(pattern: "a?c", name: "ac", matches: false),
        .init(pattern: "[ab]x", name: "bx", matches: true),
        .init(pattern: "[!ab]x", name: "bx", matches: false),
        .init(pattern: "[^ab]x", name: "cx", matches: true),
        .init(pattern: "[a-c]*", name: "cat", matches: true),
        .init(pattern: "[a-c]*", name: "dog", matches: false),
        .init(pattern: "[]]", name: "]", matches: true),
        .init(pattern: "\\*", name: "*", matches: true),
        .init(pattern: "\\*", name: "a", matches: false),
        .init(pattern: "*a*b*", name: "xaybz", matches: true),
        .init(pattern: "*a*b", name: "xaybz", matches: false),
        .init(pattern: "*", name: "", matches: true),
    ]

    @Test(arguments: matchCases)
    func segmentMatching(_ c: MatchCase) {
        #expect(InputGlob.matches(c.pattern, c.name) == c.matches)
    }

    static func tree() -> CachingTempDir {
        let dir = CachingTempDir()
        for f in ["src/a.c", "src/b.c", "src/b.h", "src/sub/c.c", "src/sub/deep/d.c", "src/.hidden.c", "docs/x.md", "-dash.txt"] {
            dir.write(f, f)
        }
        return dir
    }

    @Test func expandsWildcardsSortedAndRelative() throws {
        let dir = Self.tree()
        #expect(try InputGlob.expand("src/*.c", root: dir.path) == ["src/a.c", "src/b.c"])
        #expect(try InputGlob.expand("src/?.h", root: dir.path) == ["src/b.h"])
        #expect(try InputGlob.expand("./src//[a-b].c", root: dir.path) == ["src/a.c", "src/b.c"])
    }

    @Test func globstarCrossesFoldersButNotDotFiles() throws {
        let dir = Self.tree()
        #expect(try InputGlob.expand("src/**/*.c", root: dir.path) == ["src/a.c", "src/b.c", "src/sub/c.c", "src/sub/deep/d.c"])
        #expect(try InputGlob.expand("**/d.c", root: dir.path) == ["src/sub/deep/d.c"])
        #expect(try InputGlob.expand("src/**", root: dir.path) == ["src/a.c", "src/b.c", "src/b.h", "src/sub/c.c", "src/sub/deep/d.c"])
        #expect(try InputGlob.expand("src/.*.c", root: dir.path) == ["src/.hidden.c"])
    }

    @Test func literalFolderStandsForEveryFileBelow() throws {
        let dir = Self.tree()
        #expect(try InputGlob.expand("src/sub", root: dir.path) == ["src/sub/c.c", "src/sub/deep/d.c"])
        #expect(try InputGlob.expand("./-dash.txt", root: dir.path) == ["-dash.txt"])
    }

    @Test func symlinkLoopsEnd() throws {
        let dir = Self.tree()
        try FileManager.default.createSymbolicLink(atPath: dir.url("src/sub/loop"), withDestinationPath: dir.url("src"))
        let files = try InputGlob.expand("src/**/d.c", root: dir.path)
        #expect(files.first == "src/sub/deep/d.c")
        #expect(files.count < 50)
        let all = try InputGlob.expand("src", root: dir.path)
        #expect(all.count < 200)
    }

    @Test func missingPatternIsAnErrorUnlessOptional() throws {
        let dir = Self.tree()
        let required = Subtask(id: "t", run: "x", inputs: ["src/*.zig"])
        #expect(throws: CacheError.inputNotFound(subtask: "t", pattern: "src/*.zig")) {
            try InputGlob.inputFiles(of: required, root: dir.path)
        }
        #expect(CacheError.inputNotFound(subtask: "t", pattern: "src/*.zig").description
            == "input `src/*.zig` of subtask `t` matches no file; mark it optional with a leading `-` (`-src/*.zig`) if it may be absent")
        let optional = Subtask(id: "t", run: "x", inputs: ["-src/*.zig", "src/a.c", "src/*.c"])
        #expect(try InputGlob.inputFiles(of: optional, root: dir.path) == ["src/a.c", "src/b.c"])
    }

    /// The one-stat fast path must agree with `expand` on what is plain.
    @Test(arguments: [
        ("a.txt", true), ("in/1.txt", true), ("a/b/c", true), (".hidden/x", true), ("a/..b", true), ("..", true),
        ("-a.txt", false), ("/abs/a", false), ("a//b", false), ("./a", false), ("a/./b", false), ("a/", false),
        (".", false), ("a/.", false), ("", false), ("*.c", false), ("a?", false), ("[ab]", false), ("a\\*", false),
    ])
    func plainPathsAreExactlyThoseExpandReturnsUnchanged(_ entry: String, _ plain: Bool) throws {
        #expect(InputGlob.isPlainPath(entry) == plain)
        if plain, entry != "..", entry != "a/..b" {
            let dir = CachingTempDir()
            dir.write(entry, "x")
            #expect(try InputGlob.expand(entry, root: dir.path) == [entry])
            #expect(try InputGlob.inputFiles(of: Subtask(id: "t", inputs: [entry]), root: dir.path) == [entry])
        }
    }

    @Test func singlePlainInputThatIsMissingOrAFolder() throws {
        let dir = Self.tree()
        #expect(throws: CacheError.inputNotFound(subtask: "t", pattern: "nope.c")) {
            try InputGlob.inputFiles(of: Subtask(id: "t", inputs: ["nope.c"]), root: dir.path)
        }
        #expect(try InputGlob.inputFiles(of: Subtask(id: "t", inputs: ["src"]), root: dir.path)
            == InputGlob.expand("src", root: dir.path))
    }

    @Test func unterminatedBracketIsReported() {
        let dir = Self.tree()
        #expect(throws: CacheError.self) { try InputGlob.expand("src/[ab.c", root: dir.path) }
    }
}

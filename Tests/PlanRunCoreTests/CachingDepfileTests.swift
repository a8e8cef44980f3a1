import Foundation
import Testing
@testable import PlanRunCore

/// A depfile and the prerequisites it lists (inline text, or a file under
/// Tests/Fixtures/depfiles captured from the real compilers).
struct DepfileCase: Sendable, CustomTestStringConvertible {
    var name: String
    var text: String
    var expected: [String]
    var testDescription: String { name }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/depfiles")

    static func fixture(_ file: String, expected: [String]) -> DepfileCase {
        let text = try! String(contentsOf: fixtures.appendingPathComponent(file), encoding: .utf8)
        return DepfileCase(name: file, text: text, expected: expected)
    }
}

/// The system headers `#include <stdio.h>` pulls in on this machine's gcc (12, x86_64 Debian).
private let gccStdio = [
    "/usr/include/stdc-predef.h", "/usr/include/stdio.h",
    "/usr/include/x86_64-linux-gnu/bits/libc-header-start.h", "/usr/include/features.h",
    "/usr/include/features-time64.h", "/usr/include/x86_64-linux-gnu/bits/wordsize.h",
    "/usr/include/x86_64-linux-gnu/bits/timesize.h", "/usr/include/x86_64-linux-gnu/sys/cdefs.h",
    "/usr/include/x86_64-linux-gnu/bits/long-double.h", "/usr/include/x86_64-linux-gnu/gnu/stubs.h",
    "/usr/include/x86_64-linux-gnu/gnu/stubs-64.h", "/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h",
    "/usr/lib/gcc/x86_64-linux-gnu/12/include/stdarg.h", "/usr/include/x86_64-linux-gnu/bits/types.h",
    "/usr/include/x86_64-linux-gnu/bits/typesizes.h", "/usr/include/x86_64-linux-gnu/bits/time64.h",
    "/usr/include/x86_64-linux-gnu/bits/types/__fpos_t.h", "/usr/include/x86_64-linux-gnu/bits/types/__mbstate_t.h",
    "/usr/include/x86_64-linux-gnu/bits/types/__fpos64_t.h", "/usr/include/x86_64-linux-gnu/bits/types/__FILE.h",
    "/usr/include/x86_64-linux-gnu/bits/types/FILE.h", "/usr/include/x86_64-linux-gnu/bits/types/struct_FILE.h",
    "/usr/include/x86_64-linux-gnu/bits/stdio_lim.h", "/usr/include/x86_64-linux-gnu/bits/floatn.h",
    "/usr/include/x86_64-linux-gnu/bits/floatn-common.h",
]

private let clangStdio = [
    "/usr/include/stdio.h", "/usr/include/x86_64-linux-gnu/bits/libc-header-start.h", "/usr/include/features.h",
    "/usr/include/features-time64.h", "/usr/include/x86_64-linux-gnu/bits/wordsize.h",
    "/usr/include/x86_64-linux-gnu/bits/timesize.h", "/usr/include/stdc-predef.h",
    "/usr/include/x86_64-linux-gnu/sys/cdefs.h", "/usr/include/x86_64-linux-gnu/bits/long-double.h",
    "/usr/include/x86_64-linux-gnu/gnu/stubs.h", "/usr/include/x86_64-linux-gnu/gnu/stubs-64.h",
    "/opt/swift/usr/lib/clang/21/include/stddef.h", "/opt/swift/usr/lib/clang/21/include/__stddef_size_t.h",
    "/opt/swift/usr/lib/clang/21/include/__stddef_null.h", "/opt/swift/usr/lib/clang/21/include/stdarg.h",
    "/opt/swift/usr/lib/clang/21/include/__stdarg___gnuc_va_list.h", "/usr/include/x86_64-linux-gnu/bits/types.h",
    "/usr/include/x86_64-linux-gnu/bits/typesizes.h", "/usr/include/x86_64-linux-gnu/bits/time64.h",
    "/usr/include/x86_64-linux-gnu/bits/types/__fpos_t.h", "/usr/include/x86_64-linux-gnu/bits/types/__mbstate_t.h",
    "/usr/include/x86_64-linux-gnu/bits/types/__fpos64_t.h", "/usr/include/x86_64-linux-gnu/bits/types/__FILE.h",
    "/usr/include/x86_64-linux-gnu/bits/types/FILE.h", "/usr/include/x86_64-linux-gnu/bits/types/struct_FILE.h",
    "/usr/include/x86_64-linux-gnu/bits/stdio_lim.h", "/usr/include/x86_64-linux-gnu/bits/floatn.h",
    "/usr/include/x86_64-linux-gnu/bits/floatn-common.h",
]

private let manyHeaders = (0..<5000).map { "include/h\($0).h" }

let depfileCases: [DepfileCase] = [
    // Real output of `gcc -MD -MP` and `clang -MD` for a file including
    // <stdio.h>, src/util.h and "dir with space/sp ace.h".
    .fixture("gcc-MD-MP.d", expected: ["z.c"] + gccStdio + ["src/util.h", "dir with space/sp ace.h"]),
    .fixture("clang-MD.d", expected: ["z.c"] + clangStdio + ["src/util.h", "dir with space/sp ace.h"]),
    // Real `gcc -MD -MP` output for a header named `we#ird$name.h`.
    .fixture("gcc-escapes.d", expected: ["w.c", "/usr/include/stdc-predef.h", "we#ird$name.h"]),
    DepfileCase(name: "one rule", text: "a.o: a.c a.h\n", expected: ["a.c", "a.h"]),
    DepfileCase(name: "no newline at the end", text: "a.o: a.c", expected: ["a.c"]),
    DepfileCase(name: "empty", text: "", expected: []),
    DepfileCase(name: "blank lines and a comment", text: "\n# made by hand\n\na.o: a.c # trailing\n\n", expected: ["a.c"]),
    DepfileCase(name: "continuations", text: "a.o: a.c \\\n  b.h \\\n  c.h\n", expected: ["a.c", "b.h", "c.h"]),
    DepfileCase(name: "CRLF continuations", text: "a.o: a.c \\\r\n  b.h\r\nb.h:\r\n", expected: ["a.c", "b.h"]),
    DepfileCase(name: "continuation right after the colon", text: "a.o:\\\n a.c\n", expected: ["a.c"]),
    DepfileCase(name: "escaped spaces", text: "a.o: my\\ file.c dir\\ x/y\\ z.h\n", expected: ["my file.c", "dir x/y z.h"]),
    DepfileCase(name: "escaped hash and dollars", text: "a.o: a\\#b.h c$$d.h\n", expected: ["a#b.h", "c$d.h"]),
    DepfileCase(name: "a backslash before a blank", text: "a.o: x\\\\ y.h\n", expected: ["x\\", "y.h"]),
    DepfileCase(name: "other backslashes and dollars stand for themselves", text: "a.o: c:\\src\\a.h $x.h\n",
                expected: ["c:\\src\\a.h", "$x.h"]),
    DepfileCase(name: "a colon inside a name", text: "a.o: c:/src/a.h\n", expected: ["c:/src/a.h"]),
    DepfileCase(name: "colon as its own word", text: "a.o : a.c\n", expected: ["a.c"]),
    DepfileCase(name: "multiple targets", text: "a.o a.d: a.c a.h\n", expected: ["a.c", "a.h"]),
    DepfileCase(name: "several rules, union in order, each once",
                text: "a.o: a.c x.h\nb.o: b.c x.h y.h\n", expected: ["a.c", "x.h", "b.c", "y.h"]),
    DepfileCase(name: "the empty rules of -MP", text: "a.o: a.c x.h\nx.h:\n\ny.h:\n", expected: ["a.c", "x.h"]),
    DepfileCase(name: "tabs", text: "a.o:\ta.c\tb.h\n", expected: ["a.c", "b.h"]),
    DepfileCase(name: "a path with UTF-8", text: "a.o: é/ü.h\n", expected: ["é/ü.h"]),
    DepfileCase(name: "thousands of prerequisites",
                text: "a.o: a.c \\\n" + manyHeaders.map { " \($0) \\\n" }.joined() + "\n" + manyHeaders.map { "\($0):\n" }.joined(),
                expected: ["a.c"] + manyHeaders),
]

/// A depfile that does not parse, and where.
struct BadDepfileCase: Sendable, CustomTestStringConvertible {
    var name: String
    var text: String
    var expected: String
    var testDescription: String { name }
}

let badDepfileCases: [BadDepfileCase] = [
    BadDepfileCase(name: "no colon", text: "a.o a.c\n", expected: "1:8: expected `:` after the targets"),
    BadDepfileCase(name: "no colon on a later line", text: "a.o: a.c\n\nfoo bar\n", expected: "3:8: expected `:` after the targets"),
    BadDepfileCase(name: "no colon after a continuation", text: "a.o: a.c\nx \\\n  y\n", expected: "3:4: expected `:` after the targets"),
    BadDepfileCase(name: "no target", text: "a.o: a.c\n: b.c\n", expected: "2:1: a rule without a target"),
    BadDepfileCase(name: "two colons", text: "a.o: a.c b: c\n", expected: "1:11: a second `:` in one rule"),
    BadDepfileCase(name: "NUL byte", text: "a.o: a\u{0}b\n", expected: "1:7: a NUL byte in a name"),
]

@Suite struct CachingDepfileTests {
    @Test(arguments: depfileCases)
    func parses(_ c: DepfileCase) throws {
        #expect(try Depfile.parse(Array(c.text.utf8)) == c.expected)
    }

    @Test(arguments: badDepfileCases)
    func refuses(_ c: BadDepfileCase) {
        #expect(throws: Depfile.ParseError.self) { try Depfile.parse(Array(c.text.utf8)) }
        do {
            _ = try Depfile.parse(Array(c.text.utf8))
        } catch {
            #expect(error.description == c.expected)
        }
    }

    @Test func refusesNamesThatAreNotUTF8() {
        var bytes = Array("a.o: ok.h bad".utf8)
        bytes.append(0xFF)
        bytes += Array(".h\n".utf8)
        #expect(throws: Depfile.ParseError(line: 1, column: 11, message: "a name that is not UTF-8")) {
            try Depfile.parse(bytes)
        }
    }

    // MARK: Full keys

    @Test func fullKeyFollowsItsSpecificationAndKeepsTheInvariant() {
        let declared = CacheKey(components: ["command": String(repeating: "a", count: 64), "definition": String(repeating: "b", count: 64)])
        let files = ["src/b.h": String(repeating: "1", count: 64), "/usr/include/stdio.h": String(repeating: "2", count: 64)]
        let full = CacheKey.full(declared: declared, discovered: files)
        var framer = FieldFramer()
        for field in ["planrun-discovered-key", "1", declared.key, "/usr/include/stdio.h", files["/usr/include/stdio.h"]!,
                      "src/b.h", files["src/b.h"]!] {
            framer.add(field)
        }
        #expect(full.key == framer.digest)
        #expect(CacheKey.combine(full.components) == full.key)
        #expect(full.isFull && !declared.isFull)
        #expect(full.declared == declared)
        #expect(full.discovered == files)
        // An empty set still gives a full key, not the declared one.
        let empty = CacheKey.full(declared: declared, discovered: [:])
        #expect(empty.key != declared.key && empty.isFull && CacheKey.combine(empty.components) == empty.key)
        // A changed file is the reason.
        var changed = files
        changed["src/b.h"] = String(repeating: "3", count: 64)
        #expect(CacheKey.full(declared: declared, discovered: changed).reason(comparedTo: full, dependsOn: [])
                == .discoveredInputChanged(path: "src/b.h"))
    }

    // MARK: Manifests

    @Test func manifestRoundTripsKeepsTheNewestSixteenAndIsNotAnActionResult() throws {
        var manifest = DiscoveredManifest()
        for i in 0..<20 {
            let key = Digest.sha256Hex(Array("set \(i)".utf8))
            manifest = manifest.adding(.init(key: key, files: ["a b.h": Digest.sha256Hex(Array("\(i)".utf8))]))
        }
        #expect(manifest.sets.count == 16)
        #expect(manifest.sets.first?.key == Digest.sha256Hex(Array("set 19".utf8)))
        let bytes = try #require(manifest.jsonBytes())
        #expect(DiscoveredManifest.decode(bytes) == manifest)
        // The action-result readers refuse a manifest, and the manifest reader an action result.
        #expect((try? JSONDecoder().decode(ActionResult.self, from: Data(bytes))) == nil)
        let action = ActionResult(resultDigest: String(repeating: "a", count: 64), resultBlob: String(repeating: "b", count: 64),
                                  outputs: [], components: [:])
        #expect(DiscoveredManifest.decode(action.jsonBytes) == nil)
        // The oldest sets are dropped to fit the size limit.
        let small = try #require(manifest.jsonBytes(sizeLimit: 600))
        #expect(small.count <= 600)
        let kept = try #require(DiscoveredManifest.decode(small))
        #expect(!kept.sets.isEmpty && kept.sets.count < 16 && kept.sets.first == manifest.sets.first)
        #expect(manifest.jsonBytes(sizeLimit: 100) == nil)
    }

    @Test func localStoreKeepsManifestAndActionApart() throws {
        let dir = CachingTempDir()
        let store = LocalCacheStore(root: dir.url("cache"))
        let key = Digest.sha256Hex(Array("declared".utf8))
        let manifest = DiscoveredManifest(sets: [.init(key: key, files: ["x.h": key])])
        try store.putManifest(key, manifest)
        // The action reader leaves a manifest alone (no removal as corrupt).
        #expect(store.action(key) == nil)
        #expect(store.manifest(key) == manifest)
        let action = ActionResult(resultDigest: key, resultBlob: key, outputs: [], components: [:])
        let other = Digest.sha256Hex(Array("full".utf8))
        try store.putAction(other, action)
        #expect(store.manifest(other) == nil)
        #expect(store.action(other) == action)
    }
}

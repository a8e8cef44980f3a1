import Foundation
import PlanRunCore
import Testing

/// The shared remote cache and `--only` end to end (issue 5): the real
/// binary against a real nginx with WebDAV `PUT` on a free loopback port.
/// `.ci/run` installs nginx; without it these tests are skipped.
@Suite(.enabled(if: NginxServer.isInstalled, "nginx is not installed (apt-get install nginx; .ci/run installs it)"),
       .timeLimit(.minutes(2)))
struct RemoteCacheTests {
    /// Each command appends its id to `ran.log`, which is not an output, so
    /// a test sees exactly what ran in a folder.
    static let plan = """
        version: 1
        subtasks:
          - id: gen
            run: >-
              echo gen >> ran.log && mkdir -p out/site/sub && cp src/a.txt out/a.txt &&
              echo page > out/site/sub/i.html && printf '#!/bin/sh\\necho hi\\n' > out/tool.sh &&
              chmod +x out/tool.sh && echo gen-result
            inputs: [src/a.txt]
            outputs: [out/a.txt, out/site, out/tool.sh]
          - id: use
            depends_on: [gen]
            run: echo use >> ran.log && cat out/a.txt out/site/sub/i.html > out/b.txt && echo used
            outputs: [out/b.txt]
          - id: solo
            run: echo solo >> ran.log && mkdir -p out && echo solo > out/solo.txt
            inputs: [src/a.txt]
            outputs: [out/solo.txt]
        """

    /// A plan folder with its sources and no outputs or state.
    static func makeSource() throws -> URL {
        let dir = try makeProject(plan)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("src"), withIntermediateDirectories: true)
        try "source a\n".write(to: dir.appendingPathComponent("src/a.txt"), atomically: true, encoding: .utf8)
        return dir
    }

    /// A fresh copy of `dir` as a clone would have it: plan and sources,
    /// no `.planrun/`, no outputs.
    static func freshCopy(of dir: URL) throws -> URL {
        let copy = try PlanRunBinary.temporaryDirectory()
        for name in ["plan.yaml", "src"] {
            try FileManager.default.copyItem(at: dir.appendingPathComponent(name), to: copy.appendingPathComponent(name))
        }
        return copy
    }

    static func ran(in dir: URL) -> [String] {
        ((try? String(contentsOf: dir.appendingPathComponent("ran.log"), encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init)
    }

    /// Every file under `out/`: relative path -> (content, executable).
    static func outputs(of dir: URL) throws -> [String: (Data, Bool)] {
        let base = dir.appendingPathComponent("out").path
        var out: [String: (Data, Bool)] = [:]
        let walker = FileManager.default.enumerator(atPath: base)
        while let name = walker?.nextObject() as? String {
            let path = base + "/" + name
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else { continue }
            out[name] = (try Data(contentsOf: URL(fileURLWithPath: path)), FileManager.default.isExecutableFile(atPath: path))
        }
        return out
    }

    /// A real nginx warmed by a build of a new source folder, with the
    /// `ac` entry naming `out/solo.txt` and its text. The caller stops the
    /// server (it is stopped here if something fails first).
    static func warmedServer() throws -> (server: NginxServer, source: URL, soloEntry: URL, soloText: String) {
        let server = try NginxServer()
        do {
            let source = try Self.makeSource()
            #expect(try Self.build(source, remote: server.url).status == 0)
            let entry = try Self.actionFile(in: server, naming: "out/solo.txt")
            return (server, source, entry, try String(contentsOf: entry, encoding: .utf8))
        } catch {
            server.stop()
            throw error
        }
    }

    /// A build of `clone` that ran nothing, warned of nothing and took all
    /// three subtasks from the cache, ending with `source`'s outputs.
    static func expectAllRestored(_ result: PlanRunBinary.Result, in clone: URL, like source: URL) throws {
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stderr.contains("warning"), "\(result.stderr)")
        #expect(try parseJSON(result.stdout)["cached"] as? Int == 3)
        #expect(Self.ran(in: clone).isEmpty)
        try Self.expectSameOutputs(source, clone)
    }

    static func expectSameOutputs(_ a: URL, _ b: URL) throws {
        let left = try outputs(of: a), right = try outputs(of: b)
        #expect(left.keys.sorted() == ["a.txt", "b.txt", "site/sub/i.html", "solo.txt", "tool.sh"])
        #expect(left.keys.sorted() == right.keys.sorted())
        for (name, (data, executable)) in left {
            #expect(right[name]?.0 == data, "\(name) differs")
            #expect(right[name]?.1 == executable, "\(name) executable bit differs")
        }
    }

    static func build(_ dir: URL, _ extra: [String] = [], remote: String?) throws -> PlanRunBinary.Result {
        var arguments = ["build", "plan.yaml", "--json"] + extra
        if let remote { arguments += ["--remote-cache", remote] }
        return try PlanRunBinary.run(arguments, in: dir, environment: ["PLANRUN_REMOTE_CACHE": ""])
    }

    /// Rewrites the remote entry of `solo` without the inline copy of
    /// `out/solo.txt` (as an older planrun wrote entries), so that a
    /// restore must fetch the `cas` blob. Returns the blob's digest and the
    /// entry's text as it was.
    static func dropInlineContentsOfSolo(in server: NginxServer) throws -> (digest: String, entry: String) {
        let digest = Digest.sha256Hex(Array("solo\n".utf8))
        let entry = try Self.actionFile(in: server, naming: "out/solo.txt")
        let text = try String(contentsOf: entry, encoding: .utf8)
        let inline = "\"contents\":\"\(Data("solo\n".utf8).base64EncodedString())\","
        #expect(text.contains(inline))
        try text.replacingOccurrences(of: inline, with: "").write(to: entry, atomically: true, encoding: .utf8)
        return (digest, text)
    }

    /// The served `ac` entry whose outputs include `path`.
    static func actionFile(in server: NginxServer, naming path: String) throws -> URL {
        for name in server.storedFiles() where name.hasPrefix("ac/") {
            let url = server.root.appendingPathComponent(name)
            if try String(contentsOf: url, encoding: .utf8).contains("\"path\":\"\(path)\"") { return url }
        }
        throw NginxServer.ServerError(message: "no ac entry names \(path)")
    }

    @Test func freshCloneAgainstAWarmRemoteRunsNothingAndEndsIdentical() throws {
        let server = try NginxServer()
        defer { server.stop() }
        let source = try Self.makeSource()
        let warm = try Self.build(source, remote: server.url)
        #expect(warm.status == 0, "\(warm.stderr)")
        #expect(Self.ran(in: source).sorted() == ["gen", "solo", "use"])
        let stored = server.storedFiles()
        #expect(stored.filter { $0.hasPrefix("ac/") }.count == 3)
        #expect(stored.contains("cas/" + Digest.sha256Hex(Array("source a\n".utf8))))

        let clone = try Self.freshCopy(of: source)
        let before = server.requests().count
        // The variable works like the option.
        let result = try PlanRunBinary.run(["build", "plan.yaml", "--json"], in: clone,
                                           environment: ["PLANRUN_REMOTE_CACHE": server.url + "/"])
        #expect(result.status == 0, "\(result.stderr)")
        let summary = try parseJSON(result.stdout)
        #expect(summary["total"] as? Int == 3)
        #expect(summary["cached"] as? Int == 3)
        #expect(summary["completed"] as? Int == 0)
        #expect(Self.ran(in: clone).isEmpty)
        #expect(!result.stderr.contains("warning"), "\(result.stderr)")
        try Self.expectSameOutputs(source, clone)
        let results = try #require(summary["results"] as? [String: [String: Any]])
        #expect(results["gen"]?["result"] as? String == "gen-result\n")
        // Nothing new was uploaded by the clone.
        #expect(server.storedFiles() == stored)
        // Small blobs come inline with their `ac` entry: only the folder
        // `out/site` (its manifest and its one file) needs `cas` requests.
        let requests = server.requests().dropFirst(before)
        #expect(requests.filter { $0.hasPrefix("GET /ac/") && $0.hasSuffix(" 200") }.count == 3, "\(requests)")
        #expect(requests.filter { $0.hasPrefix("GET /cas/") }.count == 2, "\(requests)")
        #expect(requests.count == 5, "\(requests)")
    }

    /// Outputs are written straight from the downloaded bytes: nothing goes
    /// to the local store, so outputs deleted later come from the remote
    /// again, and without the remote the subtask simply runs.
    @Test func restoreFromTheRemoteKeepsNoLocalCopy() throws {
        let server = try NginxServer()
        defer { server.stop() }
        let source = try Self.makeSource()
        #expect(try Self.build(source, remote: server.url).status == 0)
        let clone = try Self.freshCopy(of: source)
        let first = try Self.build(clone, remote: server.url)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try parseJSON(first.stdout)["cached"] as? Int == 3)
        let store = clone.appendingPathComponent(".planrun/cache")
        for folder in ["ac", "cas"] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: store.appendingPathComponent(folder).path)) ?? []
            #expect(names.isEmpty, "\(folder): \(names)")
        }
        let before = server.requests().count

        // A no-op asks the remote nothing.
        let noop = try Self.build(clone, remote: server.url)
        #expect(noop.status == 0)
        #expect(server.requests().count == before)

        // Deleted outputs come back from the remote.
        try FileManager.default.removeItem(at: clone.appendingPathComponent("out/site"))
        try FileManager.default.removeItem(at: clone.appendingPathComponent("out/tool.sh"))
        let again = try Self.build(clone, remote: server.url)
        try Self.expectAllRestored(again, in: clone, like: source)
        #expect(server.requests().dropFirst(before).contains { $0.hasPrefix("GET /ac/") })

        // Without the remote, a subtask whose output is gone runs.
        try FileManager.default.removeItem(at: clone.appendingPathComponent("out/solo.txt"))
        let local = try Self.build(clone, remote: nil)
        #expect(local.status == 0, "\(local.stderr)")
        #expect(Self.ran(in: clone) == ["solo"])
        try Self.expectSameOutputs(source, clone)
    }

    /// `build --force` runs everything: nothing is looked up or restored
    /// from the remote first (the results are uploaded as usual).
    @Test func forceAllAsksTheRemoteNothing() throws {
        let (server, source, _, _) = try Self.warmedServer()
        defer { server.stop() }
        let clone = try Self.freshCopy(of: source)
        let before = server.requests().count
        let forced = try Self.build(clone, ["--force"], remote: server.url)
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(Self.ran(in: clone).sorted() == ["gen", "solo", "use"])
        #expect(!server.requests().dropFirst(before).contains { $0.hasPrefix("GET ") }, "\(server.requests().dropFirst(before))")
        try Self.expectSameOutputs(source, clone)
    }

    @Test(arguments: ["../escaped.txt", "/tmp/planrun-escaped.txt", "out/../../escaped.txt"])
    func poisonedActionWithAnEscapingPathIsRefused(path: String) throws {
        let (server, source, entry, text) = try Self.warmedServer()
        defer { server.stop() }
        try text.replacingOccurrences(of: "\"path\":\"out/solo.txt\"", with: "\"path\":\"\(path)\"")
            .write(to: entry, atomically: true, encoding: .utf8)

        let clone = try Self.freshCopy(of: source)
        let result = try Self.build(clone, remote: server.url)
        #expect(result.status == 0, "\(result.stderr)")
        let summary = try parseJSON(result.stdout)
        #expect(summary["completed"] as? Int == 1)
        #expect(summary["cached"] as? Int == 2)
        #expect(Self.ran(in: clone) == ["solo"])
        #expect(result.stderr.contains(
            "warning: remote cache entry for `solo` refused: it names the path `\(path)`, which leaves the plan's folder; running it"),
            "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: clone.deletingLastPathComponent().appendingPathComponent("escaped.txt").path))
        #expect(!FileManager.default.fileExists(atPath: "/tmp/planrun-escaped.txt"))
        try Self.expectSameOutputs(source, clone)
        // The clone ran it and uploaded a good entry over the poisoned one.
        #expect(try String(contentsOf: entry, encoding: .utf8) == text)
    }

    /// Entries without inline contents (as an older planrun wrote them)
    /// restore through `cas/`.
    @Test func entriesWithoutInlineContentsRestoreThroughCAS() throws {
        let server = try NginxServer()
        defer { server.stop() }
        let source = try Self.makeSource()
        #expect(try Self.build(source, remote: server.url).status == 0)
        var stripped = 0
        for name in server.storedFiles() where name.hasPrefix("ac/") {
            let url = server.root.appendingPathComponent(name)
            let text = try String(contentsOf: url, encoding: .utf8)
            let plain = text.replacingOccurrences(of: #""(result_)?contents":"[A-Za-z0-9+/=]*","#, with: "", options: .regularExpression)
            #expect(!plain.contains("contents"), "\(plain)")
            if plain != text { stripped += 1 }
            try plain.write(to: url, atomically: true, encoding: .utf8)
        }
        #expect(stripped == 3)
        let clone = try Self.freshCopy(of: source)
        let before = server.requests().count
        let result = try Self.build(clone, remote: server.url)
        try Self.expectAllRestored(result, in: clone, like: source)
        let requests = server.requests().dropFirst(before)
        // gen: result, a.txt, tool.sh, the manifest of out/site, i.html; use: result, b.txt; solo: solo.txt (its result is empty)
        #expect(requests.filter { $0.hasPrefix("GET /cas/") && $0.hasSuffix(" 200") }.count == 8, "\(requests)")
    }

    /// An entry without inline contents (as an older planrun wrote it)
    /// whose `cas` blob was tampered with.
    @Test func tamperedBlobIsRefusedAndTheSubtaskRuns() throws {
        let server = try NginxServer()
        defer { server.stop() }
        let source = try Self.makeSource()
        #expect(try Self.build(source, remote: server.url).status == 0)
        let (digest, _) = try Self.dropInlineContentsOfSolo(in: server)
        let blob = server.root.appendingPathComponent("cas/" + digest)
        #expect(FileManager.default.fileExists(atPath: blob.path))
        try "evil\n".write(to: blob, atomically: true, encoding: .utf8)

        let clone = try Self.freshCopy(of: source)
        let result = try Self.build(clone, remote: server.url)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Self.ran(in: clone) == ["solo"])
        #expect(result.stderr.contains("warning: remote cache entry for `solo` refused: blob `\(digest)` does not match its digest; running it"),
                "\(result.stderr)")
        #expect(try String(contentsOf: clone.appendingPathComponent("out/solo.txt"), encoding: .utf8) == "solo\n")
        try Self.expectSameOutputs(source, clone)
    }

    /// Inline contents are checked against their digest like a blob.
    @Test(arguments: [(Data("evil\n".utf8).base64EncodedString(), "blob `\(Digest.sha256Hex(Array("solo\n".utf8)))` does not match its digest"),
                      ("not base64!", "it is not a valid action result")])
    func tamperedInlineContentsAreRefused(contents: String, reason: String) throws {
        let (server, source, entry, text) = try Self.warmedServer()
        defer { server.stop() }
        let inline = "\"contents\":\"\(Data("solo\n".utf8).base64EncodedString())\""
        #expect(text.contains(inline))
        try text.replacingOccurrences(of: inline, with: "\"contents\":\"\(contents)\"").write(to: entry, atomically: true, encoding: .utf8)

        let clone = try Self.freshCopy(of: source)
        let result = try Self.build(clone, remote: server.url)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Self.ran(in: clone) == ["solo"])
        #expect(result.stderr.contains("warning: remote cache entry for `solo` refused: \(reason); running it"), "\(result.stderr)")
        try Self.expectSameOutputs(source, clone)
    }

    @Test func unreachableRemoteGivesOneWarningAndTheBuildGoesOn() throws {
        let port = try NginxServer.freePort()  // nothing listens there
        let dir = try Self.makeSource()
        let result = try Self.build(dir, remote: "http://127.0.0.1:\(port)")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Self.ran(in: dir).sorted() == ["gen", "solo", "use"])
        let warnings = result.stderr.split(separator: "\n").filter { $0.hasPrefix("warning:") }
        #expect(warnings.count == 1, "\(result.stderr)")
        #expect(warnings.first?.hasPrefix("warning: remote cache `http://127.0.0.1:\(port)` is unavailable (") == true)
        #expect(warnings.first?.hasSuffix("); continued with the local cache only") == true)
        // A no-op rebuild needs no remote lookups and warns about nothing.
        let again = try Self.build(dir, remote: "http://127.0.0.1:\(port)")
        #expect(again.status == 0)
        #expect(!again.stderr.contains("warning"), "\(again.stderr)")
    }

    @Test func failingRemoteIsRetriedThenTurnedOffWithOneWarning() throws {
        let server = try NginxServer(locations: "location /ac/ { return 503; }")
        defer { server.stop() }
        let dir = try Self.makeSource()
        let result = try Self.build(dir, remote: server.url)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Self.ran(in: dir).sorted() == ["gen", "solo", "use"])
        let warnings = result.stderr.split(separator: "\n").filter { $0.hasPrefix("warning:") }
        #expect(warnings.count == 1, "\(result.stderr)")
        #expect(warnings.first?.contains("answered HTTP 503") == true, "\(result.stderr)")
        // Blobs may have gone up before the third failure; no entry did.
        #expect(!server.storedFiles().contains { $0.hasPrefix("ac/") }, "\(server.storedFiles())")
    }

    /// Failed requests that do not turn the remote off (fewer than three)
    /// are still reported, once.
    @Test func test_issue_10_failedRequestsBelowTheLimitAreReported() throws {
        let server = try NginxServer(locations: "location /ac/ { return 503; }")
        defer { server.stop() }
        let dir = try makeProject("version: 1\nsubtasks:\n  - id: one\n    run: echo one\n")
        let result = try Self.build(dir, remote: server.url)
        #expect(result.status == 0, "\(result.stderr)")
        let warnings = result.stderr.split(separator: "\n").filter { $0.hasPrefix("warning:") }
        // The lookup, then the entry's upload; the blob's upload worked.
        #expect(warnings.count == 1, "\(result.stderr)")
        #expect(warnings.first?.hasPrefix("warning: remote cache `\(server.url)`: 2 requests failed (GET ac/") == true,
                "\(result.stderr)")
        #expect(warnings.first?.hasSuffix(" answered HTTP 503)") == true, "\(result.stderr)")
    }

    /// A blob larger than the size its entry names is refused (issue 10
    /// item 7); the subtask runs, with a warning.
    @Test func test_issue_10_oversizedBlobIsRefusedAndTheSubtaskRuns() throws {
        let server = try NginxServer()
        defer { server.stop() }
        let source = try Self.makeSource()
        #expect(try Self.build(source, remote: server.url).status == 0)
        let (digest, text) = try Self.dropInlineContentsOfSolo(in: server)
        #expect(text.contains("\"\(digest)\":5"))
        try String(repeating: "solo\n", count: 1000).write(to: server.root.appendingPathComponent("cas/" + digest),
                                                          atomically: true, encoding: .utf8)

        let clone = try Self.freshCopy(of: source)
        let result = try Self.build(clone, remote: server.url)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Self.ran(in: clone) == ["solo"])
        #expect(result.stderr.contains(
            "warning: remote cache entry for `solo` refused: the answer to GET cas/\(digest) is larger than 5 bytes; running it"),
            "\(result.stderr)")
        try Self.expectSameOutputs(source, clone)
    }

    @Test func readModeUsesTheRemoteButNeverUploads() throws {
        let server = try NginxServer()
        defer { server.stop() }
        let dir = try Self.makeSource()
        let result = try Self.build(dir, ["--remote-cache-mode", "read"], remote: server.url)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Self.ran(in: dir).sorted() == ["gen", "solo", "use"])
        #expect(server.storedFiles().isEmpty)
        #expect(!result.stderr.contains("warning"), "\(result.stderr)")

        // Warmed by a trusted build, a read-only clone takes everything from it.
        let trusted = try Self.freshCopy(of: dir)
        #expect(try Self.build(trusted, remote: server.url).status == 0)
        let stored = server.storedFiles()
        let clone = try Self.freshCopy(of: dir)
        let read = try Self.build(clone, ["--remote-cache-mode", "read"], remote: server.url)
        #expect(read.status == 0, "\(read.stderr)")
        #expect(try parseJSON(read.stdout)["cached"] as? Int == 3)
        #expect(Self.ran(in: clone).isEmpty)
        #expect(server.storedFiles() == stored)
    }

    @Test func onlyRunsTheTargetWithItsDependencyFromTheRemote() throws {
        let server = try NginxServer()
        defer { server.stop() }
        let source = try Self.makeSource()
        // One CI job built `gen` ...
        #expect(try Self.build(source, ["gen"], remote: server.url).status == 0)
        // ... another, on a fresh clone, builds only `use`.
        let clone = try Self.freshCopy(of: source)
        let result = try Self.build(clone, ["use", "--only"], remote: server.url)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Self.ran(in: clone) == ["use"])
        let summary = try parseJSON(result.stdout)
        let results = try #require(summary["results"] as? [String: [String: Any]])
        #expect(results["gen"]?["status"] as? String == "cached")
        #expect(results["use"]?["status"] as? String == "done")
        #expect(results["solo"] == nil)
        #expect(try String(contentsOf: clone.appendingPathComponent("out/b.txt"), encoding: .utf8) == "source a\npage\n")
    }

    @Test func onlyFailsBeforeRunningAnythingWhenADependencyIsNotCached() throws {
        let server = try NginxServer()
        defer { server.stop() }
        let dir = try Self.makeSource()
        let result = try Self.build(dir, ["solo", "use", "--only"], remote: server.url)
        #expect(result.status == 1)
        #expect(result.stderr.contains("error: dependency `gen` of `use` is not in the cache; build it first or drop --only\n"),
                "\(result.stderr)")
        #expect(Self.ran(in: dir).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out").path))
        #expect(server.storedFiles().isEmpty)
    }

    @Test func onlyWorksWithTheLocalCacheAlone() throws {
        let dir = try Self.makeSource()
        #expect(try Self.build(dir, ["gen"], remote: nil).status == 0)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("out/a.txt"))  // restored from the local store
        let result = try Self.build(dir, ["use", "--only"], remote: nil)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Self.ran(in: dir) == ["gen", "use"])
        #expect(try String(contentsOf: dir.appendingPathComponent("out/a.txt"), encoding: .utf8) == "source a\n")
    }
}

/// Command-line checks that need no server.
@Suite struct RemoteCacheOptionTests {
    @Test func onlyNeedsTargets() throws {
        let dir = try RemoteCacheTests.makeSource()
        let result = try PlanRunBinary.run(["build", "plan.yaml", "--only"], in: dir)
        #expect(result.status == 64)
        #expect(result.stderr.contains("`--only` needs the ids of the subtasks to run"))
    }

    @Test func badRemoteURLsAreUsageErrors() throws {
        let dir = try RemoteCacheTests.makeSource()
        let option = try PlanRunBinary.run(["build", "plan.yaml", "--remote-cache", "ftp://cache"], in: dir)
        #expect(option.status == 64)
        #expect(option.stderr.contains("`--remote-cache` must be an http or https URL (got `ftp://cache`)"))
        let variable = try PlanRunBinary.run(["build", "plan.yaml"], in: dir, environment: ["PLANRUN_REMOTE_CACHE": "cache:8080"])
        #expect(variable.status == 64)
        #expect(variable.stderr == "error: `PLANRUN_REMOTE_CACHE` must be an http or https URL (got `cache:8080`)\n")
        #expect(RemoteCacheTests.ran(in: dir).isEmpty)
    }
}

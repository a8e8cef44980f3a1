#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// The file-system trust rules (see docs/DESIGN.md, Trust rules), run as
/// the real binary on real files: nothing followed in the state folder,
/// outputs stored as they are, state is not an output, local cache reads
/// bounded, no litter.
@Suite struct TrustBoundaryFileTests {
    final class Folder: PlanFolder {
        func link(_ rel: String, to target: String) throws {
            try FileManager.default.createDirectory(
                atPath: ((path + "/" + rel) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: path + "/" + rel, withDestinationPath: target)
        }
        func linkTarget(_ rel: String) -> String? {
            try? FileManager.default.destinationOfSymbolicLink(atPath: path + "/" + rel)
        }
        func lstatKind(_ rel: String) -> mode_t? {
            var st = stat()
            return lstat(path + "/" + rel, &st) == 0 ? st.st_mode & S_IFMT : nil
        }
        func mode(_ rel: String) -> mode_t? {
            var st = stat()
            return lstat(path + "/" + rel, &st) == 0 ? st.st_mode & 0o7777 : nil
        }
        /// Every file name below `rel` (recursively, links not followed).
        func names(below rel: String) -> [String] {
            (FileManager.default.enumerator(atPath: path + "/" + rel)?.allObjects as? [String]) ?? []
        }
        @discardableResult
        func run(_ args: String...) throws -> PlanRunBinary.Result { try PlanRunBinary.run(args, in: url) }
    }

    static let onePlan = """
        version: 1
        subtasks:
          - id: gen
            run: echo made > out.txt
            outputs: [out.txt]
        """

    struct PlantedLink: Sendable, CustomTestStringConvertible {
        var entry: String
        /// The link points to a folder (else to a file).
        var folder: Bool
        var testDescription: String { entry }
    }

    /// Issue 10 item 2: a link planted in the state folder makes every
    /// build refuse (exit 1, the link named), and nothing it points to is
    /// deleted or written: not the files a `cache/tmp` link points to (as
    /// leftovers), not the target of a `build.lock` link (with a pid), not
    /// a folder in place of `cas` (blobs). `clean` repairs it without
    /// touching what the link points to.
    @Test(arguments: [
        PlantedLink(entry: "cache/tmp", folder: true), PlantedLink(entry: "cache/cas", folder: true),
        PlantedLink(entry: "cache/ac", folder: true), PlantedLink(entry: "logs", folder: true),
        PlantedLink(entry: "build.lock", folder: false), PlantedLink(entry: "state.db", folder: false),
    ])
    func issue10LinksInTheStateFolderAreRefused(_ c: PlantedLink) throws {
        let f = try Folder(plan: Self.onePlan)
        let victim = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: victim) }
        try Data("precious".utf8).write(to: victim.appendingPathComponent("keep.txt"))
        try f.link(".planrun/" + c.entry, to: c.folder ? victim.path : victim.appendingPathComponent("keep.txt").path)

        let r = try f.run("build")
        #expect(r.status == 1)
        #expect(r.stderr.contains("refusing to use the state folder: `\(f.path)/.planrun/\(c.entry)` is a symbolic link"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: victim.path) == ["keep.txt"])
        #expect(String(decoding: try Data(contentsOf: victim.appendingPathComponent("keep.txt")), as: UTF8.self) == "precious")
        #expect(f.read("out.txt") == nil)

        // `clean` removes a link it finds in place of its state or cache as
        // a link, never what it points to.
        let clean = try f.run("clean")
        #expect(clean.status == 0, "\(clean.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: victim.path) == ["keep.txt"])
        #expect(String(decoding: try Data(contentsOf: victim.appendingPathComponent("keep.txt")), as: UTF8.self) == "precious")
    }

    /// The state folder itself may be a link to a folder elsewhere.
    @Test func aLinkedStateFolderIsUsed() throws {
        let f = try Folder(plan: Self.onePlan)
        let elsewhere = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: elsewhere) }
        try f.link(".planrun", to: elsewhere.path)
        let r = try f.run("build")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: elsewhere.appendingPathComponent("state.db").path))
    }

    static let outputsPlan = """
        version: 1
        subtasks:
          - id: gen
            run: >-
              rm -rf site key.pem latest &&
              mkdir -p site/sub && echo index > site/index.html && echo s > site/sub/s.sh && chmod 750 site/sub/s.sh &&
              ln -s OUTSIDE site/etc && ln -s index.html site/home &&
              printf k > key.pem && chmod 600 key.pem && ln -s site/index.html latest
            outputs: [site, key.pem, latest]
        """

    /// Issue 10 item 3: links inside an output folder, and a declared
    /// output that is a link, are stored and restored as links (their
    /// target text), never followed: the folder a link points to never
    /// reaches the cache. Permission bits come back exactly.
    @Test func issue10OutputsAreStoredAsTheyAre() throws {
        let outside = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: outside) }
        try Data("TOP-SECRET-CONTENT".utf8).write(to: outside.appendingPathComponent("shadow"))
        let f = try Folder(plan: Self.outputsPlan.replacingOccurrences(of: "OUTSIDE", with: outside.path))
        let first = try f.run("build")
        #expect(first.status == 0, "\(first.stderr)")

        // Nothing of the linked folder is in the cache.
        for name in f.names(below: ".planrun/cache/cas") {
            #expect(f.read(".planrun/cache/cas/" + name)?.contains("TOP-SECRET") != true)
        }

        for rel in ["site", "key.pem", "latest"] { try FileManager.default.removeItem(atPath: f.path + "/" + rel) }
        let second = try f.run("build")
        #expect(second.status == 0, "\(second.stderr)")
        #expect(f.lstatKind("site/etc") == S_IFLNK && f.linkTarget("site/etc") == outside.path)
        #expect(f.lstatKind("site/home") == S_IFLNK && f.linkTarget("site/home") == "index.html")
        #expect(f.lstatKind("latest") == S_IFLNK && f.linkTarget("latest") == "site/index.html")
        #expect(f.read("site/index.html") == "index\n")
        #expect(f.mode("key.pem") == 0o600)
        #expect(f.mode("site/sub/s.sh") == 0o750)
        #expect(f.read("key.pem") == "k")

        // A mode changed by hand is not "up to date": the output is put back.
        chmod(f.path + "/key.pem", 0o644)
        let third = try f.run("build")
        #expect(third.status == 0)
        #expect(f.mode("key.pem") == 0o600)
    }

    /// Setuid, setgid and sticky bits are dropped; the rest is exact.
    @Test func specialModeBitsAreDropped() throws {
        let f = try Folder(plan: """
            version: 1
            subtasks:
              - id: gen
                run: printf x > tool && chmod 4711 tool
                outputs: [tool]
            """)
        #expect(try f.run("build").status == 0)
        try FileManager.default.removeItem(atPath: f.path + "/tool")
        #expect(try f.run("build").status == 0)
        #expect(f.mode("tool") == 0o711)
    }

    /// A FIFO in an output folder cannot be stored as it is: the subtask
    /// fails with the reason instead of being cached without it.
    @Test func aFIFOInAnOutputFolderIsAnError() throws {
        let f = try Folder(plan: """
            version: 1
            subtasks:
              - id: gen
                run: rm -rf site && mkdir site && echo i > site/index.html && mkfifo site/pipe
                outputs: [site]
            """)
        let r = try f.run("build")
        #expect(r.status == 1)
        #expect((r.stdout + r.stderr).contains("`\(f.path)/site/pipe` is not a regular file"), "\(r.stdout)\n\(r.stderr)")
    }

    /// A dependent sees an output's mode: when only the mode changes, it
    /// runs again.
    @Test func aModeChangeReachesDependents() throws {
        let f = try Folder(plan: """
            version: 1
            subtasks:
              - id: gen
                run: printf x > tool && if test -f exec; then chmod 755 tool; else chmod 644 tool; fi
                inputs: [-exec]
                outputs: [tool]
              - id: use
                depends_on: [gen]
                run: echo use >> ran.log
            """)
        #expect(try f.run("build").status == 0)
        try f.write("exec", "")
        #expect(try f.run("build").status == 0)
        #expect(f.mode("tool") == 0o755)
        #expect(f.read("ran.log") == "use\nuse\n")
    }

    /// A restore never writes through a link planted in an output's path:
    /// the link is refused (the subtask runs) and the folder it points to
    /// stays as it was.
    @Test func aRestoreNeverWritesThroughAPlantedParentLink() throws {
        let outside = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: outside) }
        let f = try Folder(plan: """
            version: 1
            subtasks:
              - id: gen
                run: test -L out || (mkdir -p out && echo made > out/a.txt)
                outputs: [out/a.txt]
            """)
        #expect(try f.run("build").status == 0)
        try FileManager.default.removeItem(atPath: f.path + "/out")
        try f.link("out", to: outside.path)
        _ = try f.run("build")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside.path).isEmpty)
    }

    /// Issue 10 item 4: outputs and inputs inside the state folder are
    /// validation errors at their position; no build removes the state.
    @Test func issue10StateIsNotAnOutput() throws {
        let f = try Folder(plan: """
            version: 1
            subtasks:
              - id: a
                run: "true"
                outputs: [.planrun]
              - id: b
                run: "true"
                inputs: [src/x.c, ./.planrun/state.db]
                outputs: [.planrun/cache/ac]
            """)
        let r = try f.run("validate")
        #expect(r.status == 2)
        #expect(r.stderr.contains(
            "plan.yaml:5:15: error: output `.planrun` is inside the state folder `.planrun`, which belongs to planrun; use a path outside it"))
        #expect(r.stderr.contains(
            "plan.yaml:8:23: error: input `./.planrun/state.db` is inside the state folder `.planrun`, which belongs to planrun; use a path outside it"))
        #expect(r.stderr.contains("plan.yaml:9:15: error: output `.planrun/cache/ac` is inside the state folder"))
        #expect(try f.run("build").status == 2)
        #expect(try f.run("clean", "--outputs").status == 2)
    }

    /// `--state-dir` inside an output folder: `build` refuses, and `clean
    /// --outputs` never removes the state folder as an output.
    @Test func aStateFolderInsideAnOutputIsNeverRemovedAsOne() throws {
        let f = try Folder(plan: """
            version: 1
            subtasks:
              - id: gen
                run: mkdir -p build && echo x > build/x.txt
                outputs: [build]
            """)
        let built = try f.run("build", "--state-dir", "build/state")
        #expect(built.status == 1)
        #expect(built.stderr.contains("output `build` of `gen` holds or is inside the state folder \(f.path)/build/state"))
        try f.write("build/state/state.db", "")
        let r = try f.run("clean", "--outputs", "--state-dir", "build/state")
        #expect(r.status == 1)
        #expect(r.stderr.contains("not removing output `build` of `gen`: it holds or is inside the state folder"))
        #expect(FileManager.default.fileExists(atPath: f.path + "/build/state/state.db"))
    }

    /// Issue 10 item 8: a FIFO or a link to /dev/zero in place of an `ac`
    /// entry must not hang `build` and `explain` (or grow memory until
    /// abort): it is refused with a warning and the subtask runs.
    @Test(arguments: ["fifo", "dev-zero", "large"])
    func issue10HostileLocalCacheEntriesAreMisses(_ kind: String) async throws {
        let f = try Folder(plan: Self.onePlan)
        #expect(try f.run("build").status == 0)
        let entries = try FileManager.default.contentsOfDirectory(atPath: f.path + "/.planrun/cache/ac")
        try #require(entries.count == 1)
        let entry = f.path + "/.planrun/cache/ac/" + entries[0]
        unlink(entry)
        switch kind {
        case "fifo": #expect(mkfifo(entry, 0o644) == 0)
        case "dev-zero": try FileManager.default.createSymbolicLink(atPath: entry, withDestinationPath: "/dev/zero")
        default: try Data(repeating: 0x20, count: (1 << 20) + 1).write(to: URL(fileURLWithPath: entry))
        }
        try FileManager.default.removeItem(atPath: f.path + "/out.txt")

        let explain = try BackgroundPlanRun(["explain", "gen"], in: f.url)
        let explained = try await explain.wait(limit: .seconds(20))
        #expect(explained.status == 0)

        let build = try BackgroundPlanRun(["build"], in: f.url)
        let r = try await build.wait(limit: .seconds(20))
        #expect(r.status == 0)
        #expect(r.stdout.contains("warning: cache entry `\(entry)` refused: it is "), "\(r.stdout)\n\(r.stderr)")
        #expect(f.read("out.txt") == "made\n")
    }

    /// Issue 10 item 10: a kill during a restore leaves the journal line and
    /// a temporary file beside the output (written in that order); the next
    /// build removes it, and so does `clean --outputs` (which also removes
    /// temporaries beside declared outputs that no journal names).
    @Test func issue10NoLitterAfterAKilledRestore() throws {
        let f = try Folder(plan: """
            version: 1
            subtasks:
              - id: gen
                run: mkdir -p out && echo big > out/big.bin
                outputs: [out/big.bin]
              - id: list
                run: ls out > listing.txt
                inputs: ["out/*"]
                outputs: [listing.txt]
                depends_on: [gen]
            """)
        #expect(try f.run("build").status == 0)
        // What a killed restore leaves: its journal names the folder.
        try f.write(".planrun/cache/tmp/restores-99999", f.path + "/out\0")
        try f.write("out/big.bin.planrun-tmp-99999-12345", "half written")
        try f.write(".planrun/uptodate.planrun-tmp-99999-4", "half a stamp")
        try FileManager.default.removeItem(atPath: f.path + "/listing.txt")
        let r = try f.run("build")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.path + "/out") == ["big.bin"])
        #expect(f.lstatKind(".planrun/uptodate.planrun-tmp-99999-4") == nil)

        try f.write("out/big.bin.planrun-tmp-99999-777", "half written")
        let clean = try f.run("clean", "--outputs")
        #expect(clean.status == 0, "\(clean.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.path + "/out").isEmpty)
    }
}

extension TrustBoundaryFileTests {
    /// No litter, for the CI report: a temporary report file left by
    /// a killed planrun (its process gone) is removed when the report is
    /// written next; one of a live process is left alone.
    @Test func aKilledReportWriteLeavesNoLitter() throws {
        let f = try Folder(plan: Self.onePlan)
        let dead = "reports/.junit.xml.2147483646.77.tmp"
        let live = "reports/.junit.xml.\(getpid()).78.tmp"
        try f.write(dead, "<half")
        try f.write(live, "<writing")
        let r = try f.run("build", "--report", "reports/junit.xml")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.path + "/reports").sorted()
            == [".junit.xml.\(getpid()).78.tmp", "junit.xml"])
    }


    /// Issue 10 item 10 with a real `kill -9`: the build is killed while it
    /// restores a 32 MiB output (as soon as its temporary file appears);
    /// the next build leaves no temporary file in the plan's folder.
    @Test func issue10NoLitterAfterAKill9DuringARestore() async throws {
        let f = try Folder(plan: """
            version: 1
            subtasks:
              - id: gen
                run: mkdir -p out && head -c 33554432 /dev/zero > out/big.bin
                outputs: [out/big.bin]
            """)
        #expect(try f.run("build").status == 0)
        var caught = false
        for _ in 0..<5 where !caught {
            try FileManager.default.removeItem(atPath: f.path + "/out/big.bin")
            let build = try BackgroundPlanRun(["build"], in: f.url)
            while build.process.isRunning {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: f.path + "/out")) ?? []
                if names.contains(where: { $0.contains(".planrun-tmp-") }) {
                    kill(build.pid, SIGKILL)
                    caught = true
                    break
                }
                usleep(1000)
            }
            _ = try await build.wait()
        }
        #expect(caught, "the restore was never caught with its temporary file")
        let r = try f.run("build")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.path + "/out") == ["big.bin"])
    }
}

/// Issue 10 item 3 through the remote cache: the same entries travel over
/// the Bazel HTTP protocol (a real nginx), so a link in an output folder is
/// uploaded as a link, never as the files it points to, and a fresh clone
/// gets links back as links and modes exactly.
@Suite(.enabled(if: NginxServer.isInstalled, "nginx is not installed (apt-get install nginx; .ci/run installs it)"),
       .timeLimit(.minutes(2)))
struct TrustBoundaryRemoteTests {
    @Test func issue10RemoteEntriesKeepLinksAndModes() throws {
        let outside = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: outside) }
        try Data("TOP-SECRET-CONTENT".utf8).write(to: outside.appendingPathComponent("shadow"))
        let plan = TrustBoundaryFileTests.outputsPlan
            .replacingOccurrences(of: "OUTSIDE", with: outside.path)
            .replacingOccurrences(of: "run: >-\n", with: "run: >-\n      echo gen >> ran.log &&\n")
        let server = try NginxServer()
        defer { server.stop() }
        let first = try TrustBoundaryFileTests.Folder(plan: plan)
        let built = try PlanRunBinary.run(["build", "--remote-cache", server.url], in: first.url,
                                          environment: ["PLANRUN_REMOTE_CACHE": ""])
        #expect(built.status == 0, "\(built.stderr)")
        let stored = server.storedFiles()
        #expect(stored.contains { $0.hasPrefix("ac/") })
        for name in stored {
            let text = (try? String(contentsOf: server.root.appendingPathComponent(name), encoding: .utf8)) ?? ""
            #expect(!text.contains("TOP-SECRET"), "\(name)")
        }

        let clone = try TrustBoundaryFileTests.Folder(plan: plan)
        let restored = try PlanRunBinary.run(["build", "--remote-cache", server.url], in: clone.url,
                                             environment: ["PLANRUN_REMOTE_CACHE": ""])
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(clone.read("ran.log") == nil)
        #expect(clone.lstatKind("site/etc") == S_IFLNK && clone.linkTarget("site/etc") == outside.path)
        #expect(clone.lstatKind("latest") == S_IFLNK && clone.linkTarget("latest") == "site/index.html")
        #expect(clone.read("site/index.html") == "index\n")
        #expect(clone.mode("key.pem") == 0o600)
        #expect(clone.mode("site/sub/s.sh") == 0o750)
    }
}

import Foundation
import PlanRunCore
import Testing

/// Discovered inputs (issue 13, DESIGN §8.4) end to end: the real binary,
/// the real `cc` writing `-MD -MF` depfiles, and (for the remote) a real
/// nginx. Each compile declares only its `.c`; the headers it includes are
/// found in its depfile.
@Suite(.timeLimit(.minutes(3)))
struct DepfileTests {
    /// Four objects: a includes util.h, b util.h and config.h, c config.h,
    /// d only <stdio.h>. Each command appends its id to `ran.log`.
    static let plan = """
        version: 1
        subtasks:
        \(["a", "b", "c", "d"].map { id in """
          - id: \(id)
            run: echo \(id) >> ran.log && mkdir -p build && cc -MD -MF build/\(id).d -c src/\(id).c -o build/\(id).o
            inputs: [src/\(id).c]
            outputs: [build/\(id).o]
            depfile: build/\(id).d
        """ }.joined(separator: "\n"))
        """

    static let sources = [
        "src/util.h": "int util(void);\n",
        "src/config.h": "#define N 3\n",
        "src/a.c": "#include \"util.h\"\nint a(void) { return util(); }\n",
        "src/b.c": "#include \"util.h\"\n#include \"config.h\"\nint util(void) { return N; }\n",
        "src/c.c": "#include \"config.h\"\nint c(void) { return N; }\n",
        "src/d.c": "#include <stdio.h>\nint d(void) { return puts(\"d\"); }\n",
    ]

    static func makeSource() throws -> URL {
        let dir = try makeProject(plan)
        for (path, text) in sources { try write(text, to: path, in: dir) }
        return dir
    }

    static func write(_ text: String, to path: String, in dir: URL) throws {
        let url = dir.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: false, encoding: .utf8)
    }

    /// What ran since the last call, sorted; clears the log.
    static func ran(in dir: URL) -> [String] {
        let log = dir.appendingPathComponent("ran.log")
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: log)
        return text.split(separator: "\n").map(String.init).sorted()
    }

    static func build(_ dir: URL, remote: String? = nil) throws -> PlanRunBinary.Result {
        var arguments = ["build", "plan.yaml"]
        if let remote { arguments += ["--remote-cache", remote] }
        return try PlanRunBinary.run(arguments, in: dir, environment: ["PLANRUN_REMOTE_CACHE": ""])
    }

    /// Builds and returns what ran, expecting success.
    static func built(_ dir: URL, remote: String? = nil, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> [String] {
        let result = try build(dir, remote: remote)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)", sourceLocation: sourceLocation)
        #expect(!result.stderr.contains("warning"), "\(result.stderr)", sourceLocation: sourceLocation)
        return ran(in: dir)
    }

    @Test func changingAHeaderRerunsExactlyTheObjectsThatIncludeIt() throws {
        let dir = try Self.makeSource()
        #expect(try Self.built(dir) == ["a", "b", "c", "d"])
        #expect(try Self.built(dir) == [])
        try Self.write("int util(void);\nint more(void);\n", to: "src/util.h", in: dir)
        let preview = try PlanRunBinary.run(["plan", "plan.yaml"], in: dir)
        #expect(preview.stdout.contains("run   a  shell  discovered input src/util.h changed"), "\(preview.stdout)")
        #expect(preview.stdout.contains("skip  c  shell  cached"), "\(preview.stdout)")
        let explain = try PlanRunBinary.run(["explain", "plan.yaml", "b"], in: dir)
        #expect(explain.stdout.hasPrefix("`b` would run: discovered input src/util.h changed"), "\(explain.stdout)")
        #expect(try Self.built(dir) == ["a", "b"])
        try Self.write("#define N 4\n", to: "src/config.h", in: dir)
        #expect(try Self.built(dir) == ["b", "c"])
        // Back to the first config.h: its set is still in the manifest, so the objects are restored, not compiled.
        try Self.write("#define N 3\n", to: "src/config.h", in: dir)
        let back = try Self.build(dir)
        #expect(back.status == 0)
        #expect(back.stdout.contains("restored b") && back.stdout.contains("restored c"), "\(back.stdout)")
        #expect(Self.ran(in: dir) == [])
    }

    @Test func deletingAHeaderAndItsIncludeRerunsWithoutAnError() throws {
        let dir = try Self.makeSource()
        #expect(try Self.built(dir) == ["a", "b", "c", "d"])
        try FileManager.default.removeItem(at: dir.appendingPathComponent("src/config.h"))
        try Self.write("#include \"util.h\"\nint util(void) { return 3; }\n", to: "src/b.c", in: dir)
        try Self.write("int c(void) { return 3; }\n", to: "src/c.c", in: dir)
        #expect(try Self.built(dir) == ["b", "c"])
        #expect(try Self.built(dir) == [])
    }

    @Test func theStampCoversDiscoveredInputs() async throws {
        let dir = try Self.makeSource()
        #expect(try Self.built(dir) == ["a", "b", "c", "d"])
        // Past the racy window, a no-op build writes the stamp, and the next one takes it.
        try await Task.sleep(for: .milliseconds(2100))
        #expect(try Self.built(dir) == [])
        let shortcut = try Self.build(dir)
        #expect(shortcut.stdout.contains("nothing changed since the last build"), "\(shortcut.stdout)")
        try Self.write("#define N 5\n", to: "src/config.h", in: dir)
        #expect(try Self.built(dir) == ["b", "c"])
    }

    @Test(.enabled(if: NginxServer.isInstalled, "nginx is not installed"))
    func aFreshCloneRestoresEveryObjectFromTheRemoteAndRerunsOnlyTheIncludersOfAChangedHeader() throws {
        let server = try NginxServer()
        defer { server.stop() }
        let source = try Self.makeSource()
        #expect(try Self.built(source, remote: server.url) == ["a", "b", "c", "d"])
        let manifests = server.storedFiles().filter { name in
            guard name.hasPrefix("ac/"),
                  let text = try? String(contentsOf: server.root.appendingPathComponent(name), encoding: .utf8)
            else { return false }
            return text.hasPrefix("{\"format\":\"planrun-discovered-1\"")
        }
        #expect(manifests.count == 4)

        let clone = try PlanRunBinary.temporaryDirectory()
        try FileManager.default.copyItem(at: source.appendingPathComponent("plan.yaml"), to: clone.appendingPathComponent("plan.yaml"))
        try FileManager.default.copyItem(at: source.appendingPathComponent("src"), to: clone.appendingPathComponent("src"))
        let fresh = try Self.build(clone, remote: server.url)
        #expect(fresh.status == 0, "\(fresh.stderr)")
        for id in ["a", "b", "c", "d"] { #expect(fresh.stdout.contains("restored \(id)"), "\(fresh.stdout)") }
        #expect(Self.ran(in: clone) == [])
        for id in ["a", "b", "c", "d"] {
            #expect(FileManager.default.contents(atPath: clone.appendingPathComponent("build/\(id).o").path)
                    == FileManager.default.contents(atPath: source.appendingPathComponent("build/\(id).o").path))
        }
        try Self.write("int util(void);\nint other(void);\n", to: "src/util.h", in: clone)
        #expect(try Self.built(clone, remote: server.url) == ["a", "b"])
        #expect(try Self.built(clone, remote: server.url) == [])

        // The source folder with the clone's util.h now finds the clone's
        // objects on the remote: nothing compiles.
        try Self.write("int util(void);\nint other(void);\n", to: "src/util.h", in: source)
        let back = try Self.build(source, remote: server.url)
        #expect(back.status == 0, "\(back.stderr)")
        #expect(back.stdout.contains("restored a") && back.stdout.contains("restored b"), "\(back.stdout)")
        #expect(Self.ran(in: source) == [])
    }

    @Test func aMissingDepfileFailsTheAttemptAndNothingIsRecorded() throws {
        let dir = try makeProject("""
            version: 1
            subtasks:
              - id: gen
                run: echo gen >> ran.log && echo x > out.txt
                outputs: [out.txt]
                depfile: deps/out.d
            """)
        for _ in 0..<2 {
            let result = try Self.build(dir)
            #expect(result.status == 1)
            #expect(result.stdout.contains("FAILED gen: depfile deps/out.d: no such file (the subtask did not write it)"),
                    "\(result.stdout)")
            #expect(Self.ran(in: dir) == ["gen"])
        }
        try Self.write("out.txt: in.txt\nin.txt", to: "deps/out.d", in: dir)
        let unparsable = try Self.build(dir)
        #expect(unparsable.status == 1)
        #expect(unparsable.stdout.contains("depfile deps/out.d:2:7: expected `:` after the targets"), "\(unparsable.stdout)")
    }

    @Test func pathsWithSpacesAndThousandsOfDiscoveredInputs() throws {
        let dir = try makeProject("""
            version: 1
            subtasks:
              - id: spaced
                run: echo spaced >> ran.log && mkdir -p "my build" && cc -MD -MF "my build/s p.d" -c "src dir/s p.c" -o "my build/s p.o"
                inputs: ["src dir/s p.c"]
                outputs: ["my build/s p.o"]
                depfile: my build/s p.d
              - id: many
                run: echo many >> ran.log && cp many.list many.d && echo done > many.out
                outputs: [many.out]
                depfile: many.d
            """)
        try Self.write("#include \"my header.h\"\nint s(void) { return H; }\n", to: "src dir/s p.c", in: dir)
        try Self.write("#define H 1\n", to: "src dir/my header.h", in: dir)
        var list = "many.out: \\\n"
        for i in 0..<3000 {
            try Self.write("\(i)\n", to: "h/header \(i).h", in: dir)
            list += " h/header\\ \(i).h \\\n"
        }
        try Self.write(list + "\n", to: "many.list", in: dir)
        #expect(try Self.built(dir) == ["many", "spaced"])
        #expect(try Self.built(dir) == [])
        try Self.write("#define H 2\n", to: "src dir/my header.h", in: dir)
        try Self.write("changed\n", to: "h/header 2999.h", in: dir)
        let preview = try PlanRunBinary.run(["plan", "plan.yaml"], in: dir)
        #expect(preview.stdout.contains("discovered input src dir/my header.h changed"), "\(preview.stdout)")
        #expect(preview.stdout.contains("discovered input h/header 2999.h changed"), "\(preview.stdout)")
        #expect(try Self.built(dir) == ["many", "spaced"])
        #expect(try Self.built(dir) == [])
    }

    @Test func filesOutsideThePlanFolderAreHashedButNeverWritten() throws {
        let root = try PlanRunBinary.temporaryDirectory()
        let project = root.appendingPathComponent("project")
        try FileManager.default.createDirectory(at: project, withIntermediateDirectories: true)
        try Self.write("#define SYS 1\n", to: "system/sys.h", in: root)
        try Self.write("#define SHARED 1\n", to: "shared.h", in: root)
        let system = root.appendingPathComponent("system/sys.h").path
        try """
            version: 1
            subtasks:
              - id: x
                run: |
                  echo x >> ran.log && printf 'x.out: %s ../shared.h\\n' '\(system)' > x.d && echo x > x.out
                outputs: [x.out]
                depfile: x.d
            """.write(to: project.appendingPathComponent("plan.yaml"), atomically: true, encoding: .utf8)
        func outside() throws -> [String: Data] {
            var out: [String: Data] = [:]
            for path in ["system/sys.h", "shared.h"] {
                out[path] = try Data(contentsOf: root.appendingPathComponent(path))
            }
            return out
        }
        let listing = { try FileManager.default.subpathsOfDirectory(atPath: root.path).filter { !$0.hasPrefix("project") }.sorted() }
        let before = try listing()
        let contents = try outside()
        #expect(try Self.built(project) == ["x"])
        #expect(try Self.built(project) == [])
        try Self.write("#define SYS 2\n", to: "system/sys.h", in: root)
        let preview = try PlanRunBinary.run(["plan", "plan.yaml"], in: project)
        #expect(preview.stdout.contains("discovered input \(system) changed"), "\(preview.stdout)")
        #expect(try Self.built(project) == ["x"])
        try Self.write("#define SHARED 2\n", to: "shared.h", in: root)
        let relative = try PlanRunBinary.run(["plan", "plan.yaml"], in: project)
        #expect(relative.stdout.contains("discovered input ../shared.h changed"), "\(relative.stdout)")
        #expect(try Self.built(project) == ["x"])
        // planrun wrote nothing outside the plan's folder.
        #expect(try listing() == before)
        var expected = contents
        expected["system/sys.h"] = Data("#define SYS 2\n".utf8)
        expected["shared.h"] = Data("#define SHARED 2\n".utf8)
        #expect(try outside() == expected)
    }

    @Test func anIncludedSubtasksDepfileAndWhatItListsAreInItsOwnFolder() throws {
        let dir = try makeProject("""
            version: 1
            includes:
              lib: lib/plan.yaml
            subtasks:
              - id: top
                depends_on: [lib/obj]
                run: "true"
            """)
        try Self.write("""
            version: 1
            subtasks:
              - id: obj
                run: echo obj >> ../ran.log && mkdir -p build && cc -MD -MF build/obj.d -c src/obj.c -o build/obj.o
                inputs: [src/obj.c]
                outputs: [build/obj.o]
                depfile: build/obj.d
            """, to: "lib/plan.yaml", in: dir)
        try Self.write("#include \"obj.h\"\nint obj(void) { return V; }\n", to: "lib/src/obj.c", in: dir)
        try Self.write("#define V 1\n", to: "lib/src/obj.h", in: dir)
        #expect(try Self.built(dir) == ["obj"])
        #expect(try Self.built(dir) == [])
        try Self.write("#define V 2\n", to: "lib/src/obj.h", in: dir)
        let preview = try PlanRunBinary.run(["plan", "plan.yaml"], in: dir)
        #expect(preview.stdout.contains("discovered input lib/src/obj.h changed"), "\(preview.stdout)")
        #expect(try Self.built(dir) == ["obj"])
    }

    @Test func aDepfileOutsideThePlanFolderOrInTheStateFolderIsAnError() throws {
        let dir = try makeProject("""
            version: 1
            subtasks:
              - id: a
                run: "true"
                depfile: ../a.d
              - id: b
                run: "true"
                depfile: .planrun/b.d
            """)
        let result = try PlanRunBinary.run(["validate", "plan.yaml"], in: dir)
        #expect(result.status == 2)
        #expect(result.stderr.contains("plan.yaml:5:14: error: invalid value `../a.d` for `depfile`; expected a path inside the plan's folder"),
                "\(result.stderr)")
        #expect(result.stderr.contains("plan.yaml:8:14: error:"), "\(result.stderr)")
    }
}

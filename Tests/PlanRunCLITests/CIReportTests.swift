#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A JUnit report as python3's `xml.etree.ElementTree` (a real XML parser)
/// reads it, for end-to-end checks of `--report`.
struct ParsedJUnit: Decodable {
    struct Case: Decodable {
        var classname: String
        var name: String
        var time: String
        /// passed, failure or skipped.
        var outcome: String
        var message: String?
        var body: String?
        var properties: [String: String]
        var systemOut: String?
    }
    var root: String
    var suite: [String: String]
    var cases: [Case]

    static let script = #"""
        import json, sys, xml.etree.ElementTree as ET
        root = ET.parse(sys.argv[1]).getroot()
        suite = root.find("testsuite")
        cases = []
        for c in suite.findall("testcase"):
            failure, skipped = c.find("failure"), c.find("skipped")
            node = failure if failure is not None else skipped
            out = c.find("system-out")
            cases.append({
                "classname": c.get("classname"), "name": c.get("name"), "time": c.get("time"),
                "outcome": "failure" if failure is not None else "skipped" if skipped is not None else "passed",
                "message": node.get("message") if node is not None else None,
                "body": node.text if node is not None else None,
                "properties": {p.get("name"): p.get("value") for p in c.findall("properties/property")},
                "systemOut": out.text if out is not None else None,
            })
        print(json.dumps({"root": root.tag, "suite": dict(suite.attrib), "cases": cases}))
        """#

    /// Parses `file` with python3; fails the test when it is not well-formed.
    static func parse(_ file: URL) throws -> ParsedJUnit {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, file.path]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "python3 could not parse the report: \(String(decoding: errors, as: UTF8.self))")
        return try JSONDecoder().decode(ParsedJUnit.self, from: data)
    }

    func `case`(_ name: String) -> Case? { cases.first { $0.name == name } }
}

@Suite struct CIReportTests {
    /// A success, a failure with (binary and markup) output, its blocked
    /// dependent, one subtask that is cached on the second run and one that
    /// always runs.
    static let plan = """
        version: 1
        name: ci
        subtasks:
          - id: fine
            run: echo built > fine.txt
            outputs: [fine.txt]
          - id: broken
            run: |
              echo "compiling <main.c> & friends"
              printf 'bin:\\001\\002\\033[31mred\\033[0m\\377\\n'
              echo "cc: error: it broke" >&2
              exit 3
          - id: after
            depends_on: [broken]
            run: echo never
          - id: always
            cache: false
            run: echo "always runs"

        """

    @Test func junitReportOfAFailedBuild() throws {
        let dir = try makeProject(Self.plan)
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try PlanRunBinary.run(["build", "-k"], in: dir)
        #expect(first.status == 1)

        let second = try PlanRunBinary.run(["build", "-k", "--report", "reports/junit.xml"], in: dir)
        #expect(second.status == 1, "the report does not change the exit code")
        let report = try ParsedJUnit.parse(dir.appendingPathComponent("reports/junit.xml"))
        #expect(report.root == "testsuites")
        #expect(report.suite["name"] == "ci")
        #expect(report.suite["tests"] == "4")
        #expect(report.suite["failures"] == "1")
        #expect(report.suite["errors"] == "0")
        #expect(report.suite["skipped"] == "1")
        #expect(report.suite["timestamp"]?.hasSuffix("Z") == true)
        #expect(report.cases.map(\.name) == ["fine", "broken", "after", "always"])
        #expect(report.cases.allSatisfy { $0.classname == "ci" && Double($0.time) != nil })

        let fine = try #require(report.case("fine"))
        #expect(fine.outcome == "passed")
        #expect(fine.properties == ["planrun.status": "cached"])
        #expect(fine.systemOut == "cached")

        let broken = try #require(report.case("broken"))
        #expect(broken.outcome == "failure")
        #expect(broken.message == "exit status 3")
        let body = try #require(broken.body)
        // Both runs' attempts are in this run's log only once: the log is per
        // run. It starts with the command line, which holds the text too.
        #expect(body.hasPrefix("$ echo \"compiling <main.c> & friends\"\n"), "\(body.debugDescription)")
        #expect(body.components(separatedBy: "\ncc: error: it broke\n").count == 2)
        #expect(body.contains("compiling <main.c> & friends\n"))
        #expect(body.contains("bin:\u{FFFD}\u{FFFD}red\u{FFFD}\n"), "control bytes replaced, colours dropped: \(body.debugDescription)")

        let after = try #require(report.case("after"))
        #expect(after.outcome == "skipped")
        #expect(after.message == "blocked: dependency `broken` failed")

        let always = try #require(report.case("always"))
        #expect(always.outcome == "passed")
        #expect(always.properties.isEmpty)
        #expect(always.systemOut == "always runs\n")

        // No temporary file is left beside the report.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("reports").path) == ["junit.xml"])
    }

    @Test func junitReportOfACancelledBuild() async throws {
        let dir = try makeProject("""
            version: 1
            subtasks:
              - id: slow
                run: touch started; sleep 300
              - id: next
                depends_on: [slow]
                run: echo next

            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try BackgroundPlanRun(["build", "--report", "junit.xml"], in: dir)
        #expect(try await eventually { FileManager.default.fileExists(atPath: dir.appendingPathComponent("started").path) })
        kill(run.pid, SIGINT)
        let result = try await run.wait()
        #expect(result.status == 130)
        let report = try ParsedJUnit.parse(dir.appendingPathComponent("junit.xml"))
        #expect(report.suite["tests"] == "2")
        #expect(report.suite["skipped"] == "2")
        #expect(report.suite["failures"] == "0")
        #expect(report.cases.map(\.outcome) == ["skipped", "skipped"])
        #expect(report.cases.allSatisfy { $0.message?.hasPrefix("cancelled") == true })
    }

    @Test func successfulRetryWritesAReport() throws {
        let dir = try makeProject("""
            version: 1
            subtasks:
              - id: flaky
                run: test -f ok

            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try PlanRunBinary.run(["build"], in: dir).status == 1)
        #expect(FileManager.default.createFile(atPath: dir.appendingPathComponent("ok").path, contents: Data()))
        let retry = try PlanRunBinary.run(["retry", "--report", "junit.xml"], in: dir)
        #expect(retry.status == 0, "\(retry.stderr)")
        let report = try ParsedJUnit.parse(dir.appendingPathComponent("junit.xml"))
        #expect(report.suite["failures"] == "0")
        #expect(report.cases.map(\.outcome) == ["passed"])
    }

    @Test func unwritableReportFailsASuccessfulBuild() throws {
        let dir = try makeProject("""
            version: 1
            subtasks:
              - id: a
                run: "true"

            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(FileManager.default.createFile(atPath: dir.appendingPathComponent("file").path, contents: Data()))
        let result = try PlanRunBinary.run(["build", "--report", "file/junit.xml"], in: dir)
        #expect(result.status == 1)
        #expect(result.stderr.contains("error: cannot write the report `file/junit.xml`: cannot create the folder `"))

        let dryRun = try PlanRunBinary.run(["build", "--dry-run", "--report", "junit.xml"], in: dir)
        #expect(dryRun.status == 64)
        #expect(dryRun.stderr.contains("`--report` cannot be used with `--dry-run`"))
    }

    @Test func githubActionsGroupsAndAnnotations() throws {
        let dir = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ci = dir.appendingPathComponent("ci")
        try FileManager.default.createDirectory(at: ci, withIntermediateDirectories: true)
        try Self.plan.write(to: ci.appendingPathComponent("plan.yaml"), atomically: true, encoding: .utf8)
        let environment = ["GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": dir.path]
        let result = try PlanRunBinary.run(["build", "-k", "ci/plan.yaml"], in: dir, environment: environment)
        #expect(result.status == 1)
        let out = result.stdout
        #expect(out.contains("::group::always (done)\nalways runs\n::endgroup::\n"), "\(out)")
        #expect(out.contains("::group::broken (failed)\ncompiling <main.c> & friends\n"))
        // `broken` is the second item of the plan, on line 7.
        #expect(out.contains(
            "::endgroup::\n::error title=planrun%3A broken failed,file=ci/plan.yaml,line=7::subtask `broken` failed: exit status 3%0A"))
        #expect(out.components(separatedBy: "::group::").count == out.components(separatedBy: "::endgroup::").count)
        // Every line of a subtask's output is inside a group.
        var inGroup = false
        for line in out.split(separator: "\n") {
            if line.hasPrefix("::group::") { inGroup = true } else if line == "::endgroup::" { inGroup = false }
            if !line.hasPrefix("::error"), line.contains("always runs") || line.contains("it broke") {
                #expect(inGroup, "\(line) is outside a group")
            }
        }

        // Without GITHUB_ACTIONS: no workflow commands.
        let plain = try PlanRunBinary.run(["build", "-k", "ci/plan.yaml"], in: dir)
        #expect(plain.status == 1)
        #expect(!plain.stdout.contains("::group::") && !plain.stdout.contains("::error"))
    }

    @Test func githubActionsAnnotatesPlanDiagnostics() throws {
        let dir = try makeProject("""
            version: 1
            subtasks:
              - id: a
                run: echo a
                dependson: [b]
              - id: b
                agent: codr
                run: echo b

            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        let environment = ["GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": dir.path]
        for command in [["build"], ["validate", "plan.yaml"]] {
            let result = try PlanRunBinary.run(command, in: dir, environment: environment)
            #expect(result.status == 2)
            let plain = try PlanRunBinary.run(command, in: dir)
            // The usual rendering comes first, unchanged, then one annotation per diagnostic.
            #expect(result.stderr.hasPrefix(plain.stderr))
            let annotations = result.stderr.split(separator: "\n").filter { $0.hasPrefix("::") }
            #expect(annotations == [
                "::error file=plan.yaml,line=5,col=5::unknown key `dependson` in subtask `a`; did you mean `depends_on`?",
                "::error file=plan.yaml,line=7,col=12::agent `codr` is not defined",
            ], "\(result.stderr)")
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import PlanRunCore

/// The executor's per-run shortcuts give the child exactly what the plain
/// request would: the context bytes rendered from parts equal
/// `JSONValue.canonicalJSON`, and a prebuilt environment with overrides
/// equals the merged dictionary.
@Suite struct ExecutionPrebuiltRequestTests {
    struct ContextCase: Sendable, CustomTestStringConvertible {
        var name: String
        var context: SubtaskContext
        var testDescription: String { name }
    }

    static let contextCases: [ContextCase] = [
        ContextCase(name: "no dependencies", context: SubtaskContext(
            subtaskID: "t0", plan: "throughput", planGoal: nil, description: nil, dependencies: [],
            metadata: .object([:]), attempt: 1, runID: "r1")),
        ContextCase(name: "dependencies out of order, goal, metadata", context: SubtaskContext(
            subtaskID: "d", plan: "release", planGoal: "ship it", description: "the last step",
            dependencies: [
                .init(id: "b", description: nil, agent: "shell", status: "done", result: "ok\n"),
                .init(id: "a", description: "first", agent: "coder", status: "cached", result: ""),
            ],
            metadata: .object(["files": .array([.string("src/x.swift")]), "n": .int(3), "f": .double(1.5),
                               "flag": .bool(true), "none": .null]),
            attempt: 2, runID: "r2")),
        ContextCase(name: "escapes and unicode", context: SubtaskContext(
            subtaskID: "u", plan: "p\"q\\r", planGoal: "tab\there\nnew\r\u{01}\u{1F}\u{7F}",
            description: "héllo ✓ 😀 \u{2028}",
            dependencies: [.init(id: "x", description: "\"quoted\"", agent: "shell", status: "done",
                                 result: "bin\u{00}ary\u{1B}[0m")],
            metadata: .object(["k\n": .string("v\u{08}")]), attempt: 10, runID: "r\u{0C}3")),
        ContextCase(name: "foreach instance", context: {
            var c = SubtaskContext(
                subtaskID: "compile:src/My File.c", plan: "p", planGoal: nil, description: nil, dependencies: [],
                metadata: .object([:]), attempt: 1, runID: "r")
            c.item = "src/My File.c"
            return c
        }()),
        ContextCase(name: "matrix instance", context: {
            var c = SubtaskContext(
                subtaskID: "test:3.10,fast", plan: "p", planGoal: nil, description: nil, dependencies: [],
                metadata: .object(["x": .int(1)]), attempt: 1, runID: "r")
            c.matrix = [MatrixValue(name: "python", value: "3.10"), MatrixValue(name: "mode", value: "fast")]
            return c
        }()),
    ]

    @Test(arguments: contextCases)
    func contextBytesAreCanonicalJSON(_ testCase: ContextCase) {
        let expected = Array(testCase.context.value.canonicalJSON.utf8)
        #expect(testCase.context.canonicalJSON == expected)
        let request = AttemptRequest(
            subtask: Subtask(id: "t", agent: "shell", run: "true"), agent: .builtinShell, attempt: 1, runID: "r",
            workingDirectory: "/", baseEnvironment: SpawnEnvironment([:]), environment: [:],
            context: testCase.context)
        #expect(request.contextJSON == expected)
        #expect(request.context == testCase.context.value)
    }

    @Test func requestEnvironmentMergesOverrides() {
        let base = SpawnEnvironment(["A": "1", "B": "2", "PATH": "/bin"])
        var request = AttemptRequest(
            subtask: Subtask(id: "t", agent: "shell", run: "true"), agent: .builtinShell, attempt: 1, runID: "r",
            workingDirectory: "/", baseEnvironment: base, environment: ["B": "two", "C": "3"],
            context: ExecutionPrebuiltRequestTests.contextCases[0].context)
        #expect(request.environment == ["A": "1", "B": "two", "C": "3", "PATH": "/bin"])
        #expect(request.environmentValue("B") == "two")
        #expect(request.environmentValue("PATH") == "/bin")
        #expect(request.environmentValue("D") == nil)
        request.environment = ["X": "y"]
        #expect(request.baseEnvironment == nil)
        #expect(request.environment == ["X": "y"])
    }

    /// A real child sees the base entries, the overrides replacing
    /// same-named base entries (once, not twice), and no invalid key.
    @Test func childSeesBaseWithOverrides() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("planrun-prebuilt-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let base = SpawnEnvironment([
            "PATH": "/usr/bin:/bin", "KEEP": "base", "REPLACED": "base", "UNICODE": "héllo ✓",
            "BAD=KEY": "skipped", "": "skipped too",
        ])
        let request = AttemptRequest(
            subtask: Subtask(id: "t", agent: "shell", run: "env -0"), agent: .builtinShell, attempt: 1, runID: "r",
            workingDirectory: dir, baseEnvironment: base,
            environment: ["REPLACED": "override", "NEW": "a=b", "ALSO=BAD": "x"],
            context: ExecutionPrebuiltRequestTests.contextCases[1].context,
            contextPath: dir + "/t.context.json", resultPath: dir + "/t.result", logPath: dir + "/t.log")
        let outcome = await ProcessCommandRunner().run(request)
        #expect(outcome.status == .succeeded)
        let entries = outcome.result.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        #expect(entries.filter { $0.hasPrefix("REPLACED=") } == ["REPLACED=override"])
        #expect(entries.contains("KEEP=base"))
        #expect(entries.contains("UNICODE=héllo ✓"))
        #expect(entries.contains("NEW=a=b"))
        #expect(entries.contains("PATH=/usr/bin:/bin"))
        #expect(!entries.contains { $0.hasPrefix("BAD") || $0.hasPrefix("ALSO") || $0.hasPrefix("=") })
        // The context file holds the rendered bytes and a newline.
        let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/t.context.json")))
        #expect(written == Array(ExecutionPrebuiltRequestTests.contextCases[1].context.value.canonicalJSON.utf8) + [0x0A])
    }
}

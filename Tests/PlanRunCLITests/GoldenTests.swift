import Foundation
import Testing

/// One end-to-end scenario: `Tests/Fixtures/<name>/` holds the plan, `args`
/// (the command line, one argument per line), and the expected
/// `expected.stdout`, `expected.stderr` and `expected.status`.
/// Set `PLANRUN_UPDATE_GOLDEN=1` to rewrite the expectations.
struct GoldenScenario: Sendable, CustomTestStringConvertible {
    var name: String
    var testDescription: String { name }

    static var all: [GoldenScenario] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: PlanRunBinary.fixtures.path)) ?? []
        return names.sorted()
            .filter { FileManager.default.fileExists(atPath: PlanRunBinary.fixtures.appendingPathComponent("\($0)/args").path) }
            .map(GoldenScenario.init(name:))
    }
}

@Suite struct GoldenTests {
    @Test(arguments: GoldenScenario.all)
    func scenario(_ scenario: GoldenScenario) throws {
        let dir = PlanRunBinary.fixtures.appendingPathComponent(scenario.name)
        let args = try String(contentsOf: dir.appendingPathComponent("args"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        let before = try snapshot(dir)
        let result = try PlanRunBinary.run(args, in: dir)
        let stdoutURL = dir.appendingPathComponent("expected.stdout")
        let stderrURL = dir.appendingPathComponent("expected.stderr")
        let statusURL = dir.appendingPathComponent("expected.status")
        if ProcessInfo.processInfo.environment["PLANRUN_UPDATE_GOLDEN"] == "1" {
            try result.stdout.write(to: stdoutURL, atomically: true, encoding: .utf8)
            try result.stderr.write(to: stderrURL, atomically: true, encoding: .utf8)
            try "\(result.status)\n".write(to: statusURL, atomically: true, encoding: .utf8)
            return
        }
        #expect(result.stdout == (try String(contentsOf: stdoutURL, encoding: .utf8)))
        #expect(result.stderr == (try String(contentsOf: stderrURL, encoding: .utf8)))
        let status = try String(contentsOf: statusURL, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect("\(result.status)" == status)
        // These commands are read-only: the scenario folder is unchanged.
        #expect(try snapshot(dir) == before)
    }

    /// Names and sizes of everything under `dir`.
    private func snapshot(_ dir: URL) throws -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: dir.path)
        var entries: [String] = []
        while let path = enumerator?.nextObject() as? String {
            let attributes = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent(path).path)
            entries.append("\(path) \(attributes[.size] ?? 0)")
        }
        return entries.sorted()
    }
}

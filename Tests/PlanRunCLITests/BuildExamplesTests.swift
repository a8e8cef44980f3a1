import Foundation
import Testing

/// Every plan under `examples/` builds for real (in a scratch copy, so the
/// repository stays clean), and a second build finds nothing failing.
@Suite(.serialized) struct BuildExamplesTests {
    static var examples: [String] {
        let root = PlanRunBinary.examples.path
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: "\(root)/\($0)/plan.yaml") }.sorted()
    }

    @Test(arguments: examples) func exampleBuilds(_ name: String) throws {
        let scratch = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let copy = scratch.appendingPathComponent(name)
        try FileManager.default.copyItem(at: PlanRunBinary.examples.appendingPathComponent(name), to: copy)
        try? FileManager.default.removeItem(at: copy.appendingPathComponent(".planrun"))
        let r = try PlanRunBinary.run(["build", "--json", "plan.yaml"], in: copy)
        #expect(r.status == 0, "example \(name) failed:\n\(r.stdout)\n\(r.stderr)")
        let json = try parseJSON(r.stdout)
        #expect(json["status"] as? String == "completed")
        #expect(json["failed"] as? Int == 0)
        let again = try PlanRunBinary.run(["build", "--json", "plan.yaml"], in: copy)
        #expect(again.status == 0, "second build of \(name) failed:\n\(again.stderr)")
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import PlanRunCore

/// Crash safety of the cache and the state: `planrun build` killed with SIGKILL at
/// random moments in a chain of steps. After each kill, a rerun skips
/// exactly the steps whose success was recorded before the kill, runs the
/// others, ends with correct outputs, and the state stays readable.
@Suite(.serialized) struct CacheCrashTests {
    static let steps = 8

    static func plan() -> String {
        var text = "version: 1\nsubtasks:\n"
        for k in 1...steps {
            let source = k == 1 ? "seed.txt" : "step\(k - 1).txt"
            text += "  - id: step\(k)\n"
            text += "    run: sleep 0.04 && cat \(source) > step\(k).tmp && echo \(k) >> step\(k).tmp && mv step\(k).tmp step\(k).txt\n"
            text += "    outputs: [step\(k).txt]\n"
            text += k == 1 ? "    inputs: [seed.txt]\n" : "    depends_on: [step\(k - 1)]\n"
        }
        return text
    }

    /// What `stepK.txt` holds after a correct build from `seed`.
    static func expected(_ k: Int, seed: String) -> String {
        seed + (1...k).map { "\($0)\n" }.joined()
    }

    static func summary(_ stdout: String) throws -> [String: String] {
        let json = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
        let results = try #require(json["results"] as? [String: [String: Any]])
        return results.compactMapValues { $0["status"] as? String }
    }

    @Test func sigkillAtRandomMomentsNeverLosesOrFakesWork() async throws {
        let dir = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(Self.plan().utf8).write(to: dir.appendingPathComponent("plan.yaml"))
        let stateDir = dir.appendingPathComponent(".planrun").path

        // Caching must be wired into `build` for this test to mean anything.
        try Data("warm-up\n".utf8).write(to: dir.appendingPathComponent("seed.txt"))
        let clock = ContinuousClock()
        let firstBuildStart = clock.now
        #expect(try PlanRunBinary.run(["build"], in: dir).status == 0)
        // Kills are spread over the time a whole build takes on this
        // machine (at least 600 ms), so that some land between steps on a
        // loaded machine too.
        let buildTime = clock.now - firstBuildStart
        let window = max(600, Int(buildTime.components.seconds * 1000 + buildTime.components.attoseconds / 1_000_000_000_000_000) * 5 / 4)
        let warm = try PlanRunBinary.run(["build", "--json"], in: dir)
        try #require(try Self.summary(warm.stdout).values.allSatisfy { $0 == "cached" },
                     "a second build did not skip anything: `planrun build` does not use the content cache")

        var generator = SystemRandomNumberGenerator()
        var killedMidway = 0
        for iteration in 1...24 {
            let seed = "seed \(iteration)\n"
            try Data(seed.utf8).write(to: dir.appendingPathComponent("seed.txt"))
            let run = try BackgroundPlanRun(["build"], in: dir)
            let delay = Int.random(in: 0...window, using: &generator)
            try await Task.sleep(for: .milliseconds(delay))
            kill(run.pid, SIGKILL)
            _ = try await run.wait()
            // Orphaned steps finish by themselves; let them, as after a real crash.
            try await Task.sleep(for: .milliseconds(150))

            // Steps whose success was recorded for this seed, read from the state.
            let database = try #require(try ContentCache.openReadOnly(stateDirectory: stateDir))
            let history = DatabaseSubtaskHistory(reader: database, writer: nil)
            var recorded = Set<String>()
            for k in 1...Self.steps {
                let digest = Digest.sha256Hex(Array(Self.expected(k, seed: seed).utf8))
                if let entry = try history.entry(for: "step\(k)"), entry.outputs.first?.digest == digest {
                    recorded.insert("step\(k)")
                }
            }
            if !recorded.isEmpty && recorded.count < Self.steps { killedMidway += 1 }
            // A kill between writing the store's `ac/KEY` and the history row
            // leaves a complete cache entry without history: the rerun may
            // then restore that step (`cached`) instead of running it.
            let stored = Self.storedOutputs(stateDir)

            let rerun = try PlanRunBinary.run(["build", "--json"], in: dir)
            #expect(rerun.status == 0, "iteration \(iteration): \(rerun.stderr)")
            let statuses = try Self.summary(rerun.stdout)
            for k in 1...Self.steps {
                let id = "step\(k)"
                let digest = Digest.sha256Hex(Array(Self.expected(k, seed: seed).utf8))
                let allowed: Set<String> = recorded.contains(id) ? ["cached"]
                    : stored.contains("step\(k).txt \(digest)") ? ["done", "cached"] : ["done"]
                #expect(allowed.contains(statuses[id] ?? "-"),
                        "iteration \(iteration), killed after \(delay) ms: \(id) recorded=\(recorded.contains(id)) status=\(statuses[id] ?? "-")")
                let content = String(decoding: try Data(contentsOf: dir.appendingPathComponent("step\(k).txt")), as: UTF8.self)
                #expect(content == Self.expected(k, seed: seed), "iteration \(iteration): step\(k).txt")
            }
            let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: stateDir + "/cache/tmp")) ?? []
            #expect(leftovers.isEmpty, "iteration \(iteration): temporary files left in cache/tmp: \(leftovers)")
            let status = try PlanRunBinary.run(["status", "--json"], in: dir)
            #expect(status.status == 0, "iteration \(iteration): status unreadable: \(status.stderr)")
        }
        #expect(killedMidway >= 3, "too few kills landed between steps to test anything")
    }

    /// `PATH DIGEST` of every output named by an action result in the local store.
    static func storedOutputs(_ stateDir: String) -> Set<String> {
        let acDir = stateDir + "/cache/ac"
        var out = Set<String>()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: acDir)) ?? [] {
            guard let data = FileManager.default.contents(atPath: acDir + "/" + name),
                  let entry = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let outputs = entry["outputs"] as? [[String: Any]] else { continue }
            for output in outputs {
                if let path = output["path"] as? String, let digest = output["digest"] as? String {
                    out.insert("\(path) \(digest)")
                }
            }
        }
        return out
    }
}

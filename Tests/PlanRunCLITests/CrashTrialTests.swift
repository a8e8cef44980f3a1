import Foundation
import Testing

/// The crash trial (`tests/crash-trial.sh`, issue 10): random `kill -9`
/// points during builds, each followed by a rebuild compared with a clean
/// reference build. 20 trials here; `PLANRUN_CRASH_TRIALS=200` for the long run.
@Suite struct CrashTrialTests {
    @Test(.timeLimit(.minutes(30))) func randomKillsLeaveNothingBehind() async throws {
        let trials = ProcessInfo.processInfo.environment["PLANRUN_CRASH_TRIALS"] ?? "20"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [PlanRunBinary.packageRoot.appendingPathComponent("tests/crash-trial.sh").path, trials]
        var env = ProcessInfo.processInfo.environment
        env["PLANRUN"] = PlanRunBinary.url.path
        process.environment = env
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        // Waited for off the cooperative pool: the trial takes about a minute.
        let text = try await PlanRunBinary.offThePool {
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return text
        }
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("crash trial: \(trials) trials"), "\(text)")
    }
}

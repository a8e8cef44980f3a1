#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import PlanRunCore

/// The child's environment and argv as `ProcessSpawner` builds them (one C
/// buffer per spawn), and the result file read with plain `open`/`read`.
@Suite struct ExecutionSpawnEnvironmentTests {
    /// Removed with the suite's value, when the test ends.
    let temp = CachingTempDir()
    var dir: String { temp.path }

    func request(_ run: String, environment: [String: String]) -> AttemptRequest {
        AttemptRequest(
            subtask: Subtask(id: "t", agent: "shell", run: run), agent: .builtinShell, attempt: 1, runID: "r1",
            workingDirectory: dir, environment: environment, context: .object([:]),
            contextPath: dir + "/t.context.json", resultPath: dir + "/t.result", logPath: dir + "/t.log")
    }

    @Test func childSeesExactlyTheValidEntries() async throws {
        let environment = [
            "PATH": "/usr/bin:/bin", "EMPTY": "", "UNICODE": "héllo wörld ✓", "WITH_EQ": "a=b=c",
            "BAD=KEY": "skipped", "": "skipped too",
        ]
        // `env -0`: NUL-separated, so values with newlines or `=` stay exact.
        let outcome = await ProcessCommandRunner().run(request("env -0", environment: environment))
        #expect(outcome.status == .succeeded)
        let entries = outcome.result.split(separator: 0, omittingEmptySubsequences: true)
            .map { String(decoding: $0, as: UTF8.self) }
        var seen: [String: String] = [:]
        for entry in entries {
            let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            seen[String(parts[0])] = parts.count > 1 ? String(parts[1]) : nil
        }
        #expect(seen["PATH"] == "/usr/bin:/bin")
        #expect(seen["EMPTY"] == "")
        #expect(seen["UNICODE"] == "héllo wörld ✓")
        #expect(seen["WITH_EQ"] == "a=b=c")
        #expect(seen["BAD"] == nil)
        #expect(!entries.contains { $0.hasPrefix("=") })
    }

    @Test func emptyEnvironmentStillRuns() async {
        let outcome = await ProcessCommandRunner().run(request("/usr/bin/env", environment: [:]))
        #expect(outcome.status == .succeeded)
        // sh may add PWD/SHLVL/_ of its own, but none of planrun's.
        #expect(!String(decoding: outcome.result, as: UTF8.self).contains("PATH="))
    }

    @Test func argumentsArePassedExactly() throws {
        let spawned = try ProcessSpawner.spawn(
            path: "/usr/bin/printf", arguments: ["printf", "%s|%s|%s", "", "é=1", "a b"], environment: ["X=1"],
            workingDirectory: dir, standardInput: nil).get()
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        var pfd = pollfd(fd: spawned.stdout, events: Int16(POLLIN), revents: 0)
        while true {
            _ = poll(&pfd, 1, 2000)
            let n = read(spawned.stdout, &buffer, buffer.count)
            if n > 0 { bytes += buffer[0..<n] } else if n < 0 && errno == EAGAIN { continue } else { break }
        }
        var status: Int32 = 0
        _ = waitpid(spawned.pid, &status, 0)
        close(spawned.stdout); close(spawned.stderr)
        if spawned.pidfd >= 0 { close(spawned.pidfd) }
        #expect(String(decoding: bytes, as: UTF8.self) == "|é=1|a b")
    }

    @Test func largeResultFileIsReadAndTruncatedToTheLimit() async throws {
        let limit = AttemptOutcome.resultLimit
        let outcome = await ProcessCommandRunner().run(request(
            "head -c \(limit + 5000) /dev/zero | tr '\\0' x > \"$PLANRUN_RESULT\"",
            environment: ["PATH": "/usr/bin:/bin", "PLANRUN_RESULT": dir + "/t.result"]))
        #expect(outcome.status == .succeeded)
        #expect(outcome.result.count == limit)
        #expect(outcome.result.allSatisfy { $0 == UInt8(ascii: "x") })
    }

    @Test func emptyResultFileIsAnEmptyResultNotStdout() async {
        let outcome = await ProcessCommandRunner().run(request(
            "echo noise; : > \"$PLANRUN_RESULT\"",
            environment: ["PATH": "/usr/bin:/bin", "PLANRUN_RESULT": dir + "/t.result"]))
        #expect(outcome.status == .succeeded)
        #expect(outcome.result.isEmpty)
    }
}

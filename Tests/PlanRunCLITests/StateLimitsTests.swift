#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Bounded logs and errors never swallowed, end to end: bounded logs, state errors
/// that fail the build, and one verdict on a damaged state database.
@Suite struct StateLimitsTests {
    /// The log files of the newest run in `project`'s state folder.
    static func logs(_ project: URL) throws -> [URL] {
        let root = project.appendingPathComponent(".planrun/logs")
        let runs = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
        let run = root.appendingPathComponent(try #require(runs.last))
        return try FileManager.default.contentsOfDirectory(atPath: run.path).sorted().map { run.appendingPathComponent($0) }
    }

    /// A subtask writing a bit more than 64 MiB (to standard error, so no
    /// note about its result joins the log): its log keeps 64 MiB of it,
    /// the first and the last 32 MiB, and says how much it dropped.
    @Test func test_issue_10_aLogKeepsAtMost64MiB() async throws {
        let total = 70_000_000
        let project = try makeProject("""
            version: 1
            subtasks:
              - id: loud
                run: "(printf start; head -c \(total - 8) /dev/zero; printf end) >&2"
            """)
        defer { try? FileManager.default.removeItem(at: project) }
        let result = try await PlanRunBinary.runOffThePool(["build"], in: project)
        #expect(result.status == 0, "\(result.stderr)")
        let files = try Self.logs(project)
        #expect(files.map(\.lastPathComponent) == ["loud.log"])
        let file = try Data(contentsOf: try #require(files.first))
        // The log starts with the command line, then the output.
        let newline = try #require(file.firstIndex(of: UInt8(ascii: "\n")))
        #expect(file[..<newline].starts(with: Data("$ (printf start;".utf8)))
        let log = Data(file[(newline + 1)...])
        let half = 32 << 20
        let line = "\n... planrun dropped \(total - 2 * half) bytes of output here (a log keeps the first \(half) "
            + "and the last \(half) bytes of each attempt) ...\n"
        #expect(log.count == 2 * half + line.utf8.count)
        #expect(log.prefix(5) == Data("start".utf8))
        #expect(log.suffix(3) == Data("end".utf8))
        #expect(log[half..<(half + line.utf8.count)] == Data(line.utf8))
    }

    /// The state folder's disk fills up during the build (a file size
    /// limit, which binds root too): the build fails with the error instead
    /// of saying "completed", and `status` does not say it completed.
    @Test func test_issue_10_aStateWriteThatFailsFailsTheBuild() throws {
        let subtasks = (0..<100).map { "  - id: s\($0)\n    run: printf '%4000s' x\n" }.joined()
        let project = try makeProject("version: 1\nsubtasks:\n" + subtasks)
        defer { try? FileManager.default.removeItem(at: project) }
        // Files may not grow past 256 KiB (512-byte blocks); SIGXFSZ is
        // ignored, so a write past it fails with EFBIG, as on a full disk.
        let script = "trap '' XFSZ; ulimit -f 512 && exec \"$0\" build -j 4 2>&1"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script, PlanRunBinary.url.path]
        process.currentDirectoryURL = project
        var environment = ProcessInfo.processInfo.environment
        environment["NO_COLOR"] = "1"
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 1, "\(printed)")
        #expect(printed.contains("build failed (cannot write the state database: "), "\(printed)")
        #expect(!printed.contains("build completed"), "\(printed)")
        let status = try PlanRunBinary.run(["status"], in: project)
        #expect(!status.stdout.contains(": completed"), "\(status.stdout)")
    }

    /// A damaged state database: `build`, `plan` and `status` (and `retry`,
    /// `explain`) all say so,
    /// exit 1 and say how to recover; `clean --state` does. `pages`: a few
    /// pages in the middle are overwritten, which one command could read
    /// past while another noticed: all must agree.
    @Test(arguments: ["garbage", "truncated", "pages"])
    func test_issue_10_aDamagedStateIsReportedAlike(damage: String) throws {
        let subtasks = (0..<200).map { "  - id: s\($0)\n    run: printf '%2000s' x\n" }.joined()
        let project = try makeProject("version: 1\nsubtasks:\n" + subtasks)
        defer { try? FileManager.default.removeItem(at: project) }
        #expect(try PlanRunBinary.run(["build"], in: project).status == 0)
        let database = project.appendingPathComponent(".planrun/state.db")
        var bytes = try Data(contentsOf: database)
        switch damage {
        case "garbage": bytes = Data(repeating: 0x5a, count: bytes.count)
        case "truncated": bytes = bytes.prefix(bytes.count / 2)
        default:
            let start = bytes.count * 3 / 5 / 4096 * 4096
            bytes.replaceSubrange(start..<(start + 4 * 4096), with: Data(repeating: 0x5a, count: 4 * 4096))
        }
        try bytes.write(to: database)
        let hint = "note: `planrun clean --state` removes the state database (history is lost; outputs are kept)\n"
        for command in ["build", "plan", "status", "retry", "explain s1"] {
            let result = try PlanRunBinary.run(command.split(separator: " ").map(String.init), in: project)
            #expect(result.status == 1, "\(command): \(result.stderr)")
            #expect(result.stderr.contains("error: the state database `\(database.path)` is damaged"), "\(command): \(result.stderr)")
            #expect(result.stderr.hasSuffix(hint), "\(command): \(result.stderr)")
        }
        #expect(try PlanRunBinary.run(["clean", "--state"], in: project).status == 0)
        #expect(try PlanRunBinary.run(["build"], in: project).status == 0)
    }
}

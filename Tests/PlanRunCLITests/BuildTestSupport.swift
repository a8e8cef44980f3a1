#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A `planrun` process started in the background, for tests that signal it
/// or query it while it runs.
final class BackgroundPlanRun: @unchecked Sendable {
    // @unchecked: `process` is only touched by the test that owns this
    // object; the output is collected by Foundation's pipe reader threads
    // into `ReadBox`es (which lock).
    let process = Process()
    private let out = ReadBox()
    private let err = ReadBox()
    private var readers: [Thread] = []

    init(_ arguments: [String], in directory: URL) throws {
        process.executableURL = PlanRunBinary.url
        process.arguments = arguments
        process.currentDirectoryURL = directory
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        process.environment = env
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let o = out, e = err
        readers = [Thread { o.data = outPipe.fileHandleForReading.readDataToEndOfFile() },
                   Thread { e.data = errPipe.fileHandleForReading.readDataToEndOfFile() }]
        readers.forEach { $0.start() }
    }

    var pid: pid_t { process.processIdentifier }

    /// Waits for exit (at most `limit`); returns status, stdout, stderr.
    func wait(limit: Duration = .seconds(60)) async throws -> PlanRunBinary.Result {
        let deadline = ContinuousClock.now + limit
        while process.isRunning {
            if ContinuousClock.now > deadline {
                process.interrupt()
                Issue.record("planrun did not exit in time")
                kill(pid, SIGKILL)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        while !out.done || !err.done { try await Task.sleep(for: .milliseconds(5)) }
        return .init(status: process.terminationStatus, stdout: String(decoding: out.data, as: UTF8.self),
                     stderr: String(decoding: err.data, as: UTF8.self))
    }
}

/// Writes `plan.yaml` (and makes a scratch folder) for an end-to-end test.
func makeProject(_ yaml: String) throws -> URL {
    let dir = try PlanRunBinary.temporaryDirectory()
    try yaml.write(to: dir.appendingPathComponent("plan.yaml"), atomically: true, encoding: .utf8)
    return dir
}

/// Waits until `condition` holds (polling), at most `limit`.
func eventually(_ limit: Duration = .seconds(20), _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if (try? condition()) == true { return true }
        try await Task.sleep(for: .milliseconds(25))
    }
    return try condition()
}

/// Pids listed one per line in the files of `dir` named `*.pid`.
func recordedPids(in dir: URL) throws -> [pid_t] {
    try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".pid") }.flatMap { name in
        try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            .split(whereSeparator: \.isNewline).compactMap { pid_t($0.trimmingCharacters(in: .whitespaces)) }
    }
}

/// True when `pid` exists and is not a zombie.
func isAlive(_ pid: pid_t) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    return stat[stat.index(close, offsetBy: 2)] != "Z"
}

func parseJSON(_ text: String) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
    return try #require(object as? [String: Any])
}

import Foundation
import Testing

/// Runs the built `planrun` binary as a real process, for end-to-end tests.
enum PlanRunBinary {
    /// The package root, found from this file's path.
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `.build/debug/planrun` (or the build folder of the running tests).
    static let url: URL = {
        // The test bundle lives in the same products folder as the binary.
        let candidates = [
            Bundle.main.bundleURL.appendingPathComponent("planrun"),
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("planrun"),
            packageRoot.appendingPathComponent(".build/debug/planrun"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
    }()

    static let fixtures = packageRoot.appendingPathComponent("Tests/Fixtures")
    static let examples = packageRoot.appendingPathComponent("examples")

    struct Result: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `planrun ARGS` in `directory` and waits for it.
    @discardableResult
    static func run(_ arguments: [String], in directory: URL, environment: [String: String] = [:], stdin: String? = nil) throws -> Result {
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        process.currentDirectoryURL = directory
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "GITHUB_ACTIONS")
        env["NO_COLOR"] = "1"
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        let inPipe = Pipe()
        process.standardInput = inPipe
        try process.run()
        if let stdin { inPipe.fileHandleForWriting.write(Data(stdin.utf8)) }
        try? inPipe.fileHandleForWriting.close()
        // Read both pipes concurrently so a full pipe cannot block the child.
        let errData = ReadBox()
        let reader = Thread { errData.data = errPipe.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let out = outPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errData.done { usleep(1000) }
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: out, as: UTF8.self),
                      stderr: String(decoding: errData.data, as: UTF8.self))
    }

    /// `body` on a thread of its own, awaited: a test that waits long for a
    /// child process must not hold one of the cooperative pool's threads
    /// (two on a 2-core machine), or every other test's awaits stall
    /// behind it.
    static func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Swift.Result { try body() }) }.start()
        }
    }

    /// `run`, waited for on a thread of its own (`offThePool`).
    static func runOffThePool(_ arguments: [String], in directory: URL, environment: [String: String] = [:]) async throws -> Result {
        try await offThePool { try run(arguments, in: directory, environment: environment) }
    }

    /// A fresh temporary folder. A caller may remove it when done; every
    /// one left is removed when the test process exits (`TemporaryFolders`),
    /// since most end-to-end tests keep their project folder to the end.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("planrun-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let resolved = url.resolvingSymlinksInPath()
        TemporaryFolders.shared.add(resolved)
        return resolved
    }
}

/// The folders `PlanRunBinary.temporaryDirectory` made, removed by an
/// `atexit` handler so that a test run leaves nothing in the temporary
/// folder (a test killed mid-run still can).
/// `@unchecked Sendable`: `folders` is only touched under `lock`.
final class TemporaryFolders: @unchecked Sendable {
    static let shared: TemporaryFolders = {
        atexit { TemporaryFolders.shared.removeAll() }
        return TemporaryFolders()
    }()
    private let lock = NSLock()
    private var folders: [URL] = []

    func add(_ folder: URL) {
        lock.lock(); folders.append(folder); lock.unlock()
    }

    func removeAll() {
        lock.lock(); let all = folders; folders = []; lock.unlock()
        for folder in all { try? FileManager.default.removeItem(at: folder) }
    }
}

/// Holds what the stderr reader thread read.
/// `@unchecked Sendable`: written once by the reader thread before `done`
/// is set, read by the test thread only after `done` is observed.
final class ReadBox: @unchecked Sendable {
    private let lock = NSLock()
    private var _data = Data()
    private var _done = false
    var data: Data {
        get { lock.lock(); defer { lock.unlock() }; return _data }
        set { lock.lock(); _data = newValue; _done = true; lock.unlock() }
    }
    var done: Bool { lock.lock(); defer { lock.unlock() }; return _done }
}

/// A temporary plan folder with `plan.yaml` written, removed when released;
/// suites subclass it with the helpers of their own.
class PlanFolder {
    let url: URL
    init(plan: String) throws {
        url = try PlanRunBinary.temporaryDirectory()
        try write("plan.yaml", plan)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    var path: String { url.path }
    func write(_ rel: String, _ text: String) throws {
        let file = url.appendingPathComponent(rel)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: file)
    }
    func read(_ rel: String) -> String? {
        FileManager.default.contents(atPath: url.appendingPathComponent(rel).path).map { String(decoding: $0, as: UTF8.self) }
    }
    func exists(_ rel: String) -> Bool { FileManager.default.fileExists(atPath: url.appendingPathComponent(rel).path) }
}

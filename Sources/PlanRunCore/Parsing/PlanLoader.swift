import Foundation

/// Reads a plan file into a validated `Plan` (DESIGN §1–§2).
/// STUB: the parsing work replaces this file.
package enum PlanLoader {
    /// Loads and validates the plan at `path`. Throws every problem found,
    /// in source order, as `PlanDiagnostics`.
    package static func load(path: String) throws(PlanDiagnostics) -> Plan {
        throw PlanDiagnostics([Diagnostic(.error, at: nil, "plan loading is not implemented yet")])
    }

    /// Loads and validates plan text. `file` is used in locations; `directory`
    /// is the plan's folder (absolute).
    package static func load(bytes: [UInt8], file: String, directory: String) throws(PlanDiagnostics) -> Plan {
        throw PlanDiagnostics([Diagnostic(.error, at: nil, "plan loading is not implemented yet")])
    }
}

/// How serious a diagnostic is.
package enum Severity: String, Sendable, Hashable, Comparable {
    case note, warning, error

    package static func < (lhs: Severity, rhs: Severity) -> Bool {
        let order: [Severity] = [.note, .warning, .error]
        return order.firstIndex(of: lhs)! < order.firstIndex(of: rhs)!
    }
}

/// One problem found in a plan (or elsewhere), with where it is.
/// Renders as `plan.yaml:12:5: error: MESSAGE`.
package struct Diagnostic: Error, Sendable, Hashable, CustomStringConvertible {
    package var severity: Severity
    package var location: SourceLocation?
    package var message: String
    package var notes: [String]

    package init(_ severity: Severity = .error, at location: SourceLocation?, _ message: String, notes: [String] = []) {
        self.severity = severity
        self.location = location
        self.message = message
        self.notes = notes
    }

    package init(_ error: PlanError, at location: SourceLocation?) {
        self.init(.error, at: location, error.description)
    }

    /// The one-line form, without source excerpt.
    package var description: String {
        if let location { return "\(location): \(severity.rawValue): \(message)" }
        return "\(severity.rawValue): \(message)"
    }
}

/// Every problem found in one pass. Thrown when any of them is an error.
package struct PlanDiagnostics: Error, Sendable, CustomStringConvertible {
    package var diagnostics: [Diagnostic]
    /// The problem is in the command line (`--var`), not in the plan: exit 64.
    package var isUsageError = false

    package init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }

    package var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }

    package var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// Collects diagnostics during loading and validation; they are reported
/// together, in source order, rather than stopping at the first.
package struct DiagnosticCollector: Sendable {
    package private(set) var diagnostics: [Diagnostic] = []

    package init() {}

    package var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }

    package mutating func append(_ diagnostic: Diagnostic) { diagnostics.append(diagnostic) }

    package mutating func error(_ error: PlanError, at location: SourceLocation?) {
        diagnostics.append(Diagnostic(error, at: location))
    }

    package mutating func warning(_ message: String, at location: SourceLocation?) {
        diagnostics.append(Diagnostic(.warning, at: location, message))
    }

    /// Drops the diagnostics added since `start` that are in `seen`, and
    /// adds the others to it: a group's instances are built from the same
    /// nodes, so each problem is reported once, not once per instance.
    package mutating func dropRepeats(since start: Int, seen: inout Set<Diagnostic>) {
        guard start < diagnostics.count else { return }
        var kept = diagnostics[..<start]
        for d in diagnostics[start...] where seen.insert(d).inserted { kept.append(d) }
        diagnostics = Array(kept)
    }

    /// Sorted by location (stable for equal locations); location-less last.
    package var sorted: [Diagnostic] {
        diagnostics.enumerated().sorted { a, b in
            switch (a.element.location, b.element.location) {
            case let (l?, r?): return l != r ? l < r : a.offset < b.offset
            case (.some, .none): return true
            case (.none, .some): return false
            case (.none, .none): return a.offset < b.offset
            }
        }.map(\.element)
    }

    /// Throws `PlanDiagnostics` (all diagnostics, sorted) if any is an error.
    package func throwIfErrors() throws(PlanDiagnostics) {
        if hasErrors { throw PlanDiagnostics(sorted) }
    }
}

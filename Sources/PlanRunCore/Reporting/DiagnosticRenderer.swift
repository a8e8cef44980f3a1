import Foundation

/// Renders diagnostics the way compilers do:
///
///     plan.yaml:12:5: error: unknown key `dependson` in subtask `b`; did you mean `depends_on`?
///        depends_on: [a]
///        ^
///
/// The source line and caret are shown when the file can be read.
package struct DiagnosticRenderer: Sendable {
    package var useColor: Bool
    /// Source text by file path, so each file is read once.
    private var sources: [String: [Substring]] = [:]

    package init(useColor: Bool = false) { self.useColor = useColor }

    package mutating func render(_ diagnostic: Diagnostic) -> String {
        let label = diagnostic.severity.rawValue
        var head = ""
        if let location = diagnostic.location { head += "\(location): " }
        head += useColor ? "\(color(for: diagnostic.severity))\(label):\u{1B}[0m " : "\(label): "
        var out = useColor ? "\u{1B}[1m" + head + diagnostic.message + "\u{1B}[0m" : head + diagnostic.message
        out += "\n"
        if let location = diagnostic.location, let line = sourceLine(location) {
            let shown = line.replacingOccurrences(of: "\t", with: " ")
            out += "    " + shown + "\n"
            let prefix = String(repeating: " ", count: max(0, min(location.column - 1, shown.count)))
            out += "    " + prefix + (useColor ? "\u{1B}[32m^\u{1B}[0m" : "^") + "\n"
        }
        for note in diagnostic.notes { out += "note: \(note)\n" }
        return out
    }

    package mutating func render(_ diagnostics: [Diagnostic]) -> String {
        diagnostics.map { render($0) }.joined()
    }

    private func color(for severity: Severity) -> String {
        switch severity {
        case .error: "\u{1B}[31m"
        case .warning: "\u{1B}[35m"
        case .note: "\u{1B}[36m"
        }
    }

    private mutating func sourceLine(_ location: SourceLocation) -> String? {
        if sources[location.file] == nil {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: location.file, isDirectory: &isDirectory),
                  !isDirectory.boolValue,
                  let data = FileManager.default.contents(atPath: location.file),
                  data.count <= 64 << 20,
                  let text = String(data: data, encoding: .utf8)
            else {
                sources[location.file] = []
                return nil
            }
            sources[location.file] = text.split(separator: "\n", omittingEmptySubsequences: false)
        }
        guard let lines = sources[location.file], location.line >= 1, location.line <= lines.count else { return nil }
        var line = String(lines[location.line - 1])
        if line.hasSuffix("\r") { line.removeLast() }
        return line.count > 200 ? nil : line
    }
}

import Foundation

/// GitHub Actions workflow commands (issue 5): annotations
/// (`::error file=F,line=L,col=C::MESSAGE`) and log groups
/// (`::group::TITLE` ... `::endgroup::`). Pure text; the CLI decides when
/// to use them (when it sees `GITHUB_ACTIONS=true`) and where they go.
///
/// Escaping follows the runner (ActionCommand.cs): in a message `%`, `\r`
/// and `\n` become `%25`, `%0D` and `%0A`; in a property value also `:`
/// and `,` become `%3A` and `%2C`.
package enum GitHubActions {
    /// The kinds of annotation.
    package enum Level: String, Sendable {
        case error, warning, notice

        package init(_ severity: Severity) {
            switch severity {
            case .error: self = .error
            case .warning: self = .warning
            case .note: self = .notice
            }
        }
    }

    /// A message (the part after `::`).
    package static func escapeData(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "%": out += "%25"
            case "\r": out += "%0D"
            case "\n": out += "%0A"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A property value (`file=`, `title=`...).
    package static func escapeProperty(_ text: String) -> String {
        var out = ""
        for scalar in escapeData(text).unicodeScalars {
            switch scalar {
            case ":": out += "%3A"
            case ",": out += "%2C"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// One command line, ending with a newline: `::NAME k=v,k=v::MESSAGE`.
    package static func command(_ name: String, _ properties: [(String, String)] = [], message: String) -> String {
        var line = "::" + name
        if !properties.isEmpty {
            line += " " + properties.map { "\($0.0)=\(escapeProperty($0.1))" }.joined(separator: ",")
        }
        return line + "::" + escapeData(message) + "\n"
    }

    /// `::error file=F,line=L,col=C::MESSAGE` for each diagnostic (notes
    /// follow the message on their own lines). `path` maps a diagnostic's
    /// file to the path GitHub knows it by.
    package static func annotations(for diagnostics: [Diagnostic], path: (String) -> String = { $0 }) -> String {
        diagnostics.map { diagnostic in
            var properties: [(String, String)] = []
            if let location = diagnostic.location {
                properties = [("file", path(location.file)), ("line", String(location.line)), ("col", String(location.column))]
            }
            let message = ([diagnostic.message] + diagnostic.notes.map { "note: \($0)" }).joined(separator: "\n")
            return command(Level(diagnostic.severity).rawValue, properties, message: message)
        }.joined()
    }

    /// `path` as GitHub names files in annotations: relative to the
    /// workspace (the repository checkout) when it lies inside it, else
    /// unchanged. A relative `path` is taken from `currentDirectory`.
    package static func workspacePath(_ path: String, workspace: String?, currentDirectory: String) -> String {
        guard let workspace, !workspace.isEmpty else { return path }
        let absolute = URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: currentDirectory, isDirectory: true))
            .standardizedFileURL.path
        let root = URL(fileURLWithPath: workspace, isDirectory: true).standardizedFileURL.path
        let prefix = root.hasSuffix("/") ? root : root + "/"
        return absolute.hasPrefix(prefix) ? String(absolute.dropFirst(prefix.count)) : path
    }
}

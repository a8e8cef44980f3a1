import CYAML

/// Problems libyaml reports, turned into diagnostics at the place the user
/// must fix: unquoted globs and expressions, tabs, unclosed quotes.
extension YAMLTreeBuilder {
    mutating func reportParserError(_ parser: yaml_parser_t) {
        let problem = parser.problem.map { String(cString: $0) } ?? "unknown problem"
        let context = parser.context.map { String(cString: $0) }
        switch parser.error {
        case YAML_MEMORY_ERROR:
            diagnostics.error(.yamlSyntax("out of memory"), at: nil)
        case YAML_READER_ERROR:
            let (line, column) = position(ofOffset: parser.problem_offset)
            diagnostics.error(.yamlSyntax(problem), at: SourceLocation(file: file, line: line, column: column))
        default:
            if context == "while scanning an alias" {
                // An unquoted glob such as `*.c` or `**/*.swift`.
                let text = tokenText(at: parser.context_mark.index)
                diagnostics.error(.aliasNotQuoted(text: text), at: location(parser.context_mark))
                return
            }
            let index = parser.problem_mark.index
            if let (text, start) = unquotedExpression(at: index) {
                // `[${{ item }}]`: the plain scalar `$` ends where `{` starts a mapping.
                let (line, column) = position(ofOffset: start)
                diagnostics.error(.expressionNotQuoted(text: text), at: SourceLocation(file: file, line: line, column: column))
                return
            }
            if index < source.count, source[index] == UInt8(ascii: "\t") {
                diagnostics.error(
                    .yamlSyntax("found a tab character where a token was expected; indent with spaces, not tabs"),
                    at: location(parser.problem_mark))
                return
            }
            let message = context.map { "\(problem) \($0)" } ?? problem
            var notes: [String] = []
            if let context, parser.context_mark.line != parser.problem_mark.line {
                // e.g. an unclosed quote: the problem is found far from its cause.
                let where_ = "line \(parser.context_mark.line + 1), column \(parser.context_mark.column + 1)"
                let what = context.hasPrefix("while ") ? String(context.dropFirst(6)) : context
                notes.append("\(what) started at \(where_)")
            }
            diagnostics.append(Diagnostic(.error, at: location(parser.problem_mark), PlanError.yamlSyntax(message).description, notes: notes))
        }
    }

    /// When `index` is the `{{` of a `${{` (libyaml stops there inside a
    /// flow collection): the text the user meant as one string, from the
    /// start of its plain scalar to the next `,`, `]` or `}` after the
    /// expressions, and the offset where it starts.
    func unquotedExpression(at index: Int) -> (String, Int)? {
        guard index > 0, index + 1 < source.count, source[index - 1] == UInt8(ascii: "$"),
              source[index] == UInt8(ascii: "{"), source[index + 1] == UInt8(ascii: "{")
        else { return nil }
        var start = index - 1
        while start > 0 {
            switch source[start - 1] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "["), UInt8(ascii: "{"),
                UInt8(ascii: ","):
                break
            default:
                start -= 1
                continue
            }
            break
        }
        var end = index
        var depth = 0
        scan: while end < source.count {
            switch source[end] {
            case UInt8(ascii: "{"): depth += 1
            case UInt8(ascii: "}"):
                if depth == 0 { break scan }
                depth -= 1
            case UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "\n"):
                if depth == 0 { break scan }
            default: break
            }
            end += 1
        }
        var text = String(decoding: UnsafeBufferPointer(rebasing: source[start..<end]), as: UTF8.self)
        while text.hasSuffix(" ") { text.removeLast() }
        return (text, start)
    }

    /// The plain token starting at `index` (an alias or glob), for messages.
    func tokenText(at index: Int) -> String {
        var end = index
        while end < source.count {
            switch source[end] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"),
                UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"):
                return String(decoding: UnsafeBufferPointer(rebasing: source[index..<end]), as: UTF8.self)
            default:
                end += 1
            }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: source[min(index, end)..<end]), as: UTF8.self)
    }

    /// 1-based line and column (in characters) of a byte offset.
    func position(ofOffset offset: Int) -> (Int, Int) {
        PlanLoader.position(ofOffset: offset, in: source)
    }
}

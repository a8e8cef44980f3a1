/// make's rule syntax as compilers write it in depfiles (`gcc -MD -MF`,
/// `clang -MD`): the prerequisites a subtask read, its discovered inputs.
///
/// Grammar, by logical line (a `\` right before a newline, `\n` or `\r\n`,
/// joins two physical lines with a blank): `TARGETS: PREREQUISITES`, names
/// separated by blanks. In a name, `\ ` is a space, `\#` a `#`, `\\` before
/// a blank, `#` or newline a backslash, and `$$` a `$`; any other `\` or `$`
/// stands for itself (Windows paths). A `:` ends the targets only when a
/// blank, a newline or the end follows it (`C:\x.h` is one name). An
/// unescaped `#` where a name would start begins a comment to the end of the
/// line. Several rules and the empty rules `-MP` adds (`x.h:`) are allowed;
/// the result is the union of every rule's prerequisites, in order of first
/// appearance, each once. Targets are not prerequisites.
package enum Depfile {
    /// Why a depfile does not parse; `line` and `column` are 1-based
    /// (bytes) and point at the offending character.
    package struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        package var line: Int
        package var column: Int
        package var message: String

        package var description: String { "\(line):\(column): \(message)" }
    }

    /// The prerequisites of every rule in `bytes`, in order, without
    /// duplicates.
    package static func parse(_ bytes: [UInt8]) throws(ParseError) -> [String] {
        var parser = Parser(bytes)
        return try parser.run()
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0
        var line = 1
        var lineStart = 0
        var out: [String] = []
        var seen: Set<String> = []

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), newline = UInt8(ascii: "\n")
        static let carriage = UInt8(ascii: "\r"), backslash = UInt8(ascii: "\\"), colon = UInt8(ascii: ":")
        static let hash = UInt8(ascii: "#"), dollar = UInt8(ascii: "$")

        func error(_ message: String, at index: Int) -> ParseError {
            ParseError(line: line, column: index - lineStart + 1, message: message)
        }

        /// Whether a line ends at `index`: `\n`, `\r\n`, or the end.
        func isLineEnd(_ index: Int) -> Bool {
            index >= bytes.count || bytes[index] == Parser.newline
                || (bytes[index] == Parser.carriage && index + 1 < bytes.count && bytes[index + 1] == Parser.newline)
        }

        /// Whether a name ends at `index`: a blank, a line end, or a
        /// backslash-newline.
        func endsName(_ index: Int) -> Bool {
            guard index < bytes.count else { return true }
            let c = bytes[index]
            return c == Parser.space || c == Parser.tab || isLineEnd(index) || isContinuation(index)
        }

        func isContinuation(_ index: Int) -> Bool {
            index < bytes.count && bytes[index] == Parser.backslash && isLineEnd(index + 1) && index + 1 < bytes.count
        }

        /// Moves past a line end at `i` (which `isLineEnd` accepted).
        mutating func passNewline() {
            if i < bytes.count && bytes[i] == Parser.carriage { i += 1 }
            if i < bytes.count { i += 1 }
            line += 1
            lineStart = i
        }

        /// Skips blanks and continuations; stops at a line end or a name.
        mutating func skipBlanks() {
            while i < bytes.count {
                let c = bytes[i]
                if c == Parser.space || c == Parser.tab {
                    i += 1
                } else if isContinuation(i) {
                    i += 1
                    passNewline()
                } else {
                    return
                }
            }
        }

        mutating func run() throws(ParseError) -> [String] {
            while i < bytes.count {
                try rule()
            }
            return out
        }

        /// One logical line: blank, a comment, or a rule.
        mutating func rule() throws(ParseError) {
            var targets = 0
            var sawColon = false
            while true {
                skipBlanks()
                if isLineEnd(i) {
                    if targets > 0 && !sawColon { throw error("expected `:` after the targets", at: i) }
                    if i < bytes.count { passNewline() }
                    return
                }
                if bytes[i] == Parser.hash {
                    while !isLineEnd(i) { i += 1 }
                    continue
                }
                if !sawColon, bytes[i] == Parser.colon, endsName(i + 1) {
                    if targets == 0 { throw error("a rule without a target", at: i) }
                    sawColon = true
                    i += 1
                    continue
                }
                let nameStart = i
                let (name, endsWithColon) = try self.name()
                if !sawColon {
                    if endsWithColon {
                        sawColon = true
                        if name.isEmpty { throw error("a rule without a target", at: nameStart) }
                    }
                    if !name.isEmpty { targets += 1 }
                } else {
                    if endsWithColon { throw error("a second `:` in one rule", at: i - 1) }
                    if !name.isEmpty, seen.insert(name).inserted { out.append(name) }
                }
            }
        }

        /// Reads a name at `i`. `endsWithColon`: it ended with a `:` that
        /// ends the targets (left out of the name).
        mutating func name() throws(ParseError) -> (String, Bool) {
            var buffer: [UInt8] = []
            while !endsName(i) {
                let c = bytes[i]
                if c == Parser.backslash, i + 1 < bytes.count {
                    let next = bytes[i + 1]
                    if next == Parser.space || next == Parser.tab || next == Parser.hash {
                        buffer.append(next)
                        i += 2
                        continue
                    }
                    if next == Parser.backslash, endsName(i + 2) || (i + 2 < bytes.count && bytes[i + 2] == Parser.hash) {
                        buffer.append(Parser.backslash)
                        i += 2
                        continue
                    }
                } else if c == Parser.dollar, i + 1 < bytes.count, bytes[i + 1] == Parser.dollar {
                    buffer.append(Parser.dollar)
                    i += 2
                    continue
                } else if c == Parser.colon, endsName(i + 1) {
                    i += 1
                    return (try text(buffer, from: i), true)
                } else if c == 0 {
                    throw error("a NUL byte in a name", at: i)
                }
                buffer.append(c)
                i += 1
            }
            return (try text(buffer, from: i), false)
        }

        func text(_ buffer: [UInt8], from index: Int) throws(ParseError) -> String {
            guard let text = String(validating: buffer, as: UTF8.self) else {
                throw error("a name that is not UTF-8", at: max(lineStart, index - buffer.count))
            }
            return text
        }
    }
}

/// One node of a YAML document as `YAMLReader` builds it: a scalar, a
/// sequence or a mapping, with the 1-based line and column where it starts.
/// Aliases are already expanded (they share storage with their anchor), and
/// merge keys (`<<`) are already applied. Mappings keep their pairs in file
/// order and have no duplicate keys.
package struct YAMLNode: Sendable {
    package enum Content: Sendable {
        case scalar(YAMLScalar)
        case sequence([YAMLNode])
        case mapping([YAMLPair])
    }

    package var content: Content
    /// 1-based.
    package var line: Int
    /// 1-based, in characters (as libyaml counts them).
    package var column: Int

    package init(_ content: Content, line: Int, column: Int) {
        self.content = content
        self.line = line
        self.column = column
    }

    package func location(in file: String) -> SourceLocation {
        SourceLocation(file: file, line: line, column: column)
    }

    package var scalar: YAMLScalar? {
        if case .scalar(let s) = content { return s }
        return nil
    }

    package var sequence: [YAMLNode]? {
        if case .sequence(let items) = content { return items }
        return nil
    }

    package var mapping: [YAMLPair]? {
        if case .mapping(let pairs) = content { return pairs }
        return nil
    }

    /// How the node reads in a message: "a string", "a list", "null", ...
    package var kindDescription: String {
        switch content {
        case .sequence: "a list"
        case .mapping: "a mapping"
        case .scalar(let s):
            switch s.value {
            case .null: "null"
            case .bool: "a boolean"
            case .int: "an integer"
            case .double: "a number"
            case .string: "a string"
            }
        }
    }
}

/// A key and its value inside a mapping.
package struct YAMLPair: Sendable {
    package var key: YAMLNode
    package var value: YAMLNode

    package init(key: YAMLNode, value: YAMLNode) {
        self.key = key
        self.value = value
    }

    /// The key's text when it is a scalar (plan keys always are).
    package var keyText: String? { key.scalar?.text }
}

/// A scalar's text and whether it was written plain (unquoted, not a block
/// scalar, no `!!str` tag). Only plain scalars resolve to null, booleans and
/// numbers; every other scalar is a string.
package struct YAMLScalar: Sendable, Hashable {
    package var text: String
    package var isPlain: Bool

    package init(text: String, isPlain: Bool) {
        self.text = text
        self.isPlain = isPlain
    }

    /// The typed value of a scalar, YAML 1.2 core schema.
    package enum Value: Sendable, Hashable {
        case null
        case bool(Bool)
        case int(Int)
        case double(Double)
        case string(String)
    }

    /// Resolves the scalar: for plain scalars `null`/`~`/empty, `true`/`false`,
    /// integers (decimal, `0x`, `0o`), floats (`1.5`, `1e3`, `.inf`, `.nan`);
    /// anything else, and every quoted scalar, is a string.
    package var value: Value {
        guard isPlain else { return .string(text) }
        var utf8 = text.utf8
        guard let first = utf8.first else { return .null }
        switch text {
        case "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .double(.infinity)
        case "-.inf", "-.Inf", "-.INF": return .double(-.infinity)
        case ".nan", ".NaN", ".NAN": return .double(.nan)
        default: break
        }
        // Only text starting like a number can be one; skip the rest cheaply.
        let startsNumeric = (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9"))
            || first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || first == UInt8(ascii: ".")
        guard startsNumeric else { return .string(text) }
        if utf8.count > 2, first == UInt8(ascii: "0") {
            let second = utf8[utf8.index(after: utf8.startIndex)]
            if second == UInt8(ascii: "x"), let n = Int(text.dropFirst(2), radix: 16) { return .int(n) }
            if second == UInt8(ascii: "o"), let n = Int(text.dropFirst(2), radix: 8) { return .int(n) }
        }
        if Self.isInteger(utf8), let n = Int(text) { return .int(n) }
        if Self.isFloat(&utf8), let d = Double(text) { return .double(d) }
        return .string(text)
    }

    /// `[-+]?[0-9]+`
    private static func isInteger(_ utf8: String.UTF8View) -> Bool {
        var digits = 0
        for (i, c) in utf8.enumerated() {
            if i == 0, c == UInt8(ascii: "-") || c == UInt8(ascii: "+") { continue }
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return false }
            digits += 1
        }
        return digits > 0
    }

    /// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
    private static func isFloat(_ utf8: inout String.UTF8View) -> Bool {
        var sawDigit = false, sawDot = false, sawExponent = false, exponentDigits = 0
        var previous: UInt8 = 0
        for (i, c) in utf8.enumerated() {
            defer { previous = c }
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if sawExponent { exponentDigits += 1 } else { sawDigit = true }
            case UInt8(ascii: "-"), UInt8(ascii: "+"):
                guard i == 0 || previous == UInt8(ascii: "e") || previous == UInt8(ascii: "E") else { return false }
            case UInt8(ascii: "."):
                guard !sawDot, !sawExponent else { return false }
                sawDot = true
            case UInt8(ascii: "e"), UInt8(ascii: "E"):
                guard sawDigit, !sawExponent else { return false }
                sawExponent = true
            default:
                return false
            }
        }
        return sawDigit && (!sawExponent || exponentDigits > 0)
    }

    /// True for plain `null`, `~` and the empty plain scalar.
    package var isNull: Bool {
        guard isPlain else { return false }
        switch text.utf8.count {
        case 0: return true
        case 1: return text == "~"
        case 4: return text == "null" || text == "Null" || text == "NULL"
        default: return false
        }
    }
}

import Foundation

/// A plan variable's value (`vars:`): scalar text, or a list of texts.
/// Scalars keep their YAML source text (`3.10` stays `3.10`).
package enum VariableValue: Sendable, Hashable {
    case text(String)
    case list([String])

    /// The value inside a string: a list's elements joined with single spaces.
    var joined: String {
        switch self {
        case .text(let t): t
        case .list(let l): l.joined(separator: " ")
        }
    }
}

/// `--var NAME=VALUE` overrides, as the command line gives them: each NAME
/// with its literal value, in order. A plain value so that the loader (and
/// includes, for `NS/NAME`) can route and check them.
package struct VariableOverrides: Sendable, Hashable {
    package var entries: [(name: String, value: String)]

    package init(_ entries: [(name: String, value: String)] = []) { self.entries = entries }

    package var isEmpty: Bool { entries.isEmpty }

    /// Parses `NAME=VALUE` arguments (split at the first `=`); nil names the
    /// first argument without `=` or with an empty NAME.
    package static func parse(_ arguments: [String]) -> Result<VariableOverrides, VariableOverrideError> {
        var entries: [(String, String)] = []
        for argument in arguments {
            guard let equals = argument.firstIndex(of: "="), equals != argument.startIndex else {
                return .failure(VariableOverrideError(argument: argument))
            }
            entries.append((String(argument[..<equals]), String(argument[argument.index(after: equals)...])))
        }
        return .success(VariableOverrides(entries))
    }

    /// The last value given for `name`.
    package func value(of name: String) -> String? {
        entries.last { $0.name == name }?.value
    }

    package static func == (a: VariableOverrides, b: VariableOverrides) -> Bool {
        a.entries.elementsEqual(b.entries) { $0.name == $1.name && $0.value == $1.value }
    }

    package func hash(into hasher: inout Hasher) {
        for (name, value) in entries {
            hasher.combine(name)
            hasher.combine(value)
        }
    }
}

/// A `--var` argument that is not `NAME=VALUE`.
package struct VariableOverrideError: Error, Sendable, Equatable, CustomStringConvertible {
    package var argument: String
    package var description: String { "`--var \(argument)` must be NAME=VALUE" }
}

/// One matrix dimension's value of an instance (`matrix.K`).
package struct MatrixValue: Sendable, Hashable {
    package var name: String
    package var value: String

    package init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// What the expressions of one place may name: the plan's variables, and
/// inside a group's instance its `item` or `matrix` values. Places that
/// allow only `vars.*` (agents, plan `env`, foreach and matrix values) have
/// neither.
struct ExpressionScope {
    /// Variables defined so far, by name.
    var vars: [String: VariableValue] = [:]
    /// Every declared variable, in order (for suggestions and for telling a
    /// forward reference from an unknown name).
    var declared: [String] = []
    var item: String?
    var matrix: [MatrixValue]?
    /// The place allows only `vars.*` (see §8.1), whatever the subtask has.
    var varsOnly = false

    /// `text` with every `${{ NAME }}` replaced and `$${{` turned into
    /// `${{`. Text without `${{` comes back as is.
    func expand(_ text: String) -> Result<String, PlanError> {
        guard Expression.mayContain(text) else { return .success(text) }
        return Expression.parse(text).flatMap(expand)
    }

    /// A parsed text (`Expression.parse`) with its names replaced.
    func expand(_ parts: [ExpressionPart]) -> Result<String, PlanError> {
        var out = ""
        for part in parts {
            switch part {
            case .text(let t): out += t
            case .name(let name):
                switch resolve(name) {
                case .success(let value): out += value.joined
                case .failure(let error): return .failure(error)
                }
            }
        }
        return .success(out)
    }

    /// A list element: exactly `${{ vars.L }}` for a list L gives L's
    /// elements (a splice); anything else gives its expansion.
    func expandElement(_ parts: [ExpressionPart]) -> Result<[String], PlanError> {
        if parts.count == 1, case .name(let name) = parts[0], name.hasPrefix("vars."),
           case .success(.list(let list)) = resolve(name) {
            return .success(list)
        }
        return expand(parts).map { [$0] }
    }

    func expandElement(_ text: String) -> Result<[String], PlanError> {
        guard Expression.mayContain(text) else { return .success([text]) }
        return Expression.parse(text).flatMap(expandElement)
    }

    /// The value of one name.
    func resolve(_ name: String) -> Result<VariableValue, PlanError> {
        if name.isEmpty { return .failure(.emptyExpression) }
        if name.hasPrefix("vars.") {
            let variable = String(name.dropFirst(5))
            if let value = vars[variable] { return .success(value) }
            if declared.contains(variable) { return .failure(.variableUsedBeforeDefinition(name: variable)) }
            return .failure(.unknownName(name: name, suggestion: Suggestion.closest(to: name, in: candidates)))
        }
        if varsOnly, name == "item" || name.hasPrefix("item.") || name.hasPrefix("matrix.") {
            return .failure(.onlyVariablesHere(name: name))
        }
        if name == "item" || name.hasPrefix("item.") {
            guard let item else { return .failure(.nameNotAvailable(name: name, needs: "foreach")) }
            if name == "item" { return .success(.text(item)) }
            guard let part = ItemPath.part(String(name.dropFirst(5)), of: item) else {
                return .failure(.unknownName(name: name, suggestion: Suggestion.closest(to: name, in: candidates)))
            }
            return .success(.text(part))
        }
        if name.hasPrefix("matrix.") {
            guard let matrix else { return .failure(.nameNotAvailable(name: name, needs: "matrix")) }
            let key = name.dropFirst(7)
            if let entry = matrix.first(where: { $0.name == key }) { return .success(.text(entry.value)) }
            return .failure(.unknownName(name: name, suggestion: Suggestion.closest(to: name, in: candidates)))
        }
        return .failure(.unknownName(name: name, suggestion: Suggestion.closest(to: name, in: candidates)))
    }

    /// Every name this scope can resolve, for suggestions.
    private var candidates: [String] {
        var names = declared.map { "vars." + $0 }
        if !varsOnly, item != nil { names += ["item"] + ItemPath.parts.map { "item." + $0 } }
        if !varsOnly, let matrix { names += matrix.map { "matrix." + $0.name } }
        return names
    }
}

/// A piece of a text that may hold expressions.
enum ExpressionPart: Hashable {
    case text(String)
    case name(String)
}

/// The `${{ … }}` syntax, on bytes.
enum Expression {
    /// Whether `text` may hold an expression or an escape: it contains `${{`.
    static func mayContain(_ text: String) -> Bool {
        text.utf8.withContiguousStorageIfAvailable { mayContain(bytes: $0) } ?? mayContain(text.utf8)
    }

    /// `mayContain` on contiguous bytes: `memchr` finds each `$` (every
    /// plan text goes through here; most have none).
    static func mayContain(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        var i = 0
        while i + 2 < bytes.count {
            guard let found = memchr(base + i, Int32(UInt8(ascii: "$")), bytes.count - 2 - i) else { return false }
            let j = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
            if bytes[j + 1] == UInt8(ascii: "{"), bytes[j + 2] == UInt8(ascii: "{") { return true }
            i = j + 1
        }
        return false
    }

    static func mayContain<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        var state = 0
        for c in bytes {
            switch (state, c) {
            case (_, UInt8(ascii: "$")): state = 1
            case (1, UInt8(ascii: "{")): state = 2
            case (2, UInt8(ascii: "{")): return true
            default: state = 0
            }
        }
        return false
    }

    /// Whether `text` has a `${{` that is not the escape `$${{`: such a
    /// string holds an expression (wanted or not).
    static func hasExpression(_ text: String) -> Bool {
        guard mayContain(text) else { return false }
        let bytes = Array(text.utf8)
        var i = 0
        while i + 2 < bytes.count {
            if bytes[i] == UInt8(ascii: "$") {
                if i + 3 < bytes.count, bytes[i + 1] == UInt8(ascii: "$"), bytes[i + 2] == UInt8(ascii: "{"),
                   bytes[i + 3] == UInt8(ascii: "{") {
                    i += 4
                    continue
                }
                if bytes[i + 1] == UInt8(ascii: "{"), bytes[i + 2] == UInt8(ascii: "{") { return true }
            }
            i += 1
        }
        return false
    }

    /// `text` cut into literal text and names: `$${{` is the literal
    /// `${{`, `${{ NAME }}` a name (spaces around it dropped).
    static func parse(_ text: String) -> Result<[ExpressionPart], PlanError> {
        let bytes = Array(text.utf8)
        var parts: [ExpressionPart] = []
        var literal: [UInt8] = []
        var i = 0
        func flush() {
            if !literal.isEmpty { parts.append(.text(String(decoding: literal, as: UTF8.self))) }
            literal = []
        }
        func at(_ k: Int, _ c: Character) -> Bool { k < bytes.count && bytes[k] == c.asciiValue! }
        while i < bytes.count {
            if at(i, "$"), at(i + 1, "$"), at(i + 2, "{"), at(i + 3, "{") {
                literal += Array("${{".utf8)
                i += 4
            } else if at(i, "$"), at(i + 1, "{"), at(i + 2, "{") {
                var end = i + 3
                while end < bytes.count, !(at(end, "}") && at(end + 1, "}")) { end += 1 }
                guard end < bytes.count else { return .failure(.unterminatedExpression) }
                var a = i + 3, b = end
                while a < b, bytes[a] == UInt8(ascii: " ") { a += 1 }
                while b > a, bytes[b - 1] == UInt8(ascii: " ") { b -= 1 }
                flush()
                parts.append(.name(String(decoding: bytes[a..<b], as: UTF8.self)))
                i = end + 2
            } else {
                literal.append(bytes[i])
                i += 1
            }
        }
        flush()
        return .success(parts)
    }

    /// The name when `text` is exactly one expression (`${{ vars.L }}`).
    static func soleName(_ text: String) -> String? {
        guard mayContain(text), case .success(let parts) = parse(text), parts.count == 1,
              case .name(let name) = parts[0] else { return nil }
        return name
    }

    /// `[A-Za-z0-9_-]+`: the names of variables and matrix keys.
    static func isName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
        }
    }
}

/// `item.*`: a foreach item read as a path, by Python's `pathlib` rules
/// (`PurePosixPath`): `src/a.tar.gz` has dir `src`, name `a.tar.gz`, stem
/// `a.tar`, ext `gz`; `.bashrc` has stem `.bashrc` and ext `""`; the dir of
/// a top-level name is `.`.
enum ItemPath {
    static let parts = ["path", "dir", "name", "stem", "ext"]

    static func part(_ part: String, of item: String) -> String? {
        switch part {
        case "path": return item
        case "dir": return dir(item)
        case "name": return name(item)
        case "stem": return split(name(item)).stem
        case "ext": return split(name(item)).ext
        default: return nil
        }
    }

    /// Without trailing slashes, as pathlib reads `a/b/`.
    private static func stripped(_ path: String) -> Substring {
        var s = Substring(path)
        while s.count > 1, s.hasSuffix("/") { s = s.dropLast() }
        return s
    }

    static func name(_ path: String) -> String {
        let s = stripped(path)
        if s == "/" { return "" }
        if let slash = s.lastIndex(of: "/") { return String(s[s.index(after: slash)...]) }
        return String(s)
    }

    static func dir(_ path: String) -> String {
        let s = stripped(path)
        guard let slash = s.lastIndex(of: "/") else { return "." }
        var parent = s[..<slash]
        while parent.count > 1, parent.hasSuffix("/") { parent = parent.dropLast() }
        return parent.isEmpty ? "/" : String(parent)
    }

    /// pathlib's suffix: from the last `.` when it is neither the first
    /// nor the last character of the name.
    static func split(_ name: String) -> (stem: String, ext: String) {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex, name.index(after: dot) != name.endIndex
        else { return (name, "") }
        return (String(name[..<dot]), String(name[name.index(after: dot)...]))
    }
}

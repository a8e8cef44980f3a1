/// A YAML document as `YAMLReader` builds it: every node in one flat
/// array, children as index ranges into another, scalar text in one byte
/// buffer. A few large allocations instead of one per node keeps reading
/// fast and memory low (a 100,000-subtask plan has millions of nodes).
///
/// Aliases are already resolved (they share their anchor's children) and
/// merge keys (`<<`) already applied. Mappings keep their pairs in file
/// order and have no duplicate keys. Positions are 1-based.
package struct YAMLDocument: Sendable {
    enum Kind: UInt8 { case scalar, sequence, mapping }

    struct Record {
        var kind: Kind
        var isPlain: Bool
        /// A scalar's standard tag; the reader has checked that the text fits it.
        var tag: YAMLScalar.Tag = .none
        /// A sequence whose items are the records `start..<start + count`
        /// (a list of scalars, the bulk of a big file: no `children` copy).
        var consecutiveItems = false
        var line: Int32
        var column: Int32
        /// Scalar: offset in `text`; collection: offset in `children`, or
        /// the first item's record (`consecutiveItems`).
        var start: Int32
        /// Scalar: byte length; sequence: items; mapping: pairs.
        var count: Int32
    }

    var records: [Record] = []
    /// Compact scalars: plain, untagged, unanchored sequence items (the
    /// bulk of a big flow list) cost 8 bytes each instead of a `Record`.
    /// Their node index is negative: compact entry `c` is node `-(c + 1)`.
    /// Entry `c`'s text ends at `compactEnd[c]` and starts where entry
    /// `c - 1` ends; every run of them starts with a sentinel entry, which
    /// is no node, for its first item's start.
    var compactEnd: [UInt32] = []
    /// A column past `UInt16.max - 1` is `UInt16.max` here and the column
    /// itself is in `compactWideColumns` (rare: a line of 64 K characters).
    var compactColumn: [UInt16] = []
    var compactWideColumns: [Int32: Int32] = [:]
    /// (first compact entry on a line, that line), in file order: compact
    /// entries are made in file order, so lines never decrease with `c`.
    var compactLines: [(entry: Int32, line: Int32)] = []
    /// Sequence items, and mapping keys and values alternating.
    var children: [Int32] = []
    /// The bytes of every scalar, one after the other.
    var text: [UInt8] = []
    /// The file name used in locations.
    package var file: String
    package var root: YAMLNode?

    init(file: String) { self.file = file }

    /// The record of node `index`; a compact scalar's is made up, its line
    /// looked up only when `withLine` (for messages).
    func record(_ index: Int32, withLine: Bool = false) -> Record {
        if index >= 0 { return records[Int(index)] }
        let c = Int(-(index + 1))
        let end = compactEnd[c], start = compactEnd[c - 1]
        let column = compactColumn[c] == .max ? compactWideColumns[Int32(c)] ?? 0 : Int32(compactColumn[c])
        return Record(
            kind: .scalar, isPlain: true, line: withLine ? compactLine(c) : 0, column: column,
            start: Int32(truncatingIfNeeded: start), count: Int32(truncatingIfNeeded: end - start))
    }

    private func compactLine(_ c: Int) -> Int32 {
        // The last line change at or before `c`.
        var low = 0, high = compactLines.count
        while high - low > 1 {
            let mid = (low + high) / 2
            if Int(compactLines[mid].entry) <= c { low = mid } else { high = mid }
        }
        return compactLines[low].line
    }

    // MARK: Reading nodes

    package func location(_ node: YAMLNode) -> SourceLocation {
        let r = record(node.index, withLine: true)
        return SourceLocation(file: file, line: Int(r.line), column: Int(r.column))
    }

    package func line(_ node: YAMLNode) -> Int { Int(record(node.index, withLine: true).line) }

    /// The scalar at `node`, nil for collections. Makes a String.
    package func scalar(_ node: YAMLNode) -> YAMLScalar? {
        let r = record(node.index)
        guard r.kind == .scalar else { return nil }
        return YAMLScalar(text: string(start: Int(r.start), count: Int(r.count)), isPlain: r.isPlain, tag: r.tag)
    }

    /// The typed value of the scalar at `node`, nil for collections. Plain
    /// untagged scalars are resolved from their bytes: a String is made
    /// only for strings and floats.
    package func value(_ node: YAMLNode) -> YAMLScalar.Value? {
        let r = record(node.index)
        guard r.kind == .scalar else { return nil }
        guard r.isPlain, r.tag == .none else { return scalar(node)?.value }
        return text.withUnsafeBufferPointer { buffer in
            let bytes = UnsafeBufferPointer(rebasing: buffer[Int(r.start)..<Int(r.start + r.count)])
            return YAMLScalar.coreValue(bytes) { String(decoding: bytes, as: UTF8.self) }
        }
    }

    /// The items at `node`, nil unless it is a sequence.
    package func items(_ node: YAMLNode) -> YAMLItems? {
        let r = record(node.index)
        guard r.kind == .sequence else { return nil }
        // A run of compact scalars starts at a negative node and counts down.
        if r.consecutiveItems { return YAMLItems(first: r.start, step: r.start < 0 ? -1 : 1, count: Int(r.count)) }
        return YAMLItems(children: children[Int(r.start)..<Int(r.start + r.count)])
    }

    /// The pairs at `node`, nil unless it is a mapping.
    package func pairs(_ node: YAMLNode) -> YAMLPairs? {
        let r = record(node.index)
        guard r.kind == .mapping else { return nil }
        return YAMLPairs(children: children[Int(r.start)..<Int(r.start + 2 * r.count)])
    }

    /// A key's text when it is a scalar (plan keys always are).
    package func keyText(_ pair: YAMLPair) -> String? { scalar(pair.key)?.text }

    /// How the node reads in a message: "a string", "a list", "null", ...
    package func kindDescription(_ node: YAMLNode) -> String {
        switch record(node.index).kind {
        case .sequence: "a list"
        case .mapping: "a mapping"
        case .scalar:
            switch scalar(node)?.value ?? .null {
            case .null: "null"
            case .bool: "a boolean"
            case .int, .integerOutOfRange: "an integer"
            case .double: "a number"
            case .string: "a string"
            }
        }
    }

    func string(start: Int, count: Int) -> String {
        text.withUnsafeBufferPointer { buffer in
            String(decoding: UnsafeBufferPointer(rebasing: buffer[start..<start + count]), as: UTF8.self)
        }
    }

    /// The bytes of the scalar at `node`, nil for collections: keys are
    /// compared by these (Strings compare by canonical equivalence).
    func scalarBytes(_ node: Int32) -> [UInt8]? {
        let r = record(node)
        guard r.kind == .scalar else { return nil }
        return Array(text[Int(r.start)..<Int(r.start + r.count)])
    }

    /// True when `node` is a scalar whose bytes are `ascii`'s; no String is
    /// made. For a plan's key names (ASCII letters and `_`) this is what
    /// String equality says too: no other text is canonically equivalent
    /// to them.
    func scalarBytesEqual(_ node: YAMLNode, _ ascii: StaticString) -> Bool {
        let r = record(node.index)
        guard r.kind == .scalar, Int(r.count) == ascii.utf8CodeUnitCount else { return false }
        return text.withUnsafeBufferPointer { buffer in
            buffer[Int(r.start)..<Int(r.start + r.count)].elementsEqual(
                UnsafeBufferPointer(start: ascii.utf8Start, count: ascii.utf8CodeUnitCount))
        }
    }

    /// True when the scalars at `a` and `b` have the same bytes.
    func sameText(_ a: Int32, _ b: Int32) -> Bool {
        let ra = record(a), rb = record(b)
        guard ra.kind == .scalar, rb.kind == .scalar, ra.count == rb.count else { return false }
        return text.withUnsafeBufferPointer { buffer in
            buffer[Int(ra.start)..<Int(ra.start + ra.count)].elementsEqual(buffer[Int(rb.start)..<Int(rb.start + rb.count)])
        }
    }
}

/// A node of a `YAMLDocument`: an index, read through the document.
package struct YAMLNode: Sendable, Hashable {
    package var index: Int32
}

/// A key and its value inside a mapping.
package struct YAMLPair: Sendable, Hashable {
    package var key: YAMLNode
    package var value: YAMLNode
}

/// The items of a sequence, in order: listed in `children` (`step` 0), or
/// the nodes `first`, `first + step`, ...
package struct YAMLItems: RandomAccessCollection, Sendable {
    let children: ArraySlice<Int32>
    let first: Int32
    let step: Int32
    package let endIndex: Int
    package var startIndex: Int { 0 }

    init(children: ArraySlice<Int32>) {
        self.children = children
        first = 0
        step = 0
        endIndex = children.count
    }

    init(first: Int32, step: Int32, count: Int) {
        children = []
        self.first = first
        self.step = step
        endIndex = count
    }

    package subscript(i: Int) -> YAMLNode {
        YAMLNode(index: step != 0 ? first + step * Int32(truncatingIfNeeded: i) : children[children.startIndex + i])
    }
}

/// The pairs of a mapping, in order.
package struct YAMLPairs: RandomAccessCollection, Sendable {
    let children: ArraySlice<Int32>
    package var startIndex: Int { 0 }
    package var endIndex: Int { children.count / 2 }
    package subscript(i: Int) -> YAMLPair {
        let base = children.startIndex + 2 * i
        return YAMLPair(key: YAMLNode(index: children[base]), value: YAMLNode(index: children[base + 1]))
    }
}

/// A scalar's text, whether it was written plain (unquoted, not a block
/// scalar, no `!!str` or `!` tag) and its standard tag, if any. Untagged
/// plain scalars resolve by the YAML 1.2 core schema to null, booleans and
/// numbers; every other untagged scalar is a string; a tagged one has its
/// tag's type.
package struct YAMLScalar: Sendable, Hashable {
    package var text: String
    package var isPlain: Bool
    package var tag: Tag

    package init(text: String, isPlain: Bool, tag: Tag = .none) {
        self.text = text
        self.isPlain = isPlain
        self.tag = tag
    }

    /// The standard scalar tags that change how a scalar resolves (`!!str`
    /// and `!` are recorded as not plain instead).
    package enum Tag: UInt8, Sendable, Hashable {
        case none, int, float, bool, null
    }

    /// The typed value of a scalar.
    package enum Value: Sendable, Hashable {
        case null
        case bool(Bool)
        case int(Int)
        /// A core-schema integer outside the 64-bit range: an error wherever
        /// a number is needed, never rounded to a float.
        case integerOutOfRange
        case double(Double)
        case string(String)
    }

    /// Resolves the scalar: by its tag when it has one, else for plain
    /// scalars by the YAML 1.2 core schema: `null`/`~`/empty,
    /// `true`/`false`, integers (`[-+]?[0-9]+`, `0x[0-9a-fA-F]+`,
    /// `0o[0-7]+`), floats (`1.5`, `1e3`, `.inf`, `.nan`); anything else, and
    /// every quoted scalar, is a string.
    package var value: Value {
        switch tag {
        case .none: return isPlain ? Self.coreValue(text) : .string(text)
        case .int:
            let v = Self.coreValue(text)
            switch v {
            case .int, .integerOutOfRange: return v
            default: return .string(text)
            }
        case .float:
            switch Self.coreValue(text) {
            case .double(let d): return .double(d)
            case .int(let n): return .double(Double(n))
            case .integerOutOfRange:
                // Decimal only: `Double(_:)` would read `0x...` as a hex float.
                if Self.decimalInteger(text.utf8) != nil, let d = Double(text) { return .double(d) }
                return .string(text)
            default: return .string(text)
            }
        case .bool:
            if case .bool(let b) = Self.coreValue(text) { return .bool(b) }
            return .string(text)
        case .null:
            return Self.isNullText(text) ? .null : .string(text)
        }
    }

    /// The core-schema value of `text` as a plain scalar.
    static func coreValue(_ text: String) -> Value {
        var text = text
        return text.withUTF8 { bytes in coreValue(bytes) { String(decoding: bytes, as: UTF8.self) } }
    }

    /// The core-schema value of a plain scalar's UTF-8 `bytes`; `string`
    /// makes its text, called only when the value is a string or a float
    /// (so that numbers, booleans and nulls cost no String).
    static func coreValue(_ bytes: UnsafeBufferPointer<UInt8>, string: () -> String) -> Value {
        guard let first = bytes.first else { return .null }
        func `is`(_ word: StaticString) -> Bool {
            bytes.count == word.utf8CodeUnitCount
                && bytes.elementsEqual(UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount))
        }
        switch first {
        case UInt8(ascii: "~"):
            return bytes.count == 1 ? .null : .string(string())
        case UInt8(ascii: "n"), UInt8(ascii: "N"):
            return `is`("null") || `is`("Null") || `is`("NULL") ? .null : .string(string())
        case UInt8(ascii: "t"), UInt8(ascii: "T"):
            return `is`("true") || `is`("True") || `is`("TRUE") ? .bool(true) : .string(string())
        case UInt8(ascii: "f"), UInt8(ascii: "F"):
            return `is`("false") || `is`("False") || `is`("FALSE") ? .bool(false) : .string(string())
        case UInt8(ascii: "."), UInt8(ascii: "+"), UInt8(ascii: "-"):
            if `is`(".inf") || `is`(".Inf") || `is`(".INF") || `is`("+.inf") || `is`("+.Inf") || `is`("+.INF") {
                return .double(.infinity)
            }
            if `is`("-.inf") || `is`("-.Inf") || `is`("-.INF") { return .double(-.infinity) }
            if `is`(".nan") || `is`(".NaN") || `is`(".NAN") { return .double(.nan) }
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            break
        default:
            // Only text starting like a number can be one.
            return .string(string())
        }
        if let n = integer(bytes) { return n.map { .int($0) } ?? .integerOutOfRange }
        let text = string()
        if isFloat(bytes), let d = Double(text) { return .double(d) }
        return .string(text)
    }

    /// For core-schema integer text: `.some(value)`, or `.some(nil)` when it
    /// is outside the 64-bit range. nil when the text is not an integer.
    /// Written out rather than `Int(_:radix:)`, which also accepts a sign
    /// after `0x` (`0x-1`, `0x+1F` are strings in YAML).
    static func integer<C: Collection<UInt8>>(_ utf8: C) -> Int?? {
        var i = utf8.startIndex
        guard i != utf8.endIndex else { return nil }
        if utf8[i] == UInt8(ascii: "0") {
            let second = utf8.index(after: i)
            if second != utf8.endIndex, utf8[second] == UInt8(ascii: "x") || utf8[second] == UInt8(ascii: "o") {
                let radix = utf8[second] == UInt8(ascii: "x") ? 16 : 8
                i = utf8.index(after: second)
                guard i != utf8.endIndex else { return nil }
                var n = 0
                var fits = true
                for c in utf8[i...] {
                    guard let d = digit(c), d < radix else { return nil }
                    if fits {
                        let (m, o1) = n.multipliedReportingOverflow(by: radix)
                        let (s, o2) = m.addingReportingOverflow(d)
                        if o1 || o2 { fits = false } else { n = s }
                    }
                }
                return .some(fits ? n : nil)
            }
        }
        return decimalInteger(utf8)
    }

    /// `[-+]?[0-9]+`, as for `integer`.
    static func decimalInteger<C: Collection<UInt8>>(_ utf8: C) -> Int?? {
        var i = utf8.startIndex
        guard i != utf8.endIndex else { return nil }
        let negative = utf8[i] == UInt8(ascii: "-")
        if negative || utf8[i] == UInt8(ascii: "+") { i = utf8.index(after: i) }
        guard i != utf8.endIndex else { return nil }
        // Accumulated as a negative number, whose range includes Int.min.
        var n = 0
        var fits = true
        for c in utf8[i...] {
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            if fits {
                let (m, o1) = n.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.subtractingReportingOverflow(Int(c - UInt8(ascii: "0")))
                if o1 || o2 { fits = false } else { n = s }
            }
        }
        guard fits else { return .some(nil) }
        if negative { return .some(n) }
        return .some(n == .min ? nil : -n)
    }

    private static func digit(_ c: UInt8) -> Int? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(c - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(c - UInt8(ascii: "A")) + 10
        default: nil
        }
    }

    /// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
    private static func isFloat<C: Collection<UInt8>>(_ utf8: C) -> Bool {
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

    /// True for a null scalar: plain `null`, `~` or empty, or tagged `!!null`.
    package var isNull: Bool {
        switch tag {
        case .null: return true
        case .none: return isPlain && Self.isNullText(text)
        default: return false
        }
    }

    /// `null`, `Null`, `NULL`, `~` or empty.
    static func isNullText(_ text: String) -> Bool {
        switch text.utf8.count {
        case 0: return true
        case 1: return text == "~"
        case 4: return text == "null" || text == "Null" || text == "NULL"
        default: return false
        }
    }
}

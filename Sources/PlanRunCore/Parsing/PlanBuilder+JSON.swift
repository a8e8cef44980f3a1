/// `with:` values: any YAML value, written straight to canonical JSON text
/// (the bytes `JSONValue.canonicalJSON` gives for the same value) without a
/// `JSONValue` per node, so that a list of millions of numbers costs its
/// text, not a tree.
extension PlanBuilder {
    /// `node` as canonical JSON. Mapping keys are their text, sorted as
    /// `JSONValue` sorts them. Numbers JSON cannot hold (outside 64 bits,
    /// infinite, NaN) are reported and written as null. Recursive: the
    /// reader keeps nesting, aliases expanded, within `YAMLReader.maxDepth`.
    mutating func json(_ node: YAMLNode, key: String = "with") -> CanonicalJSON {
        var out: [UInt8] = []
        writeJSON(node, key: key, to: &out)
        return CanonicalJSON(canonicalBytes: out)
    }

    private mutating func writeJSON(_ node: YAMLNode, key: String, to out: inout [UInt8]) {
        if let value = doc.value(node) {
            switch value {
            case .null: out.append(contentsOf: "null".utf8)
            case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
            case .int(let n): appendDecimal(n, to: &out)
            case .integerOutOfRange:
                collector.error(.integerOutOfRange(text: doc.scalar(node)?.text ?? ""), at: at(node))
                out.append(contentsOf: "null".utf8)
            case .double(let d):
                if d.isFinite {
                    out.append(contentsOf: String(d).utf8)
                } else {
                    collector.error(.numberNotFinite(key: key, text: doc.scalar(node)?.text ?? ""), at: at(node))
                    out.append(contentsOf: "null".utf8)
                }
            case .string(let t):
                JSONValue.writeString(Expression.mayContain(t) ? expand(t, at: node) ?? t : t, to: &out)
            }
            return
        }
        if let items = doc.items(node) {
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                writeJSON(item, key: key, to: &out)
            }
            out.append(UInt8(ascii: "]"))
            return
        }
        let pairs = doc.pairs(node) ?? YAMLPairs(children: [])
        // Keys equal as Strings are one key (as in a `[String: JSONValue]`):
        // the first is kept, a later one that differs in bytes is reported.
        var values: [String: YAMLNode] = [:]
        for pair in pairs {
            guard let k = keyText(pair) else { continue }
            if let index = values.index(forKey: k) {
                reportNormalizationClash(pairs, key: k, first: values.keys[index], at: pair.key)
                continue
            }
            values[k] = pair.value
        }
        out.append(UInt8(ascii: "{"))
        for (i, (k, value)) in values.sorted(by: { $0.key < $1.key }).enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONValue.writeString(k, to: &out)
            out.append(UInt8(ascii: ":"))
            writeJSON(value, key: key, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// `String(n)`'s digits, without making a String.
    private func appendDecimal(_ n: Int, to out: inout [UInt8]) {
        if n < 0 { out.append(UInt8(ascii: "-")) }
        // Digits of the magnitude, as a negative number (Int.min has no
        // positive counterpart), least significant first.
        var rest = n < 0 ? n : -n
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[count] = UInt8(ascii: "0") + UInt8(-(rest % 10))
                rest /= 10
                count += 1
            } while rest != 0
            for i in stride(from: count - 1, through: 0, by: -1) { out.append(buffer[i]) }
        }
    }
}

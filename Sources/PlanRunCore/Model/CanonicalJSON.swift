/// A JSON value kept as its canonical text: the UTF-8 of
/// `JSONValue.canonicalJSON` (sorted keys, no whitespace). A subtask's
/// `with:` is stored this way: a plan may hold millions of values there, and
/// as text each costs its few bytes instead of a `JSONValue` per value.
/// `value` decodes it back exactly (integers stay integers, floats floats).
///
/// Two values are equal when their canonical texts are; this is
/// `JSONValue`'s equality except that `0.0` and `-0.0` differ (JSON cannot
/// hold NaN or infinities: they are written `null`).
package struct CanonicalJSON: Sendable, Hashable {
    package private(set) var bytes: [UInt8]

    /// `bytes` must be canonical JSON text as `JSONValue.canonicalJSON`
    /// writes it (the plan builder writes it straight from YAML).
    package init(canonicalBytes bytes: [UInt8]) { self.bytes = bytes }

    package init(_ value: JSONValue) { bytes = Array(value.canonicalJSON.utf8) }

    package var text: String { String(decoding: bytes, as: UTF8.self) }

    /// The value; `.null` if the text is not what `JSONValue` writes (it
    /// always is, by the initializers' contracts).
    package var value: JSONValue {
        bytes.withUnsafeBufferPointer { buffer in
            var reader = CanonicalJSONReader(bytes: buffer)
            return reader.value() ?? .null
        }
    }
}

/// Reads the canonical JSON that `JSONValue` writes. Hand-written rather
/// than Foundation's `JSONDecoder`, which does not say whether `1.0` was an
/// integer or a float: canonical text tells them apart (a float always has
/// a `.` or an exponent, as Swift's `Double.description` writes it).
private struct CanonicalJSONReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var i = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func value() -> JSONValue? {
        guard i < bytes.count else { return nil }
        switch bytes[i] {
        case UInt8(ascii: "n"): return word("null", .null)
        case UInt8(ascii: "t"): return word("true", .bool(true))
        case UInt8(ascii: "f"): return word("false", .bool(false))
        case UInt8(ascii: "\""): return string().map(JSONValue.string)
        case UInt8(ascii: "["):
            i += 1
            var items: [JSONValue] = []
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                guard let item = value() else { return nil }
                items.append(item)
                guard i < bytes.count else { return nil }
                i += 1
                if bytes[i - 1] == UInt8(ascii: "]") { return .array(items) }
                guard bytes[i - 1] == UInt8(ascii: ",") else { return nil }
            }
        case UInt8(ascii: "{"):
            i += 1
            var object: [String: JSONValue] = [:]
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(object) }
            while true {
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\""), let key = string(),
                      i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
                i += 1
                guard let item = value() else { return nil }
                object[key] = item
                guard i < bytes.count else { return nil }
                i += 1
                if bytes[i - 1] == UInt8(ascii: "}") { return .object(object) }
                guard bytes[i - 1] == UInt8(ascii: ",") else { return nil }
            }
        default: return number()
        }
    }

    mutating func word(_ text: StaticString, _ result: JSONValue) -> JSONValue? {
        let n = text.utf8CodeUnitCount
        guard i + n <= bytes.count,
              UnsafeBufferPointer(rebasing: bytes[i..<i + n]).elementsEqual(UnsafeBufferPointer(start: text.utf8Start, count: n))
        else { return nil }
        i += n
        return result
    }

    mutating func number() -> JSONValue? {
        let start = i
        var isFloat = false
        scan: while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"): break
            case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): isFloat = true
            default: break scan
            }
            i += 1
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        if isFloat { return Double(text).map(JSONValue.double) }
        return Int(text).map(JSONValue.int)
    }

    /// A string literal with the escapes `JSONValue.writeString` writes.
    mutating func string() -> String? {
        i += 1 // the opening quote
        var out: [UInt8] = []
        while i < bytes.count {
            let c = bytes[i]
            i += 1
            switch c {
            case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard i < bytes.count else { return nil }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    // Only control characters are written this way.
                    guard i + 4 <= bytes.count,
                          let code = UInt8(String(decoding: UnsafeBufferPointer(rebasing: bytes[i..<i + 4]), as: UTF8.self), radix: 16)
                    else { return nil }
                    out.append(code)
                    i += 4
                default: out.append(e)
                }
            default: out.append(c)
            }
        }
        return nil
    }
}

import Foundation

extension ActionResult {
    /// Reads an `ac` entry. The exact bytes `jsonBytes` writes are read by
    /// `decodeFixedShape`; anything else (other key order, whitespace,
    /// escapes, `null`, unknown fields, numbers past `Int`) goes through
    /// `JSONDecoder`, so what is accepted, and as what, is what
    /// `JSONDecoder` accepts. nil when the bytes are not an `ActionResult`.
    package static func decode(_ bytes: [UInt8]) -> ActionResult? {
        if let fast = decodeFixedShape(bytes) { return fast }
        return try? JSONDecoder().decode(ActionResult.self, from: Data(bytes))
    }

    /// The entry when `bytes` are exactly in the shape `jsonBytes` writes
    /// (keys in that order, no whitespace, strings without escapes, plain
    /// integers); nil at the first byte that differs, whatever the rest.
    ///
    /// Hand-written: a restore decodes one entry per subtask, and
    /// `JSONDecoder`'s generic `Codable` path costs about as much as the
    /// rest of the restore's own work; no JSON package in the build
    /// offers a cheaper path, and this reader only has to recognise one
    /// shape, falling back to `JSONDecoder` for everything else.
    package static func decodeFixedShape(_ bytes: [UInt8]) -> ActionResult? {
        bytes.withUnsafeBufferPointer { buffer in
            var reader = FixedShapeReader(bytes: buffer)
            return reader.actionResult()
        }
    }
}

/// A cursor over the bytes of one entry in the shape `ActionResult.jsonBytes`
/// writes. Every method returns nil (or false) when the next bytes are not
/// what that shape has there.
private struct FixedShapeReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var at = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func actionResult() -> ActionResult? {
        guard take("{\"components\":"), let components = map({ $0.string() }),
              take(",\"exit_status\":"), let exitStatus = integer(),
              take(",\"format\":"), let format = integer(),
              take(",\"outputs\":["), let outputs = outputList(),
              take(",\"result_blob\":"), let resultBlob = string()
        else { return nil }
        var resultContents: String?
        if take(",\"result_contents\":") {
            guard let text = string() else { return nil }
            resultContents = text
        }
        guard take(",\"result_digest\":"), let resultDigest = string() else { return nil }
        var sizes: [String: Int]?
        if take(",\"sizes\":") {
            guard let named = map({ $0.integer() }) else { return nil }
            sizes = named
        }
        guard take("}"), at == bytes.count else { return nil }
        var action = ActionResult(resultDigest: resultDigest, resultBlob: resultBlob, outputs: outputs, components: components)
        action.format = format
        action.exitStatus = exitStatus
        action.resultContents = resultContents
        action.sizes = sizes
        return action
    }

    /// The outputs after the opening `[`, through the closing `]`.
    private mutating func outputList() -> [OutputEntry]? {
        var outputs: [OutputEntry] = []
        if take("]") { return outputs }
        repeat {
            guard let output = output() else { return nil }
            outputs.append(output)
        } while take(",")
        return take("]") ? outputs : nil
    }

    private mutating func output() -> OutputEntry? {
        var contents: String?
        if take("{\"contents\":") {
            guard let text = string(), take(",\"digest\":") else { return nil }
            contents = text
        } else if !take("{\"digest\":") {
            return nil
        }
        guard let digest = string(), take(",\"executable\":"), let executable = boolean(),
              take(",\"kind\":"), let kindName = string(), let kind = OutputEntry.Kind(rawValue: kindName)
        else { return nil }
        var mode: Int?
        if take(",\"mode\":") {
            guard let value = integer() else { return nil }
            mode = value
        }
        guard take(",\"path\":"), let path = string(), take("}") else { return nil }
        var output = OutputEntry(path: path, kind: kind, digest: digest, executable: executable, mode: mode)
        output.contents = contents
        return output
    }

    /// `{}` or `{"k":VALUE,…}` with each VALUE read by `value`; nil on a
    /// repeated key (left to `JSONDecoder`).
    private mutating func map<Value>(_ value: (inout FixedShapeReader) -> Value?) -> [String: Value]? {
        guard take("{") else { return nil }
        var map: [String: Value] = [:]
        if take("}") { return map }
        repeat {
            guard let key = string(), take(":"), let item = value(&self),
                  map.updateValue(item, forKey: key) == nil
            else { return nil }
        } while take(",")
        return take("}") ? map : nil
    }

    /// Moves past `text` if the bytes continue with it.
    private mutating func take(_ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard bytes.count - at >= count else { return false }
        let start = text.utf8Start
        for k in 0..<count where bytes[at + k] != start[k] { return false }
        at += count
        return true
    }

    /// A string without escapes or control bytes, valid UTF-8.
    private mutating func string() -> String? {
        guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { return nil }
        let start = at + 1
        var end = start
        while end < bytes.count {
            let byte = bytes[end]
            if byte == UInt8(ascii: "\"") {
                guard let text = String(validating: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
                else { return nil }
                at = end + 1
                return text
            }
            if byte == UInt8(ascii: "\\") || byte < 0x20 { return nil }
            end += 1
        }
        return nil
    }

    /// `0`, or digits without a leading zero, optionally after `-`; no
    /// fraction or exponent; nil past `Int`'s range.
    private mutating func integer() -> Int? {
        var k = at
        let negative = k < bytes.count && bytes[k] == UInt8(ascii: "-")
        if negative { k += 1 }
        let first = k
        var value = 0
        while k < bytes.count, bytes[k] >= UInt8(ascii: "0"), bytes[k] <= UInt8(ascii: "9") {
            let digit = Int(bytes[k] - UInt8(ascii: "0"))
            let (times, overflowA) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowB) = negative ? times.subtractingReportingOverflow(digit) : times.addingReportingOverflow(digit)
            guard !overflowA, !overflowB else { return nil }
            value = sum
            k += 1
        }
        guard k > first, !(bytes[first] == UInt8(ascii: "0") && k - first > 1) else { return nil }
        if k < bytes.count, bytes[k] == UInt8(ascii: ".") || bytes[k] == UInt8(ascii: "e") || bytes[k] == UInt8(ascii: "E") {
            return nil
        }
        at = k
        return value
    }

    private mutating func boolean() -> Bool? {
        if take("true") { return true }
        if take("false") { return false }
        return nil
    }
}

import Foundation

/// The `outputs` column of `subtask_state`, format 2: netstring fields
/// (`FieldFramer`'s framing, `LENGTH:BYTES,`) in this order:
///   "h2", the number of outputs N, then N times: path, kind (`file`,
///   `folder` or `symlink`), digest, then `m` and the permission bits in
///   octal (`m644`) when a mode is recorded, else `x` (executable) or `-`
///   (rows written before modes were recorded); then name, digest for
///   each key component, names in ascending byte order.
/// Skipping a subtask needs only the outputs, which come first, so a
/// history load reads a few short fields per row and stops; the
/// components are read only to explain a changed key. Format 1 (JSON
/// `{"components": {...}, "outputs": [...]}`), written by earlier
/// versions, is still read. Any text that does not parse is nil: the row
/// reads as absent and the subtask runs again.
enum HistoryColumn {
    static let marker = "h2"

    static func encode(outputs: [OutputEntry], components: [String: String]) -> String {
        var framer = FieldFramer()
        framer.add(marker)
        framer.add(String(outputs.count))
        for output in outputs {
            framer.add(output.path)
            framer.add(output.kind.rawValue)
            framer.add(output.digest)
            if let mode = output.mode {
                framer.add("m" + String(mode, radix: 8))
            } else {
                framer.add(output.executable ? "x" : "-")
            }
        }
        for name in components.keys.sorted(by: byteOrder) {
            framer.add(name)
            framer.add(components[name]!)
        }
        return String(decoding: framer.bytes, as: UTF8.self)
    }

    /// The outputs of a column; nil when it does not parse.
    static func outputs(_ text: String) -> [OutputEntry]? {
        if text.utf8.first == UInt8(ascii: "{") { return JSONColumn.decode(text)?.outputs }
        var text = text
        return text.withUTF8 { bytes -> [OutputEntry]? in
            var reader = FieldReader(bytes)
            return reader.readOutputs()
        }
    }

    /// The key components of a column; nil when it does not parse.
    static func components(_ text: String) -> [String: String]? {
        if text.utf8.first == UInt8(ascii: "{") { return JSONColumn.decode(text)?.components }
        var text = text
        return text.withUTF8 { bytes -> [String: String]? in
            var reader = FieldReader(bytes)
            guard reader.readOutputs() != nil else { return nil }
            var components: [String: String] = [:]
            while !reader.atEnd {
                guard let name = reader.nextString(), let digest = reader.nextString() else { return nil }
                components[name] = digest
            }
            return components
        }
    }

    /// Format 1, as written before format 2.
    private struct JSONColumn: Decodable {
        var outputs: [OutputEntry]
        var components: [String: String]

        static func decode(_ text: String) -> JSONColumn? {
            try? JSONDecoder().decode(JSONColumn.self, from: Data(text.utf8))
        }
    }

    /// Reads netstring fields from UTF-8 bytes.
    private struct FieldReader {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0

        init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        var atEnd: Bool { position == bytes.count }

        /// The byte range of the next field; nil when malformed or at the end.
        mutating func next() -> Range<Int>? {
            var length = 0
            var digits = 0
            while position < bytes.count, bytes[position] >= UInt8(ascii: "0"), bytes[position] <= UInt8(ascii: "9") {
                length = length * 10 + Int(bytes[position] - UInt8(ascii: "0"))
                position += 1
                digits += 1
                if digits > 9 { return nil }
            }
            guard digits > 0, position < bytes.count, bytes[position] == UInt8(ascii: ":") else { return nil }
            let start = position + 1
            guard length < bytes.count - start, bytes[start + length] == UInt8(ascii: ",") else { return nil }
            position = start + length + 1
            return start..<(start + length)
        }

        mutating func nextString() -> String? {
            guard let range = next() else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }

        func equals(_ range: Range<Int>, _ text: StaticString) -> Bool {
            range.count == text.utf8CodeUnitCount
                && memcmp(bytes.baseAddress! + range.lowerBound, text.utf8Start, range.count) == 0
        }

        /// The marker, the count and the outputs.
        mutating func readOutputs() -> [OutputEntry]? {
            guard let marker = next(), equals(marker, "h2"), let countField = nextString(),
                  let count = Int(countField), count >= 0, count <= bytes.count
            else { return nil }
            var outputs: [OutputEntry] = []
            outputs.reserveCapacity(count)
            for _ in 0..<count {
                guard let path = nextString(), let kindRange = next(), let digest = nextString(), let flag = next()
                else { return nil }
                let kind: OutputEntry.Kind
                if equals(kindRange, "file") {
                    kind = .file
                } else if equals(kindRange, "folder") {
                    kind = .folder
                } else if equals(kindRange, "symlink") {
                    kind = .symlink
                } else {
                    return nil
                }
                let executable: Bool
                var mode: Int?
                if equals(flag, "x") {
                    executable = true
                } else if equals(flag, "-") {
                    executable = false
                } else if flag.count >= 2, flag.count <= 4, bytes[flag.lowerBound] == UInt8(ascii: "m"),
                          let bits = Int(String(decoding: UnsafeBufferPointer(rebasing: bytes[(flag.lowerBound + 1)..<flag.upperBound]), as: UTF8.self), radix: 8),
                          bits >= 0, bits <= 0o777 {
                    mode = bits
                    executable = bits & 0o111 != 0
                } else {
                    return nil
                }
                outputs.append(OutputEntry(path: path, kind: kind, digest: digest, executable: executable, mode: mode))
            }
            return outputs
        }
    }
}


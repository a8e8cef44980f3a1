import Foundation
import Testing
@testable import PlanRunCore

/// `ActionResult.decode`: the fixed-shape reader takes exactly what
/// `jsonBytes` writes, and everything it takes it reads as `JSONDecoder`
/// would; the rest goes to `JSONDecoder`, garbage is nil, never a crash.
@Suite struct CachingActionDecodingTests {
    static let hexA = String(repeating: "a", count: 64)
    static let hexB = String(repeating: "b", count: 64)

    /// Entries in every shape `jsonBytes` writes: with and without inline
    /// contents, modes, sizes, outputs and components; non-ASCII paths;
    /// negative and large numbers.
    static var entries: [ActionResult] {
        var plain = ActionResult(resultDigest: hexA, resultBlob: hexB, outputs: [], components: [:])
        var full = ActionResult(
            resultDigest: hexA, resultBlob: hexB,
            outputs: [OutputEntry(path: "out/a.txt", kind: .file, digest: hexA, executable: true, mode: 0o755),
                      OutputEntry(path: "site", kind: .folder, digest: hexB),
                      OutputEntry(path: "latest", kind: .symlink, digest: hexA),
                      OutputEntry(path: "déjà vu/ü.txt", kind: .file, digest: hexB, mode: 0)],
            components: ["command": hexA, "input:src/a b.c": hexB, "env": hexA])
        full.outputs[0].contents = "aW5wdXQgNTEyCg=="
        full.outputs[3].contents = ""
        full.resultContents = "ZWNobwo="
        full.sizes = [hexA: 10, hexB: Int.max]
        plain.exitStatus = -1
        var noContents = full
        noContents.resultContents = nil
        noContents.sizes = [:]
        var oldFormat = full.withoutContents
        oldFormat.format = 1
        oldFormat.outputs[0].mode = nil
        return [plain, full, noContents, oldFormat]
    }

    @Test func everyShapeTheWriterMakesIsReadByTheFixedShapeReader() throws {
        for entry in Self.entries {
            let bytes = entry.jsonBytes
            #expect(ActionResult.decodeFixedShape(bytes) == entry, "\(String(decoding: bytes, as: UTF8.self))")
            #expect(try JSONDecoder().decode(ActionResult.self, from: Data(bytes)) == entry)
            #expect(ActionResult.decode(bytes) == entry)
        }
    }

    /// Text the writer escapes, JSONDecoder's own output (other key
    /// order, `\/`), whitespace and unknown fields: not the fixed shape,
    /// read by `JSONDecoder` all the same.
    @Test func otherValidShapesFallBackToJSONDecoder() throws {
        var escaped = Self.entries[1]
        escaped.outputs[0].path = "out/quote\"back\\slash\nline\u{1}.txt"
        let encoder = JSONEncoder()
        let variants: [(ActionResult, [UInt8])] = [
            (escaped, escaped.jsonBytes),
            (Self.entries[1], Array(try encoder.encode(Self.entries[1]))),
            (Self.entries[1], Array(String(decoding: Self.entries[1].jsonBytes, as: UTF8.self)
                .replacingOccurrences(of: ",\"format\":", with: ", \"format\" : ").utf8)),
            (Self.entries[1], Array(String(decoding: Self.entries[1].jsonBytes, as: UTF8.self)
                .replacingOccurrences(of: "{\"components\":", with: "{\"extra\":[1,{\"x\":null}],\"components\":").utf8)),
            (Self.entries[0], Array(String(decoding: Self.entries[0].jsonBytes, as: UTF8.self)
                .replacingOccurrences(of: "\"format\":2", with: "\"format\":2.0").utf8)),
        ]
        for (entry, bytes) in variants {
            #expect(ActionResult.decodeFixedShape(bytes) == nil, "\(String(decoding: bytes, as: UTF8.self))")
            #expect(ActionResult.decode(bytes) == entry, "\(String(decoding: bytes, as: UTF8.self))")
        }
    }

    @Test(arguments: [
        "", "{", "null", "[]", "\"x\"", "{not json", #"{"format":2}"#,
        // the right keys with values of the wrong type
        #"{"components":[],"exit_status":0,"format":2,"outputs":[],"result_blob":"b","result_digest":"d"}"#,
        #"{"components":{},"exit_status":"0","format":2,"outputs":[],"result_blob":"b","result_digest":"d"}"#,
        #"{"components":{"a":1},"exit_status":0,"format":2,"outputs":[],"result_blob":"b","result_digest":"d"}"#,
        #"{"components":{},"exit_status":0,"format":2,"outputs":[{"digest":"d","executable":0,"kind":"file","path":"p"}],"result_blob":"b","result_digest":"d"}"#,
        #"{"components":{},"exit_status":0,"format":2,"outputs":[{"digest":"d","executable":false,"kind":"pipe","path":"p"}],"result_blob":"b","result_digest":"d"}"#,
        // numbers past Int, leading zeros, a lone minus
        #"{"components":{},"exit_status":0,"format":99999999999999999999999,"outputs":[],"result_blob":"b","result_digest":"d"}"#,
        #"{"components":{},"exit_status":0,"format":-99999999999999999999999,"outputs":[],"result_blob":"b","result_digest":"d"}"#,
        #"{"components":{},"exit_status":0,"format":02,"outputs":[],"result_blob":"b","result_digest":"d"}"#,
        #"{"components":{},"exit_status":-,"format":2,"outputs":[],"result_blob":"b","result_digest":"d"}"#,
        // trailing bytes, a control byte in a string, bad UTF-8
        #"{"components":{},"exit_status":0,"format":2,"outputs":[],"result_blob":"b","result_digest":"d"}x"#,
        "{\"components\":{},\"exit_status\":0,\"format\":2,\"outputs\":[],\"result_blob\":\"b\u{1}\",\"result_digest\":\"d\"}",
    ])
    func garbageIsNil(_ text: String) {
        #expect(ActionResult.decodeFixedShape(Array(text.utf8)) == nil)
        #expect(ActionResult.decode(Array(text.utf8)) == nil)
    }

    @Test func invalidUTF8IsNotReadAsText() {
        var bytes = Self.entries[1].jsonBytes
        let at = bytes.firstIndex(of: "é".utf8.first!)!  // the first byte of `é` in the path
        bytes[at] = 0xFF
        #expect(ActionResult.decodeFixedShape(bytes) == nil)
        #expect(ActionResult.decode(bytes) == (try? JSONDecoder().decode(ActionResult.self, from: Data(bytes))))
    }

    /// Every prefix of an entry, and many entries with bytes changed,
    /// inserted or removed: no crash, and whatever the fixed-shape reader
    /// accepts, `JSONDecoder` reads the same way.
    @Test func truncatedAndMutatedEntriesAgreeWithJSONDecoder() {
        var rng = SplitMix(seed: 14)
        let alphabet = Array("{}[]\":,0123456789-.e truefalsnl\\/abcé".utf8) + [0x00, 0x1F, 0x80, 0xFF]
        for entry in Self.entries {
            let bytes = entry.jsonBytes
            for end in 0..<bytes.count {
                let prefix = Array(bytes[..<end])
                #expect(ActionResult.decodeFixedShape(prefix) == nil)
                #expect(ActionResult.decode(prefix) == nil)
            }
            for _ in 0..<1500 {
                var mutated = bytes
                for _ in 0..<(1 + Int(rng.next() % 3)) {
                    let at = Int(rng.next() % UInt64(mutated.count))
                    let byte = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                    switch rng.next() % 3 {
                    case 0: mutated[at] = byte
                    case 1: mutated.insert(byte, at: at)
                    default: if mutated.count > 1 { mutated.remove(at: at) }
                    }
                }
                let viaDecoder = try? JSONDecoder().decode(ActionResult.self, from: Data(mutated))
                if let fast = ActionResult.decodeFixedShape(mutated) {
                    #expect(fast == viaDecoder, "\(String(decoding: mutated, as: UTF8.self))")
                }
                #expect(ActionResult.decode(mutated) == viaDecoder, "\(String(decoding: mutated, as: UTF8.self))")
            }
        }
    }
}

/// A small deterministic generator (the mutations are the same every run).
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

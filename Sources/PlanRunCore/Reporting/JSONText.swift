/// A JSON document whose objects keep their keys in the order given, for
/// output formats where the order is part of the interface (the dry run's
/// `--format json`, `build --json` and `status --json` are documented key by
/// key). `JSONValue` sorts keys instead.
package indirect enum JSONText: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONText])
    case object([(String, JSONText)])

    package static func == (lhs: JSONText, rhs: JSONText) -> Bool { lhs.rendered() == rhs.rendered() }
    package func hash(into hasher: inout Hasher) { hasher.combine(rendered()) }

    /// Compact JSON text, keys in the given order.
    package func rendered() -> String {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        write(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    // Renders into bytes: appending to a `String` scalar by scalar was most
    // of the time of `planrun plan --format json` on large plans.
    private func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): out.append(contentsOf: String(i).utf8)
        case .double(let d):
            if !d.isFinite { out.append(contentsOf: "null".utf8) }
            else if d == d.rounded(), abs(d) < 1e15 { out.append(contentsOf: String(Int(d)).utf8) }
            else { out.append(contentsOf: String(d).utf8) }
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")); out.append(UInt8(ascii: " ")) }
                item.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let pairs):
            out.append(UInt8(ascii: "{"))
            for (i, (key, value)) in pairs.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")); out.append(UInt8(ascii: " ")) }
                JSONValue.writeString(key, to: &out)
                out.append(UInt8(ascii: ":")); out.append(UInt8(ascii: " "))
                value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Converts a `JSONValue` (keys sorted).
    package init(_ value: JSONValue) {
        switch value {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .array(a.map(JSONText.init))
        case .object(let o): self = .object(o.keys.sorted().map { ($0, JSONText(o[$0]!)) })
        }
    }
}

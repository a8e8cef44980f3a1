/// Plan durations: `500ms`, `10s`, `5m`, `2h`, or combinations such as `1m30s`.
package enum DurationText {
    /// Parses a duration; nil when the text is not one.
    package static func parse(_ text: String) -> Duration? {
        var total: Int64 = 0 // milliseconds
        var chars = Substring(text)
        guard !chars.isEmpty else { return nil }
        while !chars.isEmpty {
            let digits = chars.prefix(while: { $0.isASCII && $0.isNumber })
            guard !digits.isEmpty, let n = Int64(digits) else { return nil }
            chars = chars.dropFirst(digits.count)
            let unitText = chars.prefix(while: { $0.isASCII && $0.isLetter })
            chars = chars.dropFirst(unitText.count)
            let factor: Int64
            switch unitText {
            case "ms": factor = 1
            case "s": factor = 1_000
            case "m": factor = 60_000
            case "h": factor = 3_600_000
            default: return nil
            }
            let (product, overflow1) = n.multipliedReportingOverflow(by: factor)
            let (sum, overflow2) = total.addingReportingOverflow(product)
            guard !overflow1, !overflow2 else { return nil }
            total = sum
        }
        return .milliseconds(total)
    }

    /// Formats a duration the way a plan would write it (`1m30s`, `250ms`).
    package static func format(_ d: Duration) -> String {
        let ms = d.inMilliseconds
        if ms == 0 { return "0s" }
        var rest = ms
        var out = ""
        for (unit, size) in [("h", Int64(3_600_000)), ("m", 60_000), ("s", 1_000), ("ms", 1)] where rest >= size {
            out += "\(rest / size)\(unit)"
            rest %= size
        }
        return out
    }
}

extension Duration {
    /// The duration in seconds, as a `Double` (for `Date`, `URLRequest`,
    /// printing).
    package var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// The duration in whole milliseconds, rounded toward zero.
    package var inMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}

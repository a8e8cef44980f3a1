import Foundation

/// Human-readable progress. On a terminal: one live status line
/// (`[12/40] 3 running · 5 cached · compile-foo`), rewritten in place, with
/// each subtask's output printed whole above it when the subtask ends (as
/// ninja's StatusPrinter). Elsewhere (CI, pipes): one line per event. Ends
/// with a summary. It writes through `write`; Core never prints itself.
package final class TextReporter: ProgressReporter {
    private let isTerminal: Bool
    private let write: (String) -> Void
    private let flushOutput: (() -> Void)?
    private let width: Int
    private let commandLines: [String: String]
    private var statusLine = ""
    private var lastStarted: String?

    /// `width` caps the status line on a terminal. `flush`: called by
    /// `flush()`, when `write` buffers (`BufferedOutput`). `commandLines`:
    /// subtask id -> command line, printed as `$ COMMAND` between a
    /// finished subtask's line and its output (`-v`); empty: none.
    package init(isTerminal: Bool, width: Int = 100, commandLines: [String: String] = [:],
                 write: @escaping (String) -> Void, flush: (() -> Void)? = nil) {
        self.isTerminal = isTerminal
        self.width = max(20, width)
        self.commandLines = commandLines
        self.write = write
        self.flushOutput = flush
    }

    package func flush() { flushOutput?() }

    package func report(_ event: RunEvent, progress: RunProgress) {
        let counter = "[\(progress.finished)/\(progress.total)]"
        var text = ""
        switch event {
        case .runStarted:
            break
        case .started(let id):
            lastStarted = id
            if !isTerminal { text = "\(counter) start \(id)\n" }
        case .retrying(let id, let attempt, let error, let delay):
            text = "\(counter) retry \(id): attempt \(attempt) failed (\(error)); next attempt in \(Self.seconds(delay))\n"
        case .finished(let report):
            text = line(for: report, counter: counter)
            if let command = commandLines[report.id] { text += Self.block(Array("$ \(command)".utf8)) }
            text += Self.block(report.output)
        case .skipped(let report):
            if report.status == .cached {
                if !isTerminal { text = "\(counter) \(Self.cachedWord(report)) \(report.id)\n" }
            } else if !isTerminal || report.status == .failed {
                text = line(for: report, counter: counter)
            }
        case .runFinished(let summary):
            text = Self.summaryText(summary)
        }
        if isTerminal {
            var out = statusLine.isEmpty ? "" : "\r\u{1B}[K"
            out += text
            if case .runFinished = event {
                statusLine = ""
            } else {
                statusLine = status(progress)
                out += statusLine
            }
            write(out)
        } else if !text.isEmpty {
            write(text)
        }
    }

    private func line(for report: SubtaskReport, counter: String) -> String {
        let time = Self.twoDecimals(report.durationSeconds) + "s"
        switch report.status {
        case .done: return "\(counter) done \(report.id) (\(time))\n"
        case .failed: return "\(counter) FAILED \(report.id): \(report.error ?? "failed") (\(time))\n"
        case .cached: return "\(counter) \(Self.cachedWord(report)) \(report.id)\n"
        case .blocked: return "\(counter) blocked \(report.id): \(report.error ?? "a dependency failed")\n"
        case .cancelled: return "\(counter) cancelled \(report.id)\n"
        case .pending, .running: return "\(counter) \(report.status.rawValue) \(report.id)\n"
        }
    }

    /// `restored` for a subtask whose outputs came back from the cache
    /// store, `cached` for one skipped as up to date.
    private static func cachedWord(_ report: SubtaskReport) -> String {
        report.reason == .restored ? "restored" : "cached"
    }

    private func status(_ progress: RunProgress) -> String {
        var parts = ["\(progress.running.count) running"]
        if progress.cached > 0 { parts.append("\(progress.cached) cached") }
        if progress.failed > 0 { parts.append("\(progress.failed) failed") }
        if let current = progress.running.last { parts.append(current) }
        let line = "[\(progress.finished)/\(progress.total)] " + parts.joined(separator: " · ")
        return line.count > width ? String(line.prefix(width - 1)) + "…" : line
    }

    /// Captured output, made safe for a terminal (control characters other
    /// than tab, newline, carriage return and escape become `?`, invalid
    /// UTF-8 becomes U+FFFD), ending with a newline.
    package static func block(_ bytes: [UInt8]) -> String {
        guard !bytes.isEmpty else { return "" }
        var text = ""
        for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
            let allowed: Set<Unicode.Scalar> = ["\t", "\n", "\r", "\u{1B}"]
            if (scalar.value < 0x20 && !allowed.contains(scalar)) || scalar.value == 0x7F {
                text.unicodeScalars.append("?")
            } else {
                text.unicodeScalars.append(scalar)
            }
        }
        return text.hasSuffix("\n") ? text : text + "\n"
    }

    /// `build completed: 3 done, 1 cached, ... in 1.20s (run ID)` and the errors.
    package static func summaryText(_ summary: RunSummary) -> String {
        var counts = ["\(summary.count(.done)) done"]
        // Restored subtasks are `cached` in the JSON summary; the text tells them apart.
        let restored = summary.reports.count { $0.status == .cached && $0.reason == .restored }
        for status in [SubtaskStatus.cached, .failed, .blocked, .cancelled] {
            let count = summary.count(status) - (status == .cached ? restored : 0)
            if count > 0 { counts.append("\(count) \(status.rawValue)") }
            if status == .cached, restored > 0 { counts.append("\(restored) restored") }
        }
        var head = "build \(summary.status.rawValue)"
        if let reason = summary.reason { head += " (\(reason))" }
        var text = summaryLine(head: head, counts: counts, total: summary.total, seconds: summary.durationSeconds)
            + " (run \(summary.runID))\n"
        for report in summary.reports where report.status == .failed {
            text += "  failed \(report.id): \(report.error ?? "failed")\n"
        }
        return text
    }

    /// The summary of a build the up-to-date stamp answered: `total`
    /// subtasks, all cached, nothing run and no run recorded.
    package static func upToDateText(total: Int, seconds: Double) -> String {
        summaryLine(head: "build \(RunStatus.completed.rawValue)", counts: ["0 done"] + (total > 0 ? ["\(total) cached"] : []),
                    total: total, seconds: seconds) + " (no work to do: nothing changed since the last build)\n"
    }

    private static func summaryLine(head: String, counts: [String], total: Int, seconds: Double) -> String {
        "\(head): \(counts.joined(separator: ", ")) of \(total) in " + String(format: "%.2fs", seconds)
    }

    /// `x` with two decimals, as `String(format: "%.2f")` prints it, without
    /// Foundation's formatter (this runs for every finished subtask).
    static func twoDecimals(_ x: Double) -> String {
        let scaled = x * 100
        // Near a tie the product's rounding error could decide it: let printf.
        guard x.isFinite, x >= 0, x < 1e12, abs(scaled - scaled.rounded(.down) - 0.5) > 1e-6 else {
            return String(format: "%.2f", x)
        }
        let hundredths = Int(scaled.rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100)." + (fraction < 10 ? "0" : "") + String(fraction)
    }

    private static func seconds(_ d: Duration) -> String {
        String(format: "%.2fs", d.inSeconds)
    }
}

import Foundation
import Testing
@testable import PlanRunCore

/// `TextReporter`'s own number formatting matches `String(format: "%.2f")`.
@Suite struct ExecutionReporterTests {
    @Test(arguments: [0, 0.001, 0.004999, 0.005, 0.015, 0.125, 0.135, 0.995, 0.9951, 1, 1.005, 2.675, 9.999, 10.5, 59.995, 123456.789])
    func twoDecimalsMatchesPrintf(_ x: Double) {
        #expect(TextReporter.twoDecimals(x) == String(format: "%.2f", x))
    }

    @Test func twoDecimalsMatchesPrintfOnRandomDurations() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let x = Double.random(in: 0..<120, using: &generator)
            #expect(TextReporter.twoDecimals(x) == String(format: "%.2f", x), "\(x)")
        }
        for cents in 0..<2_000 {
            let x = Double(cents) / 1000
            #expect(TextReporter.twoDecimals(x) == String(format: "%.2f", x), "\(x)")
        }
    }

    @Test func finishedLineShowsTheDuration() {
        var lines: [String] = []
        let reporter = TextReporter(isTerminal: false) { lines.append($0) }
        var report = SubtaskReport(id: "a", agent: "shell")
        report.status = .done
        report.startedAt = Date(timeIntervalSince1970: 100)
        report.completedAt = Date(timeIntervalSince1970: 101.256)
        reporter.report(.finished(report), progress: RunProgress(total: 1, finished: 1, cached: 0, failed: 0, running: []))
        #expect(lines == ["[1/1] done a (1.26s)\n"])
    }
}

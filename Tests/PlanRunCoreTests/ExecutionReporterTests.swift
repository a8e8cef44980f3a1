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

    /// Progress written through `BufferedOutput` reaches the stream before
    /// the loop waits: while `b` waits (for a file the test creates once
    /// it has read the stream), `a`'s line and `b`'s start are there
    /// already; the summary is there when the run returns.
    @Test func bufferedProgressIsOutBeforeTheLoopWaits() async throws {
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("planrun-buffered-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let output = BufferedOutput(fd: fds[1])
        let reporter = TextReporter(isTerminal: false, write: { output.write($0) }, flush: { output.flush() })
        let wait = "i=0; while [ ! -e release ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done"
        let plan = makePlan([task("a", run: "true"), task("b", ["a"], run: wait)], directory: dir)
        let run = Task { await runPlanReporting(plan, reporter: reporter) }
        func readAll() -> String {
            var bytes = [UInt8](repeating: 0, count: 65536)
            let n = read(fds[0], &bytes, bytes.count)
            return n > 0 ? String(decoding: bytes[0..<n], as: UTF8.self) : ""
        }
        var seen = ""
        let deadline = ContinuousClock.now + .seconds(50)
        while !seen.contains("start b"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            seen += readAll()
        }
        #expect(seen.contains("done a") && seen.contains("start b"), "written while b runs: \(seen)")
        #expect(!seen.contains("done b"))
        #expect(FileManager.default.createFile(atPath: dir + "/release", contents: nil))
        let summary = await run.value
        #expect(summary.status == .completed)
        #expect(readAll().contains("build completed"))
    }
}

private func runPlanReporting(_ plan: Plan, reporter: TextReporter) async -> RunSummary {
    let executor = Executor(graph: TaskGraph(plan: plan), configuration: RunConfiguration(jobs: 2), runner: ProcessCommandRunner())
    return await executor.run(reporter: reporter)
}

import Foundation
import Testing
@testable import PlanRunCore

/// Bounded logs (see docs/DESIGN.md, Trust rules): an attempt's log keeps
/// at most its limit of output: the beginning and the end, with a line
/// saying how much was dropped between them.
@Suite struct ExecutionLogLimitTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var output: String
        var chunk: Int
        var expected: String
        var testDescription: String { "\(output.count) bytes in chunks of \(chunk)" }
    }

    static func dropped(_ n: Int) -> String {
        "\n... planrun dropped \(n) bytes of output here (a log keeps the first 5 and the last 5 bytes of each attempt) ...\n"
    }

    static let alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    static let cases: [Case] = [
        Case(output: "01234567", chunk: 3, expected: "01234567"),
        Case(output: "0123456789", chunk: 10, expected: "0123456789"),
        Case(output: "0123456789a", chunk: 11, expected: "01234" + dropped(1) + "6789a"),
        Case(output: alphabet, chunk: 1, expected: "01234" + dropped(26) + "vwxyz"),
        Case(output: alphabet, chunk: 3, expected: "01234" + dropped(26) + "vwxyz"),
        Case(output: alphabet, chunk: 7, expected: "01234" + dropped(26) + "vwxyz"),
        Case(output: alphabet, chunk: 100, expected: "01234" + dropped(26) + "vwxyz"),
    ]

    @Test(arguments: cases)
    func theLogKeepsTheBeginningAndTheEnd(_ c: Case) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("planrun-log-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/gen.log"
        // An earlier attempt's output stays as it is.
        try Data("first attempt\n".utf8).write(to: URL(fileURLWithPath: path))
        let sink = LogSink(path: path, displayLimit: 1000, header: "--- attempt 2 ---\n", logLimit: 10)
        let bytes = Array(c.output.utf8)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + c.chunk)
            bytes[offset..<end].withUnsafeBytes { sink.append($0) }
            offset = end
        }
        sink.close()
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text == "first attempt\n--- attempt 2 ---\n" + c.expected, "\(text.debugDescription)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["gen.log"])
    }
}

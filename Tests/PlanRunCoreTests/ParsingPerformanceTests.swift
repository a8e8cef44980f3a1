import CYAML
import Testing
@testable import PlanRunCore

#if DEBUG
private let isReleaseBuild = false
#else
private let isReleaseBuild = true
#endif

/// DESIGN/STYLE §4: validating a 10,000-subtask plan (~2 MB) takes at most
/// about 3x a raw libyaml event scan of the same bytes. Timings only mean
/// something optimized: run with `swift test -c release --filter ParsingPerformance`.
@Suite struct ParsingPerformanceTests {
    /// Best of `rounds` runs of `body`.
    static func best(_ rounds: Int, _ body: () -> Void) -> Duration {
        let clock = ContinuousClock()
        var best = Duration.seconds(3600)
        for _ in 0..<rounds { best = min(best, clock.measure(body)) }
        return best
    }

    /// Parses every event and drops it: the floor any reader has to pay.
    static func rawScan(_ bytes: [UInt8]) -> Int {
        var events = 0
        bytes.withUnsafeBufferPointer { buffer in
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) != 0, let base = buffer.baseAddress else { return }
            defer { yaml_parser_delete(&parser) }
            yaml_parser_set_input_string(&parser, base, buffer.count)
            var event = yaml_event_t()
            while yaml_parser_parse(&parser, &event) != 0 {
                let done = event.type == YAML_STREAM_END_EVENT
                yaml_event_delete(&event)
                events += 1
                if done { break }
            }
        }
        return events
    }

    @Test(.enabled(if: isReleaseBuild, "timings need an optimized build"))
    func validationStaysNearARawLibyamlScan() throws {
        let bytes = Array(ParsingLoaderTests.bigPlan(10_000).utf8)
        #expect(bytes.count > 1_500_000)
        #expect(Self.rawScan(bytes) > 250_000)
        var loaded = 0
        let raw = Self.best(5) { _ = Self.rawScan(bytes) }
        let load = Self.best(5) {
            loaded = (try? PlanLoader.load(bytes: bytes, file: "big.yaml", directory: "/plans"))?.subtasks.count ?? -1
        }
        #expect(loaded == 10_000)
        let ratio = load / raw
        #expect(ratio < 3.0, "load \(load) vs raw scan \(raw): \(ratio)x")
    }

    @Test func rawScanCountsEveryEvent() {
        // stream, document, mapping start/end, 2 scalars, document end, stream end
        #expect(Self.rawScan(Array("a: 1\n".utf8)) == 8)
    }
}

import Foundation
import Testing
@testable import PlanRunCore

/// The summary's duration is the whole build's wall time: a fresh clone
/// restored from a slow remote spends it asking ahead (the prefetch),
/// before the first subtask, and that time is in the summary.
@Suite(.enabled(if: NginxServer.isInstalled, "nginx is not installed (apt-get install nginx; .ci/run installs it)"),
       .timeLimit(.minutes(2)))
struct RemoteCacheDurationTests {
    @Test func summaryDurationIncludesTheRemotePrefetch() throws {
        // nginx delays `ac` requests past two a second (queued, not
        // refused): the clone's three lookups take a second at least.
        let server = try NginxServer(
            locations: "location /ac/ { limit_req zone=ac burst=100; dav_methods PUT; create_full_put_path on; }",
            http: "limit_req_zone $binary_remote_addr zone=ac:1m rate=2r/s;")
        defer { server.stop() }
        let source = try RemoteCacheTests.makeSource()
        let warm = try RemoteCacheTests.build(source, remote: server.url)
        #expect(warm.status == 0, "\(warm.stderr)")
        // Past the limiter's window, so the clone's first lookup is not held by the warm build's.
        Thread.sleep(forTimeInterval: 1)

        let clone = try RemoteCacheTests.freshCopy(of: source)
        let before = server.requests().count
        let started = Date()
        let result = try RemoteCacheTests.build(clone, remote: server.url)
        let wall = Date().timeIntervalSince(started)
        #expect(result.status == 0, "\(result.stderr)")
        let summary = try parseJSON(result.stdout)
        #expect(summary["cached"] as? Int == 3)
        #expect(summary["completed"] as? Int == 0)
        #expect(RemoteCacheTests.ran(in: clone).isEmpty)
        let lookups = server.requests().dropFirst(before).filter { $0.hasPrefix("GET /ac/") }
        #expect(lookups.count == 3, "\(lookups)")
        let duration = try #require(summary["duration_seconds"] as? Double)
        #expect(duration >= 0.9, "the summary says \(duration) s; the three lookups alone take 1 s")
        #expect(duration <= wall, "the summary says \(duration) s, the process took \(wall) s")
    }
}

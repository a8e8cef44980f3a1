import Foundation
import Testing
@testable import PlanRunCore

/// A hostile or broken remote cache, served
/// by a real HTTP server on a loopback port: every request ends by its
/// deadline however slowly the body comes, oversized answers are refused,
/// redirects leave neither host nor port, and three failed requests turn
/// the remote off.
@Suite(.timeLimit(.minutes(1))) struct CachingRemoteHostileTests {
    static let key = String(repeating: "a", count: 64)

    static func store(_ server: ScriptedHTTPServer, timeout: TimeInterval = 10) throws -> RemoteCacheStore {
        try #require(RemoteCacheStore(url: server.url, mode: .readWrite, requestTimeout: timeout, retryDelays: []))
    }

    static func temporaryFolder() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("planrun-remote-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A server sending a 1000-byte `ac` body one byte at a time cannot
    /// hold the build: the request fails at its deadline (a miss).
    @Test func test_issue_10_slowBodyEndsAtTheDeadline() async throws {
        let server = try ScriptedHTTPServer { _, _ in
            ScriptedHTTPServer.Answer(body: [UInt8](repeating: 0x7b, count: 1000), delayPerByte: .milliseconds(50))
        }
        defer { server.stop() }
        let store = try Self.store(server, timeout: 0.5)
        let started = ContinuousClock.now
        #expect(await store.action(Self.key) == .unavailable)
        let elapsed = ContinuousClock.now - started
        #expect(server.requests == ["GET /ac/\(Self.key)"])
        // The whole body would take 50 s.
        #expect(elapsed >= .milliseconds(400) && elapsed < .seconds(20), "\(elapsed)")
        #expect(store.isAvailable)  // one failure is not three
        #expect(await store.action(Self.key) == .unavailable)
        #expect(await store.action(Self.key) == .unavailable)
        #expect(store.failureReason == "GET ac/\(Self.key) timed out after 0.5 s")
    }

    /// The deadline covers the retries too.
    @Test func test_issue_10_retriesStayWithinTheDeadline() async throws {
        let server = try ScriptedHTTPServer { _, _ in .serverError }
        defer { server.stop() }
        let store = try #require(RemoteCacheStore(url: server.url, mode: .read, requestTimeout: 0.5,
                                                  retryDelays: Array(repeating: .milliseconds(200), count: 50)))
        #expect(await store.action(Self.key) == .unavailable)
        // 51 attempts without the deadline; within 0.5 s at most 3 fit.
        #expect((1...3).contains(server.requests.count), "\(server.requests)")
    }

    /// An `ac` entry over 1 MiB is refused, whether its size is announced or not.
    @Test(arguments: [true, false])
    func test_issue_10_oversizedActionIsRefused(announced: Bool) async throws {
        let body = [UInt8](repeating: 0x20, count: RemoteCacheStore.actionLimit + 1)
        let server = try ScriptedHTTPServer { _, _ in .ok(body, sendsLength: announced) }
        defer { server.stop() }
        let store = try Self.store(server)
        #expect(await store.action(Self.key)
            == .refused("the answer to GET ac/\(Self.key) is larger than \(RemoteCacheStore.actionLimit) bytes"))
        // At the limit it is taken.
        let fits = try ScriptedHTTPServer { _, _ in .ok(Array(body.dropLast()), sendsLength: announced) }
        defer { fits.stop() }
        let fitting = try Self.store(fits)
        #expect(await fitting.action(Self.key) == .hit(Array(body.dropLast())))
    }

    /// A blob is streamed to its file, checked against its digest, and
    /// refused past the size allowed; nothing is left of a refused one.
    @Test(arguments: [true, false])
    func test_issue_10_blobsAreStreamedAndBounded(announced: Bool) async throws {
        let content = Array("0123456789".utf8)
        let digest = Digest.sha256Hex(content)
        let other = String(repeating: "b", count: 64)
        let server = try ScriptedHTTPServer { _, path in
            path == "/cas/" + digest ? .ok(content, sendsLength: announced) : .ok(Array("evil".utf8), sendsLength: announced)
        }
        defer { server.stop() }
        let store = try Self.store(server)
        let dir = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }

        #expect(await store.blob(digest, into: dir + "/1", limit: 10) == .hit)
        #expect(FileManager.default.contents(atPath: dir + "/1") == Data(content))
        #expect(await store.blob(digest, into: dir + "/2", limit: 9)
            == .refused("the answer to GET cas/\(digest) is larger than 9 bytes"))
        #expect(await store.blob(other, into: dir + "/3", limit: 10)
            == .refused("blob `\(other)` does not match its digest"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["1"])
        #expect(store.isAvailable)
    }

    /// Redirects are followed to the same scheme, host and port only.
    @Test func test_issue_10_redirectsStayOnTheSameOrigin() async throws {
        let elsewhere = try ScriptedHTTPServer { _, _ in .ok(Array("{}".utf8)) }
        defer { elsewhere.stop() }
        let server = try ScriptedHTTPServer { _, path in
            if path.hasPrefix("/ac/") { return .redirect(elsewhere.url + "/moved" + path) }
            if path.hasPrefix("/same/") { return .ok(Array("{}".utf8)) }
            return .redirect("/same" + path)
        }
        defer { server.stop() }
        let store = try Self.store(server)
        #expect(await store.action(Self.key)
            == .refused("GET ac/\(Self.key) was redirected to `\(elsewhere.url)/moved/ac/\(Self.key)`, another host, port or scheme"))
        #expect(elsewhere.requests.isEmpty)
        // A redirect on the same origin is followed.
        let dir = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let digest = Digest.sha256Hex(Array("{}".utf8))
        #expect(await store.blob(digest, into: dir + "/blob", limit: 2) == .hit)
        #expect(server.requests == ["GET /ac/\(Self.key)", "GET /cas/\(digest)", "GET /same/cas/\(digest)"])
    }

    /// After three failed requests the remote is not asked again.
    @Test func test_issue_10_threeFailuresTurnTheRemoteOff() async throws {
        let server = try ScriptedHTTPServer { _, _ in .serverError }
        defer { server.stop() }
        let store = try Self.store(server)
        let dir = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(await store.action(Self.key) == .unavailable)
        #expect(await store.putBlob(Self.key, [1]) == false)
        #expect(store.isAvailable)
        #expect(await store.blob(Self.key, into: dir + "/b", limit: 10) == .unavailable)
        #expect(store.failureReason == "GET cas/\(Self.key) answered HTTP 500")
        #expect(await store.action(Self.key) == .unavailable)
        #expect(await store.putAction(Self.key, [1]) == false)
        #expect(server.requests == ["GET /ac/\(Self.key)", "PUT /cas/\(Self.key)", "GET /cas/\(Self.key)"])
    }
}

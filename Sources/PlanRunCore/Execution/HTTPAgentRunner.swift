#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import AsyncHTTPClient
import NIOCore
import Synchronization

/// Runs attempts of `http` agents: POSTs the context JSON (the document a
/// `command` agent gets on standard input) to the agent's `url` with
/// `Content-Type: application/json`, plus the agent's `headers`, each
/// valued from the environment variable it names.
///
/// A 2xx response is success; its body is the result, plain text or a JSON
/// object `{"content": ..., "metadata": {...}}` read as for `command` agents.
/// A 5xx, a connection error, a missing header variable or a body that
/// starts like JSON but is not is an ordinary failed attempt, so the
/// subtask's retry policy applies to it (the executor decides whether to try
/// again). A 4xx (the request itself is wrong: a bad URL, a missing token)
/// also fails the attempt, but is not retried, except 408 and 429, which
/// say "later". A timeout ends the attempt as `timed_out`; cancellation
/// cancels the request.
///
/// The log gets the request line, the status and the body.
package struct HTTPAgentRunner: CommandRunner {
    /// At most this much of a response body is shown on the console; the
    /// log keeps up to the result limit.
    package var displayLimit: Int

    package init(displayLimit: Int = 256 * 1024) {
        self.displayLimit = displayLimit
    }

    package func run(_ request: AttemptRequest) async -> AttemptOutcome {
        let startedAt = Date()
        let agent = request.agent
        func fail(_ message: String, status: AttemptOutcome.Status = .failed, output: [UInt8] = []) -> AttemptOutcome {
            AttemptOutcome(status: status, error: message, output: output, startedAt: startedAt, completedAt: Date())
        }
        if Task.isCancelled { return fail("cancelled before it started", status: .cancelled) }

        guard let text = agent.url, let url = URL(string: text),
              let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https"
        else { return fail("agent `\(agent.name)` has no `http` or `https` url") }

        var headers = [("Content-Type", "application/json"), ("Accept", "application/json, text/plain")]
        for name in agent.headers.keys.sorted() {
            let variable = agent.headers[name]!
            guard let value = request.environment[variable] else {
                return fail("agent `\(agent.name)`: header `\(name)` takes its value from `\(variable)`, which is not set")
            }
            headers.append((name, value))
        }
        let parts = RequestParts(
            url: text, headers: headers, body: Array(request.context.canonicalJSON.utf8),
            // Our own timer enforces `timeout`; the client's must not fire first.
            timeout: request.timeout.map { $0 + .seconds(5) } ?? .seconds(7 * 24 * 3600))

        let log = HTTPLog(path: request.logPath, attempt: request.attempt)
        log.write("POST \(text)\n")

        // The request and, when there is a timeout, a timer racing it.
        let timedOut = TimeoutFlag()
        let outcome: Result<Response, any Error> = await withTaskGroup(of: Result<Response, any Error>?.self) { group in
            group.addTask {
                do { return .success(try await Self.send(parts)) } catch { return .failure(error) }
            }
            if let timeout = request.timeout {
                group.addTask {
                    do { try await Task.sleep(for: timeout) } catch { return nil }
                    timedOut.fire()
                    return nil
                }
            }
            var first: Result<Response, any Error>?
            while let next = await group.next() {
                if let next {
                    first = next
                    group.cancelAll() // stop the timer
                } else if timedOut.fired {
                    group.cancelAll() // cancel the request
                }
            }
            return first ?? .failure(CancellationError())
        }

        if timedOut.fired {
            log.write("timed out\n")
            return fail("timed out after \(DurationText.format(request.timeout ?? .zero))", status: .timedOut)
        }
        if Task.isCancelled {
            log.write("cancelled\n")
            return fail("cancelled", status: .cancelled)
        }

        let response: Response
        switch outcome {
        case .failure(let error):
            let message = Self.describe(error, url: text)
            log.write(message + "\n")
            return fail("agent `\(agent.name)`: \(message)")
        case .success(let value):
            response = value
        }
        let status = response.status
        var body = response.body
        log.write("HTTP \(status)\n")
        log.write(body)
        if response.truncated { log.write("\nplanrun: response truncated to 1 MiB\n") }
        let shown = Array(body.prefix(displayLimit))
        let completedAt = Date()

        guard (200..<300).contains(status) else {
            var outcome = AttemptOutcome(
                status: .failed, error: "agent `\(agent.name)`: HTTP \(status) from \(text)" + Self.excerpt(body),
                output: shown, startedAt: startedAt, completedAt: completedAt)
            outcome.retryable = !(400..<500).contains(status) || status == 408 || status == 429
            return outcome
        }
        switch ProcessCommandRunner.agentResult(body) {
        case .success(let content): body = content
        case .failure(let problem):
            return AttemptOutcome(
                status: .failed, error: "agent `\(agent.name)`: \(problem.message)", output: shown,
                startedAt: startedAt, completedAt: completedAt)
        }
        return AttemptOutcome(status: .succeeded, result: body, output: shown, startedAt: startedAt, completedAt: completedAt)
    }

    /// A response: its status and the first `AttemptOutcome.resultLimit`
    /// bytes of its body (the rest is read and dropped).
    private struct Response: Sendable {
        var status: Int
        var body: [UInt8]
        var truncated: Bool
    }

    /// Sends the request; cancelling the calling task cancels it.
    private static func send(_ parts: RequestParts) async throws -> Response {
        var request = HTTPClientRequest(url: parts.url)
        request.method = .POST
        for (name, value) in parts.headers { request.headers.replaceOrAdd(name: name, value: value) }
        request.body = .bytes(parts.body)
        let response = try await HTTPClients.agents.execute(request, timeout: HTTPClients.timeAmount(parts.timeout))
        var body: [UInt8] = []
        var truncated = false
        for try await chunk in response.body {
            let room = AttemptOutcome.resultLimit - body.count
            if chunk.readableBytes > room { truncated = true }
            if room > 0 { body += chunk.readableBytesView.prefix(room) }
        }
        return Response(status: Int(response.status.code), body: body, truncated: truncated)
    }

    /// A clear message for a transport error.
    static func describe(_ error: any Error, url: String) -> String {
        switch HTTPClients.failure(error) {
        case .refused: "cannot connect to \(url) (connection refused)"
        case .unresolved: "cannot resolve the host of \(url)"
        case .timedOut: "request to \(url) timed out"
        case .lost: "connection to \(url) lost before a complete response"
        case .tls: "TLS connection to \(url) failed"
        case .other(let text): "request to \(url) failed (\(text))"
        }
    }

    /// `: FIRST LINE` of an error response's body, shortened, or nothing.
    static func excerpt(_ body: [UInt8]) -> String {
        let text = String(decoding: body.prefix(400), as: UTF8.self)
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init)?
            .trimmingCharacters(in: .whitespaces) ?? ""
        guard !line.isEmpty else { return "" }
        return ": " + (line.count > 200 ? String(line.prefix(200)) + "..." : line)
    }
}

/// Set by an attempt's timer when the timeout expires.
private final class TimeoutFlag: Sendable {
    private let value = Mutex(false)
    func fire() { value.withLock { $0 = true } }
    var fired: Bool { value.withLock { $0 } }
}

/// What a request is made of.
private struct RequestParts: Sendable {
    var url: String
    var headers: [(String, String)]
    var body: [UInt8]
    var timeout: Duration
}

/// Appends an http attempt's request, status and body to its log file.
private struct HTTPLog {
    let path: String?
    let attempt: Int

    init(path: String?, attempt: Int) {
        self.path = path
        self.attempt = attempt
        if attempt > 1 { write("--- attempt \(attempt) ---\n") }
    }

    func write(_ text: String) { write(Array(text.utf8)) }

    func write(_ bytes: [UInt8]) {
        guard let path, !bytes.isEmpty else { return }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        ProcessCommandRunner.writeAll(fd, bytes)
        close(fd)
    }
}

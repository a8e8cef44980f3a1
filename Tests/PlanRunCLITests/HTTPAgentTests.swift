import Foundation
import Testing

/// `kind: http` agents end to end: the built binary runs plans whose agents
/// are served by a small Python HTTP server that the test starts on
/// loopback. The server records every request (path, headers, JSON body)
/// so the tests can check what planrun sent, and counts attempts.
@Suite struct HTTPAgentTests {
    /// Routes: `/meta` answers `{content, metadata}`, `/text` plain text,
    /// `/flaky` 500 on the first request and 200 after, `/missing` 404,
    /// `/slow` after 10 s.
    static let serverScript = #"""
        import json, os, signal, sys, threading, time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        # Close what was inherited from the test process (other tests' pipes:
        # holding them open would keep those tests waiting for end of file).
        for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
            if fd > 2:
                try:
                    os.close(fd)
                except OSError:
                    pass
        folder = sys.argv[1]
        # Foundation may start children with signals blocked or ignored.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        lock = threading.Lock()
        counts = {}

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body, content_type):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    counts[self.path] = counts.get(self.path, 0) + 1
                    count = counts[self.path]
                    with open(os.path.join(folder, "requests.jsonl"), "a") as f:
                        f.write(json.dumps({"path": self.path, "method": "POST",
                                            "headers": {k.lower(): v for k, v in self.headers.items()},
                                            "body": json.loads(body)}) + "\n")
                context = json.loads(body)
                if self.path == "/meta":
                    self.reply(200, json.dumps({"content": "reviewed " + context["subtask_id"],
                                                "metadata": {"score": 3}}), "application/json")
                elif self.path == "/text":
                    self.reply(200, "plain result for " + context["subtask_id"], "text/plain")
                elif self.path == "/flaky":
                    if count == 1:
                        self.reply(500, "overloaded, try again", "text/plain")
                    else:
                        self.reply(200, json.dumps({"content": "ok on request %d" % count}), "application/json")
                elif self.path == "/missing":
                    self.reply(404, "no such agent\nsecond line", "text/plain")
                elif self.path == "/slow":
                    time.sleep(10)
                    self.reply(200, "too late", "text/plain")
                else:
                    self.reply(400, "unknown path", "text/plain")

        def watch_parent(parent=os.getppid()):
            # Stop when the test process is gone, even if it crashed.
            while os.getppid() == parent:
                time.sleep(0.2)
            os._exit(0)

        threading.Thread(target=watch_parent, daemon=True).start()
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        with open(os.path.join(folder, "port.tmp"), "w") as f:
            f.write(str(server.server_address[1]))
        os.rename(os.path.join(folder, "port.tmp"), os.path.join(folder, "port"))
        server.serve_forever()
        """#

    /// A running server, stopped by `stop()`. Started with `posix_spawn`,
    /// not Foundation's `Process`: on Linux, a long-running `Process` child
    /// can keep Foundation from reaping the `planrun` processes the test
    /// starts meanwhile (they stay zombies and the test waits forever).
    final class AgentServer: @unchecked Sendable {
        // @unchecked: used only by the test that created it.
        let pid: pid_t
        let folder: URL
        let port: Int

        init(folder: URL) throws {
            self.folder = folder
            let script = folder.appendingPathComponent("server.py")
            try HTTPAgentTests.serverScript.write(to: script, atomically: true, encoding: .utf8)
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            for fd: Int32 in 0...2 {
                posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
            }
            let argv = ["/usr/bin/env", "python3", script.path, folder.path]
            var cArgs = argv.map { strdup($0) } + [nil]
            defer { cArgs.forEach { free($0) } }
            var child: pid_t = 0
            let spawned = posix_spawn(&child, "/usr/bin/env", &actions, nil, &cArgs, environ)
            try #require(spawned == 0, "cannot start python3")
            pid = child
            // The server writes its port to a file when it listens.
            let portFile = folder.appendingPathComponent("port")
            var text: String?
            for _ in 0..<500 where text == nil {
                text = try? String(contentsOf: portFile, encoding: .utf8)
                if text == nil { usleep(10_000) }
            }
            port = try #require(Int(text ?? ""), "the server did not start")
        }

        func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

        /// The requests received so far.
        func requests() throws -> [[String: Any]] {
            let file = folder.appendingPathComponent("requests.jsonl")
            guard let text = try? String(contentsOf: file, encoding: .utf8) else { return [] }
            return try text.split(separator: "\n").map {
                try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
        }

        func stop() {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }

    /// Runs `planrun build plan.yaml --json` on `plan`; the summary object.
    func build(_ plan: String, in dir: URL, environment: [String: String] = [:]) throws -> (status: Int32, summary: [String: Any], stderr: String) {
        try plan.write(to: dir.appendingPathComponent("plan.yaml"), atomically: true, encoding: .utf8)
        let result = try PlanRunBinary.run(["build", "plan.yaml", "--json"], in: dir, environment: environment)
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
                                   "\(result.stdout)\n\(result.stderr)")
        return (result.status, summary, result.stderr)
    }

    func result(_ summary: [String: Any], _ id: String) -> [String: Any] {
        ((summary["results"] as? [String: Any])?[id] as? [String: Any]) ?? [:]
    }

    func error(_ summary: [String: Any], _ id: String) -> String? {
        (summary["errors"] as? [String: Any])?[id] as? String
    }

    func withServer(_ body: (AgentServer, URL) throws -> Void) throws {
        let dir = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let serverFolder = dir.appendingPathComponent("server")
        try FileManager.default.createDirectory(at: serverFolder, withIntermediateDirectories: true)
        let server = try AgentServer(folder: serverFolder)
        defer { server.stop() }
        let project = dir.appendingPathComponent("project")
        try FileManager.default.createDirectory(at: project, withIntermediateDirectories: true)
        try body(server, project)
    }

    @Test func jsonResultWithMetadataAndTheContextPosted() throws {
        try withServer { server, dir in
            let run = try build("""
                version: 1
                name: http-demo
                goal: Review the code
                agents:
                  reviewer:
                    kind: http
                    url: \(server.url("/meta"))
                subtasks:
                  - id: prepare
                    run: echo prepared
                  - id: review
                    description: Review the change
                    agent: reviewer
                    depends_on: [prepare]
                    with: {files: [a.swift]}
                """, in: dir)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(result(run.summary, "review")["status"] as? String == "done")
            #expect(result(run.summary, "review")["result"] as? String == "reviewed review")
            let requests = try server.requests()
            try #require(requests.count == 1)
            let headers = try #require(requests[0]["headers"] as? [String: Any])
            #expect(headers["content-type"] as? String == "application/json")
            let context = try #require(requests[0]["body"] as? [String: Any])
            #expect(context["subtask_id"] as? String == "review")
            #expect(context["plan"] as? String == "http-demo")
            #expect(context["plan_goal"] as? String == "Review the code")
            #expect(context["description"] as? String == "Review the change")
            #expect(context["execution_mode"] as? String == "subtask")
            #expect(context["attempt"] as? Int == 1)
            #expect((context["metadata"] as? [String: Any])?["files"] as? [String] == ["a.swift"])
            let dependency = (context["dependencies"] as? [String: Any])?["prepare"] as? [String: Any]
            #expect((dependency?["result"] as? String)?.hasPrefix("prepared") == true)
        }
    }

    @Test func plainTextResult() throws {
        try withServer { server, dir in
            let run = try build("""
                version: 1
                agents:
                  writer: {url: "\(server.url("/text"))"}
                subtasks:
                  - {id: write, agent: writer}
                """, in: dir)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(result(run.summary, "write")["result"] as? String == "plain result for write")
        }
    }

    /// A 500 is an ordinary failed attempt: the retry policy tries again.
    @Test func serverErrorIsRetried() throws {
        try withServer { server, dir in
            let run = try build("""
                version: 1
                agents:
                  flaky: {kind: http, url: "\(server.url("/flaky"))", retries: 2, retry_backoff: 10ms}
                subtasks:
                  - {id: ask, agent: flaky}
                """, in: dir)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(result(run.summary, "ask")["attempts"] as? Int == 2)
            #expect(result(run.summary, "ask")["result"] as? String == "ok on request 2")
            let requests = try server.requests()
            #expect(requests.count == 2)
            #expect(requests.map { ($0["body"] as? [String: Any])?["attempt"] as? Int } == [1, 2])
        }
    }

    /// A 4xx fails the attempt with the status and the body's first line,
    /// and is not retried: asking again cannot help.
    @Test func clientErrorFailsWithoutRetrying() throws {
        try withServer { server, dir in
            let run = try build("""
                version: 1
                agents:
                  gone: {kind: http, url: "\(server.url("/missing"))", retries: 3, retry_backoff: 10ms}
                subtasks:
                  - {id: ask, agent: gone}
                """, in: dir)
            #expect(run.status == 1)
            #expect(error(run.summary, "ask") == "agent `gone`: HTTP 404 from \(server.url("/missing")): no such agent")
            #expect(try server.requests().count == 1)
        }
    }

    @Test func connectionRefusedIsAClearErrorAndRetried() throws {
        // A port that was free a moment ago: bind, read it, close.
        let port = try Self.unusedPort()
        let dir = try PlanRunBinary.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = "http://127.0.0.1:\(port)/agent"
        let run = try build("""
            version: 1
            agents:
              down: {kind: http, url: "\(url)", retries: 1, retry_backoff: 10ms}
            subtasks:
              - {id: ask, agent: down}
            """, in: dir)
        #expect(run.status == 1)
        #expect(error(run.summary, "ask") == "agent `down`: cannot connect to \(url) (connection refused)")
        #expect(result(run.summary, "ask")["attempts"] as? Int == 2)
    }

    @Test func headersTakeTheirValuesFromTheEnvironment() throws {
        try withServer { server, dir in
            let plan = """
                version: 1
                agents:
                  reviewer:
                    kind: http
                    url: \(server.url("/meta"))
                    headers: {Authorization: PLANRUN_TEST_REVIEW_TOKEN, X-Team: TEAM}
                    env: {TEAM: core}
                subtasks:
                  - {id: review, agent: reviewer}
                """
            let run = try build(plan, in: dir, environment: ["PLANRUN_TEST_REVIEW_TOKEN": "Bearer s3cret"])
            #expect(run.status == 0, "\(run.stderr)")
            let headers = try #require(try server.requests().first?["headers"] as? [String: Any])
            #expect(headers["authorization"] as? String == "Bearer s3cret")
            #expect(headers["x-team"] as? String == "core")
            // The secret is kept out of the state, logs and cache.
            let state = dir.appendingPathComponent(".planrun")
            let files = FileManager.default.enumerator(atPath: state.path)?.allObjects as? [String] ?? []
            #expect(!files.isEmpty)
            for file in files {
                let data = (try? Data(contentsOf: state.appendingPathComponent(file))) ?? Data()
                #expect(data.range(of: Data("s3cret".utf8)) == nil, "\(file) holds the secret")
            }

            // Without the variable: a clear error, and no request. (The
            // state goes first: a changed header value is not a reason to
            // rerun, as it is not part of the cache key.)
            try FileManager.default.removeItem(at: state)
            try #require(ProcessInfo.processInfo.environment["PLANRUN_TEST_REVIEW_TOKEN"] == nil)
            let missing = try build(plan, in: dir)
            #expect(missing.status == 1)
            #expect(error(missing.summary, "review")
                == "agent `reviewer`: header `Authorization` takes its value from `PLANRUN_TEST_REVIEW_TOKEN`, which is not set")
            #expect(try server.requests().count == 1)
        }
    }

    @Test func timeoutEndsTheAttempt() throws {
        try withServer { server, dir in
            let started = ContinuousClock.now
            let run = try build("""
                version: 1
                agents:
                  slow: {kind: http, url: "\(server.url("/slow"))", timeout: 500ms}
                subtasks:
                  - {id: ask, agent: slow}
                """, in: dir)
            let elapsed = ContinuousClock.now - started
            #expect(run.status == 1)
            #expect(error(run.summary, "ask") == "timed out after 500ms")
            #expect(result(run.summary, "ask")["status"] as? String == "failed")
            #expect(elapsed < .seconds(8), "the request was not cancelled at the timeout")
        }
    }

    /// A TCP port on loopback that nothing listens on (it was free when
    /// checked).
    static func unusedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        try #require(bound == 0)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        try #require(named == 0)
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

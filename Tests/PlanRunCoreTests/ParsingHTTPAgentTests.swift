import Testing
@testable import PlanRunCore

/// `kind: http` agents: `url` (required, http or https), `headers` (header
/// name -> environment variable name), and the usual agent settings.
@Suite struct ParsingHTTPAgentTests {
    @Test func fullHTTPAgentLoads() throws {
        let plan = try ParsingSupport.load("""
            version: 1
            agents:
              reviewer:
                kind: http
                url: https://agents.example.com/review?mode=strict
                headers:
                  Authorization: REVIEWER_TOKEN
                  X-Team: TEAM
                timeout: 30s
                retries: 2
                retry_backoff: 500ms
                max_parallel: 4
                env: {MODE: fast}
            subtasks:
              - id: review
                agent: reviewer
                with: {files: [a.swift]}
            """)
        let agent = try #require(plan.agents["reviewer"])
        #expect(agent.kind == .http)
        #expect(agent.url == "https://agents.example.com/review?mode=strict")
        #expect(agent.headers == ["Authorization": "REVIEWER_TOKEN", "X-Team": "TEAM"])
        #expect(agent.timeout == .seconds(30))
        #expect(agent.retries == 2)
        #expect(agent.retryBackoff == .milliseconds(500))
        #expect(agent.maxParallel == 4)
        #expect(agent.env == ["MODE": "fast"])
        // An http subtask needs no `run`.
        #expect(plan["review"]?.agent == "reviewer")
    }

    @Test func urlWithoutKindMeansHTTP() throws {
        let plan = try ParsingSupport.load("""
            version: 1
            agents:
              local: {url: "http://127.0.0.1:8080/"}
            subtasks: [{id: a, agent: local}]
            """)
        #expect(plan.agents["local"]?.kind == .http)
        #expect(plan.agents["local"]?.headers == [:])
    }

    static let errorCases: [PlanErrorCase] = [
        PlanErrorCase("http agent without url", """
            version: 1
            agents:
              remote: {kind: http}
            subtasks: [{id: a, agent: remote}]
            """, [Expected(3, 3, "missing required key `url` in agent `remote` of kind `http`")]),
        PlanErrorCase("url that is not http", """
            version: 1
            agents:
              remote:
                kind: http
                url: ftp://example.com/agent
            subtasks: [{id: a, agent: remote}]
            """, [Expected(5, 10, "invalid value `ftp://example.com/agent` for `url`; expected an `http://` or `https://` URL")]),
        PlanErrorCase("url without host", """
            version: 1
            agents:
              remote: {kind: http, url: "http:///path"}
            subtasks: [{id: a, agent: remote}]
            """, [Expected(3, 29, "invalid value `http:///path` for `url`; expected an `http://` or `https://` URL")]),
        PlanErrorCase("url that is a list", """
            version: 1
            agents:
              remote: {kind: http, url: [a]}
            subtasks: [{id: a, agent: remote}]
            """, [Expected(3, 29, "`url` must be a string, not a list")]),
        PlanErrorCase("headers with bad names and values", """
            version: 1
            agents:
              remote:
                kind: http
                url: http://localhost/
                headers:
                  Bad Name: TOKEN
                  X-Token: not a variable=name
                  X-List: [A]
            subtasks: [{id: a, agent: remote}]
            """, [
                Expected(7, 7, "invalid value `Bad Name` for `headers`; expected an HTTP header name"),
                Expected(8, 16, "invalid value `not a variable=name` for `headers.X-Token`; expected the name of an environment variable"),
                Expected(9, 15, "`headers.X-List` must be a string, not a list"),
            ]),
        PlanErrorCase("headers that are a list", """
            version: 1
            agents:
              remote: {kind: http, url: "http://localhost/", headers: [A]}
            subtasks: [{id: a, agent: remote}]
            """, [Expected(3, 59, "`headers` must be a mapping, not a list")]),
        PlanErrorCase("misspelt key suggests the right one", """
            version: 1
            agents:
              remote:
                kind: http
                url: http://localhost/
                header: {X-Token: TOKEN}
            subtasks: [{id: a, agent: remote}]
            """, [Expected(6, 5, "unknown key `header` in agent `remote`; did you mean `headers`?")]),
        PlanErrorCase("misspelt url", """
            version: 1
            agents:
              remote: {kind: http, ulr: "http://localhost/"}
            subtasks: [{id: a, agent: remote}]
            """, [
                Expected(3, 3, "missing required key `url` in agent `remote` of kind `http`"),
                Expected(3, 24, "unknown key `ulr` in agent `remote`; did you mean `url`?"),
            ]),
        PlanErrorCase("unknown kind lists http", """
            version: 1
            agents:
              remote: {kind: https, url: "http://localhost/"}
            subtasks: [{id: a, agent: remote}]
            """, [Expected(3, 18, "invalid value `https` for `kind`; expected `shell`, `command` or `http`")]),
    ]

    @Test(arguments: errorCases)
    func reportsProblem(_ c: PlanErrorCase) {
        #expect(ParsingSupport.triples(ParsingSupport.problems(c.yaml)) == c.expected)
    }
}

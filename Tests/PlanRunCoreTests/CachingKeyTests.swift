import Testing
@testable import PlanRunCore

@Suite struct CachingKeyTests {
    static func plan(_ subtasks: [Subtask], env: [String: String] = [:], agents: [String: AgentDefinition] = [:]) -> Plan {
        Plan(file: "plan.yaml", directory: "/tmp", name: "p", env: env, agents: agents, subtasks: subtasks)
    }

    static func key(
        _ s: Subtask, plan p: Plan? = nil, inputs: [String: String] = [:], deps: [String: String] = [:],
        caller: [String: String] = [:]
    ) -> CacheKey {
        CacheKey.make(for: s, in: p ?? plan([s]), inputDigests: inputs, dependencyDigests: deps, callerEnvironment: caller)
    }

    @Test func sameDefinitionGivesSameKey() {
        let s = Subtask(id: "a", run: "echo hi", inputs: ["x"], env: ["B": "2", "A": "1"])
        let k1 = Self.key(s, inputs: ["x": "d1"])
        let k2 = Self.key(s, inputs: ["x": "d1"])
        #expect(k1 == k2)
        #expect(k1.key.count == 64)
        #expect(CacheKey.combine(k1.components) == k1.key)
    }

    /// Spec vectors: keys computed by an independent implementation (Python
    /// hashlib) of the format comment in CacheKey.swift, so that speeding up
    /// `make` can never change a key silently (every stored key would go stale).
    @Test func keyMatchesTheSpecifiedEncoding() {
        let s = Subtask(
            id: "t", run: "cp in/1.txt out/1.txt", inputs: ["in/*.txt"], outputs: ["out/1.txt"],
            dependsOn: ["zeta", "alpha"], env: ["B": "2"], envInputs: ["CFLAGS", "CC", "CC"])
        let p = Self.plan([s], env: ["A": "1", "B": "0"])
        let k = Self.key(
            s, plan: p, inputs: ["in/1.txt": String(repeating: "aa", count: 32), "in/0.txt": String(repeating: "bb", count: 32)],
            deps: ["zeta": String(repeating: "cc", count: 32), "alpha": String(repeating: "dd", count: 32)],
            caller: ["CC": "gcc", "HOME": "/root"])
        #expect(k.key == "526804522f2ff9d8dea0e0ed514513f39f0068d54b2b9756b515fa6ea8b962cf")
        #expect(k.components.count == 8)
        #expect(CacheKey.combine(k.components) == k.key)

        let c = Subtask(id: "c", agent: "coder", cache: false)
        let pc = Self.plan([c], agents: ["coder": AgentDefinition(name: "coder", kind: .command, command: ["python3", "a.py"])])
        #expect(Self.key(c, plan: pc).key == "74a205b0b0b423ffe18ef189cf9798efdbff2084809c60b81e6990bae142c002")
    }

    /// `with:` enters the definition component as its canonical JSON text,
    /// framed from the stored bytes: the digest must be the one the
    /// specification gives (vector from Python hashlib) and the one framing
    /// the re-encoded value gives, for a plan the parser read.
    @Test func withEntersTheDefinitionAsItsCanonicalJSON() throws {
        let plan = try ParsingSupport.load("""
            version: 1
            subtasks:
              - id: a
                run: make
                inputs: [in/x]
                outputs: [out/y]
                with:
                  zeta: [1, 2.5, 1e3, "7", true, ~]
                  text: "a\\"b\\n"
                  alpha: {"é": null, b: [[1, 2], [3]]}
            """)
        let a = try #require(plan["a"])
        let definition = Self.key(a, plan: plan).components["definition"]
        #expect(definition == "98615d4f2d0559ef567661b795f094653a1670f258e5fa23bd5ce837702d9d38")

        var old = FieldFramer()
        for field in [try #require(a.with).canonicalJSON, "inputs", "in/x", "outputs", "out/y", "cache", "true"] { old.add(field) }
        #expect(definition == old.digest)

        // A value set in code is framed the same way.
        var b = a
        b.with = .object(["k": .array([.double(0.5), .string("\u{1}")])])
        var set = FieldFramer()
        for field in [#"{"k":[0.5,"\u0001"]}"#, "inputs", "in/x", "outputs", "out/y", "cache", "true"] { set.add(field) }
        #expect(Self.key(b, plan: plan).components["definition"] == set.digest)
    }

    @Test func framingSeparatesFields() {
        var a = FieldFramer(); a.add("ab"); a.add("c")
        var b = FieldFramer(); b.add("a"); b.add("bc")
        #expect(a.digest != b.digest)
        var c = FieldFramer(); c.add(""); c.add("é"); c.add(String(repeating: "x", count: 1234)); c.add([7, 8])
        #expect(c.bytes == Array(("0:,2:é,1234:" + String(repeating: "x", count: 1234) + ",2:").utf8) + [7, 8, UInt8(ascii: ",")])
        let framed = c.bytes
        #expect(c.takeDigest() == Digest.sha256Hex(framed))
        #expect(c.bytes.isEmpty)
        #expect([UInt8]([0x00, 0x9f, 0xa0, 0xff]).withUnsafeBytes { Digest.hex($0) } == "009fa0ff")
    }

    struct ReasonCase: Sendable, CustomTestStringConvertible {
        var name: String
        var change: @Sendable (inout Subtask, inout [String: String], inout [String: String], inout [String: String]) -> Void
        var expected: RunReason
        var testDescription: String { name }
    }

    static let reasonCases: [ReasonCase] = [
        ReasonCase(name: "run text", change: { s, _, _, _ in s.run = "echo bye" }, expected: .commandChanged),
        ReasonCase(name: "env", change: { s, _, _, _ in s.env["A"] = "9" }, expected: .environmentChanged),
        ReasonCase(name: "env_inputs value", change: { _, _, _, caller in caller["CC"] = "clang" }, expected: .environmentChanged),
        ReasonCase(name: "input content", change: { _, inputs, _, _ in inputs["src/b.c"] = "changed" }, expected: .inputChanged(path: "src/b.c")),
        ReasonCase(name: "input added", change: { _, inputs, _, _ in inputs["src/0.c"] = "new" }, expected: .inputChanged(path: "src/0.c")),
        ReasonCase(name: "input removed", change: { _, inputs, _, _ in inputs["src/a.c"] = nil }, expected: .inputChanged(path: "src/a.c")),
        ReasonCase(name: "dependency", change: { _, _, deps, _ in deps["dep"] = "other" }, expected: .dependencyChanged(id: "dep")),
        ReasonCase(name: "with", change: { s, _, _, _ in s.with = .object(["k": .int(2)]) }, expected: .definitionChanged),
        ReasonCase(name: "outputs pattern", change: { s, _, _, _ in s.outputs = ["out2"] }, expected: .definitionChanged),
        ReasonCase(name: "first differing wins", change: { s, inputs, _, _ in s.run = "x"; inputs["src/a.c"] = "z" }, expected: .commandChanged),
    ]

    @Test(arguments: reasonCases)
    func changedKeyIsExplainedByFirstDifferingComponent(_ c: ReasonCase) {
        var s = Subtask(id: "t", run: "echo hi", inputs: ["src/*.c"], outputs: ["out"], dependsOn: ["dep"], env: ["A": "1"], envInputs: ["CC"])
        var inputs = ["src/a.c": "da", "src/b.c": "db"]
        var deps = ["dep": "r1"]
        var caller = ["CC": "gcc"]
        let before = Self.key(s, inputs: inputs, deps: deps, caller: caller)
        c.change(&s, &inputs, &deps, &caller)
        let after = Self.key(s, inputs: inputs, deps: deps, caller: caller)
        #expect(after.key != before.key)
        #expect(after.reason(comparedTo: before, dependsOn: s.dependsOn) == c.expected)
    }

    @Test func unchangedKeyHasNoReason() {
        let s = Subtask(id: "t", run: "echo")
        let k = Self.key(s)
        #expect(k.reason(comparedTo: k, dependsOn: []) == nil)
    }

    @Test func agentCommandAndPlanEnvEnterTheKey() {
        let s = Subtask(id: "t", agent: "coder")
        let p1 = Self.plan([s], agents: ["coder": AgentDefinition(name: "coder", kind: .command, command: ["python3", "a.py"])])
        let p2 = Self.plan([s], agents: ["coder": AgentDefinition(name: "coder", kind: .command, command: ["python3", "b.py"])])
        let k1 = Self.key(s, plan: p1), k2 = Self.key(s, plan: p2)
        #expect(k2.reason(comparedTo: k1, dependsOn: []) == .commandChanged)
        let p3 = Self.plan([s], env: ["LC_ALL": "C"], agents: p1.agents)
        #expect(Self.key(s, plan: p3).reason(comparedTo: k1, dependsOn: []) == .environmentChanged)
    }

    @Test func callerEnvironmentOutsideEnvInputsIsIgnored() {
        let s = Subtask(id: "t", run: "echo", envInputs: ["CC"])
        #expect(Self.key(s, caller: ["CC": "gcc", "HOME": "/a"]) == Self.key(s, caller: ["CC": "gcc", "HOME": "/b"]))
        #expect(Self.key(s, caller: [:]) != Self.key(s, caller: ["CC": ""]))
    }
}

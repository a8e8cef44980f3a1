/// The part of a subtask's environment that is the same for many attempts
/// (the caller's environment, the plan's and the agent's `env`), built once
/// per run and agent, already rendered as `KEY=VALUE\0` C strings so that a
/// spawn only adds a few entries (the subtask's `env` and `PLANRUN_*`)
/// instead of converting every variable again.
///
/// Invariant: `bytes` holds one NUL-terminated `KEY=VALUE` entry per key in
/// `keys`, in the same order, starting at the matching `offsets` element.
/// Keys that are empty or contain `=` are left out (as a spawn does).
package final class SpawnEnvironment: Sendable {
    /// The variables, as given.
    package let values: [String: String]
    let keys: [String]
    let offsets: [Int]
    /// Position of each key in `keys`.
    let index: [String: Int]
    let bytes: [CChar]

    package init(_ values: [String: String]) {
        self.values = values
        var keys: [String] = [], offsets: [Int] = [], bytes: [CChar] = []
        keys.reserveCapacity(values.count)
        offsets.reserveCapacity(values.count)
        for (key, value) in values where Self.isValidKey(key) {
            keys.append(key)
            offsets.append(bytes.count)
            Self.appendEntry(key, value, to: &bytes)
        }
        var index: [String: Int] = [:]
        index.reserveCapacity(keys.count)
        for (i, key) in keys.enumerated() { index[key] = i }
        self.keys = keys
        self.offsets = offsets
        self.index = index
        self.bytes = bytes
    }

    /// A variable name a spawn can pass: not empty, no `=`.
    static func isValidKey(_ key: String) -> Bool {
        !key.isEmpty && !key.utf8.contains(UInt8(ascii: "="))
    }

    /// Appends `key=value` and a NUL.
    static func appendEntry(_ key: String, _ value: String, to bytes: inout [CChar]) {
        for byte in key.utf8 { bytes.append(CChar(bitPattern: byte)) }
        bytes.append(CChar(bitPattern: UInt8(ascii: "=")))
        for byte in value.utf8 { bytes.append(CChar(bitPattern: byte)) }
        bytes.append(0)
    }

    /// Calls `body` with a NULL-terminated `envp`: this environment with
    /// `overrides` applied (an override replaces the entry of the same key).
    /// One allocation holds the pointers and the overrides' entries.
    func withEnvp<R>(overrides: [String: String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        // Sizes first, and which base entries an override replaces
        // (usually none: a few indices, not a flag per variable).
        var extraCount = 0, extraSize = 0
        var replaced: [Int] = []
        for (key, value) in overrides where Self.isValidKey(key) {
            extraCount += 1
            extraSize += key.utf8.count + value.utf8.count + 2
            if let i = index[key] { replaced.append(i) }
        }
        replaced.sort()
        let pointerCount = keys.count - replaced.count + extraCount + 1
        let pointerBytes = pointerCount * MemoryLayout<UnsafeMutablePointer<CChar>?>.stride
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: pointerBytes + extraSize, alignment: MemoryLayout<UnsafeMutablePointer<CChar>?>.alignment)
        defer { raw.deallocate() }
        let pointers = raw.bindMemory(to: UnsafeMutablePointer<CChar>?.self, capacity: pointerCount)
        let extra = (raw + pointerBytes).bindMemory(to: CChar.self, capacity: max(extraSize, 1))
        return bytes.withUnsafeBufferPointer { base in
            var n = 0
            // execve does not write through envp; the casts only satisfy its C signature.
            if let start = base.baseAddress {
                var next = 0 // position in `replaced`
                for i in 0..<keys.count {
                    if next < replaced.count, replaced[next] == i {
                        next += 1
                        continue
                    }
                    pointers[n] = UnsafeMutablePointer(mutating: start + offsets[i])
                    n += 1
                }
            }
            var offset = 0
            for (key, value) in overrides where Self.isValidKey(key) {
                pointers[n] = extra + offset
                n += 1
                offset = writeCEntry(key, value, to: extra, at: offset)
            }
            pointers[n] = nil
            return body(pointers)
        }
    }
}

/// The context JSON of one attempt (`PLANRUN_CONTEXT`), kept as its parts so
/// that a runner that writes it to a file renders the bytes directly (in
/// the canonical form of `JSONValue.canonicalJSON`: sorted keys, no
/// whitespace) without building a `JSONValue` tree first.
package struct SubtaskContext: Sendable, Equatable {
    package struct Dependency: Sendable, Equatable {
        package var id: String
        package var description: String?
        package var agent: String
        package var status: String
        package var result: String

        package init(id: String, description: String?, agent: String, status: String, result: String) {
            self.id = id
            self.description = description
            self.agent = agent
            self.status = status
            self.result = result
        }
    }

    package var subtaskID: String
    package var plan: String
    package var planGoal: String?
    package var description: String?
    /// Sorted by id.
    package var dependencies: [Dependency]
    package var metadata: JSONValue
    package var attempt: Int
    package var runID: String
    /// A `foreach` instance's item (`item` in the context).
    package var item: String?
    /// A `matrix` instance's values (`matrix` in the context, an object).
    package var matrix: [MatrixValue]?

    package init(
        subtaskID: String, plan: String, planGoal: String?, description: String?,
        dependencies: [Dependency], metadata: JSONValue, attempt: Int, runID: String
    ) {
        self.subtaskID = subtaskID
        self.plan = plan
        self.planGoal = planGoal
        self.description = description
        self.dependencies = dependencies.sorted { $0.id < $1.id }
        self.metadata = metadata
        self.attempt = attempt
        self.runID = runID
    }

    /// `matrix` as a JSON object.
    private var matrixValue: JSONValue? {
        matrix.map { values in .object(Dictionary(values.map { ($0.name, JSONValue.string($0.value)) }) { _, last in last }) }
    }

    /// The context as a JSON value.
    package var value: JSONValue {
        var deps: [String: JSONValue] = [:]
        for d in dependencies {
            deps[d.id] = .object([
                "description": d.description.map(JSONValue.string) ?? .null,
                "agent": .string(d.agent),
                "status": .string(d.status),
                "result": .string(d.result),
            ])
        }
        var object: [String: JSONValue] = [
            "subtask_id": .string(subtaskID),
            "plan": .string(plan),
            "plan_goal": planGoal.map(JSONValue.string) ?? .null,
            "description": description.map(JSONValue.string) ?? .null,
            "dependencies": .object(deps),
            "metadata": metadata,
            "execution_mode": .string("subtask"),
            "attempt": .int(attempt),
            "run_id": .string(runID),
        ]
        if let item { object["item"] = .string(item) }
        if let matrixValue { object["matrix"] = matrixValue }
        return .object(object)
    }

    /// `value.canonicalJSON` as UTF-8 bytes, written directly.
    package var canonicalJSON: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        func raw(_ s: StaticString) {
            s.withUTF8Buffer { out.append(contentsOf: $0) }
        }
        func optional(_ s: String?) {
            if let s { JSONValue.writeString(s, to: &out) } else { raw("null") }
        }
        // Keys in sorted order: attempt, dependencies, description,
        // execution_mode, item, matrix, metadata, plan, plan_goal, run_id,
        // subtask_id (`item` and `matrix` only for instances).
        raw("{\"attempt\":")
        out.append(contentsOf: String(attempt).utf8)
        raw(",\"dependencies\":{")
        for (i, d) in dependencies.enumerated() {
            if i > 0 { raw(",") }
            JSONValue.writeString(d.id, to: &out)
            // agent, description, result, status
            raw(":{\"agent\":")
            JSONValue.writeString(d.agent, to: &out)
            raw(",\"description\":")
            optional(d.description)
            raw(",\"result\":")
            JSONValue.writeString(d.result, to: &out)
            raw(",\"status\":")
            JSONValue.writeString(d.status, to: &out)
            raw("}")
        }
        raw("},\"description\":")
        optional(description)
        raw(",\"execution_mode\":\"subtask\"")
        if let item {
            raw(",\"item\":")
            JSONValue.writeString(item, to: &out)
        }
        if let matrixValue {
            raw(",\"matrix\":")
            out.append(contentsOf: matrixValue.canonicalJSON.utf8)
        }
        raw(",\"metadata\":")
        if case .object(let fields) = metadata, fields.isEmpty {
            raw("{}")
        } else {
            out.append(contentsOf: metadata.canonicalJSON.utf8)
        }
        raw(",\"plan\":")
        JSONValue.writeString(plan, to: &out)
        raw(",\"plan_goal\":")
        optional(planGoal)
        raw(",\"run_id\":")
        JSONValue.writeString(runID, to: &out)
        raw(",\"subtask_id\":")
        JSONValue.writeString(subtaskID, to: &out)
        raw("}")
        return out
    }
}

/// Writes `a`, then `=` and `b` when given, then a NUL, at `buffer + offset`
/// (which has room); returns the offset after the NUL. The entries of a C
/// environment block (`KEY=VALUE`) or argument list.
func writeCEntry(_ a: String, _ b: String?, to buffer: UnsafeMutablePointer<CChar>, at offset: Int) -> Int {
    var offset = offset
    func copy(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            if let source = utf8.baseAddress {
                UnsafeMutableRawPointer(buffer + offset).copyMemory(from: source, byteCount: utf8.count)
            }
            offset += utf8.count
        }
    }
    copy(a)
    if let b {
        buffer[offset] = CChar(bitPattern: UInt8(ascii: "="))
        offset += 1
        copy(b)
    }
    buffer[offset] = 0
    return offset + 1
}

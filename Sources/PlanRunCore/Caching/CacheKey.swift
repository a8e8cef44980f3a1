// Cache key format, version 1. This comment is the specification.
//
// Framing: field(x) = the decimal byte count of x, ":", the UTF-8 bytes of x,
// "," (a netstring), so two different lists of fields never encode alike.
//
// Each key component has a name and a value; the value is a list of fields
// and the component's digest is the lowercase hex SHA-256 of their framing:
//   command      agent name, agent kind, then for `shell` agents "shell",
//                each shell word, "run", the run text (or "-" and nothing
//                when there is none); for `command` agents "command", each
//                command word, "run", the run text likewise
//   env          for each name of the plan+agent+subtask `env` in ascending
//                byte order: name, value
//   env_inputs   for each `env_inputs` name in ascending byte order: name,
//                then "=" and the caller's value, or "unset"
//   definition   the canonical JSON of `with` (or "-"), "inputs", each input
//                pattern in plan order, "outputs", each output pattern in plan
//                order, "cache", "true"/"false", then only when the
//                subtask has a `depfile`: "depfile", its path
//   input:PATH   one per input file, PATH relative to the plan folder: the
//                file's content SHA-256
//   dep:ID       one per dependency: its result digest (result content plus
//                output files), not its key, so a dependency that reruns
//                with identical results does not invalidate its dependents
// Component names are sorted in ascending byte order and the key is the hex
// SHA-256 of: field("planrun-cache-key"), field("1"), then field(name),
// field(digest) for each component. The component digests are stored next
// to the key (in history and in `ac/KEY`) so that a changed key is explained
// by its first differing component, checked in this order: command, env and
// env_inputs, inputs (by path), discovered inputs (by path), dependencies
// (by `depends_on` order), definition.
//
// Discovered inputs (a subtask with a depfile, DESIGN §8.4): the key above
// is the declared key. The full key of one set of discovered inputs is the
// hex SHA-256 of: field("planrun-discovered-key"), field("1"), field(the
// declared key), then field(path), field(digest) for each discovered input
// in ascending byte order of path (plan relative, or absolute outside the
// plan's folder). Its components are the declared key's, plus
// `discovered:PATH` (the file's content SHA-256) per discovered input and
// `discovered` (the SHA-256 of the framed path/digest list), which marks a
// full key even when the set is empty; `combine` recognises that marker.
import Crypto
import Foundation

/// A subtask's cache key and the per-component digests it was made from.
/// Invariant: `key == CacheKey.combine(components)`.
package struct CacheKey: Sendable, Hashable, Codable {
    /// The cache format version; bump when the encoding above changes.
    package static let formatVersion = 1

    package var key: String
    /// Component name -> hex digest.
    package var components: [String: String]

    package init(components: [String: String]) {
        self.components = components
        self.key = CacheKey.combine(components)
    }

    /// `key` must be `combine(components)` (`make` computes both at once).
    private init(key: String, components: [String: String]) {
        self.key = key
        self.components = components
    }

    /// The key of a component map, per the specification above (a full
    /// key when the `discovered` marker is there).
    package static func combine(_ components: [String: String]) -> String {
        if components[discoveredMarker] != nil {
            let (declared, discovered) = split(components)
            return fullKey(declared: combine(declared), discovered: discovered).key
        }
        return combine(sorted: components.sorted { byteOrder($0.key, $1.key) })
    }

    // MARK: Discovered inputs

    /// The component that marks a full key.
    package static let discoveredMarker = "discovered"
    /// The prefix of a discovered input's component name.
    package static let discoveredPrefix = "discovered:"

    /// Whether this is the full key of a set of discovered inputs.
    package var isFull: Bool { components[CacheKey.discoveredMarker] != nil }

    /// The declared key a full key was made from (itself when not full).
    package var declared: CacheKey {
        guard isFull else { return self }
        return CacheKey(components: CacheKey.split(components).declared)
    }

    /// The discovered inputs of a full key, path -> digest (empty when not full).
    package var discovered: [String: String] {
        isFull ? CacheKey.split(components).discovered : [:]
    }

    private static func split(_ components: [String: String]) -> (declared: [String: String], discovered: [String: String]) {
        var declared: [String: String] = [:], discovered: [String: String] = [:]
        for (name, digest) in components where name != discoveredMarker {
            if name.hasPrefix(discoveredPrefix) {
                discovered[String(name.dropFirst(discoveredPrefix.count))] = digest
            } else {
                declared[name] = digest
            }
        }
        return (declared, discovered)
    }

    /// The full key of `declared` (a declared key) with `discovered`
    /// (path -> content digest), per the specification above.
    package static func full(declared: CacheKey, discovered: [String: String]) -> CacheKey {
        let made = fullKey(declared: declared.key, discovered: discovered)
        var components = declared.components
        for (path, digest) in discovered { components[discoveredPrefix + path] = digest }
        components[discoveredMarker] = made.listDigest
        return CacheKey(key: made.key, components: components)
    }

    private static func fullKey(declared: String, discovered: [String: String]) -> (key: String, listDigest: String) {
        let sorted = discovered.sorted { byteOrder($0.key, $1.key) }
        var list = FieldFramer()
        for (path, digest) in sorted {
            list.add(path)
            list.add(digest)
        }
        var framer = FieldFramer()
        framer.add("planrun-discovered-key")
        framer.add("1")
        framer.add(declared)
        var bytes = framer.bytes
        bytes += list.bytes
        return (Digest.sha256Hex(bytes), list.digest)
    }

    /// The key of components already in ascending byte order of name.
    private static func combine(sorted: [(key: String, value: String)]) -> String {
        var framer = FieldFramer()
        framer.add("planrun-cache-key")
        framer.add(String(formatVersion))
        for (name, digest) in sorted {
            framer.add(name)
            framer.add(digest)
        }
        return framer.digest
    }

    /// Builds the key of `subtask`. `inputDigests` maps each input file (plan
    /// relative) to its content digest; `dependencyDigests` maps each
    /// dependency id to its result digest; `callerEnvironment` supplies the
    /// values of `env_inputs`.
    package static func make(
        for subtask: Subtask, in plan: Plan, inputDigests: [String: String],
        dependencyDigests: [String: String], callerEnvironment: [String: String]
    ) -> CacheKey {
        // One framer, reset between components; names go straight into a
        // list that is already in byte order but for the inputs and
        // dependencies, which are sorted among themselves:
        // command < definition < dep:* < env < env_inputs < input:*.
        var framer = FieldFramer()
        var sorted: [(key: String, value: String)] = []
        sorted.reserveCapacity(5 + inputDigests.count + dependencyDigests.count)

        if let agent = plan.agents[subtask.agent] {
            addCommand(agent, subtask, to: &framer)
        } else {
            addCommand(.builtinShell, subtask, to: &framer)
        }
        sorted.append(("command", framer.takeDigest()))

        // The stored canonical text is exactly `with.canonicalJSON`'s bytes
        // (CanonicalJSON's invariant), so it is framed as is, not decoded.
        if let with = subtask.withJSON { framer.add(with.bytes) } else { framer.add("-") }
        framer.add("inputs")
        for pattern in subtask.inputs { framer.add(pattern) }
        framer.add("outputs")
        for pattern in subtask.outputs { framer.add(pattern) }
        framer.add("cache")
        framer.add(subtask.cache ? "true" : "false")
        if let depfile = subtask.depfile {
            framer.add("depfile")
            framer.add(depfile)
        }
        sorted.append(("definition", framer.takeDigest()))

        let depStart = sorted.count
        for (id, digest) in dependencyDigests { sorted.append(("dep:" + id, digest)) }
        if dependencyDigests.count > 1 { sorted[depStart...].sort { byteOrder($0.key, $1.key) } }

        let agentEnv = plan.agents[subtask.agent]?.env ?? [:]
        let planEnv = plan.planEnvironment(for: subtask)
        if agentEnv.isEmpty && subtask.env.isEmpty {
            addEnvironment(planEnv, to: &framer)
        } else if agentEnv.isEmpty && planEnv.isEmpty {
            addEnvironment(subtask.env, to: &framer)
        } else {
            addEnvironment(plan.environment(for: subtask), to: &framer)
        }
        sorted.append(("env", framer.takeDigest()))

        let names = subtask.envInputs.count > 1 ? Set(subtask.envInputs).sorted(by: byteOrder) : subtask.envInputs
        for name in names {
            framer.add(name)
            if let value = callerEnvironment[name] {
                framer.add("=" + value)
            } else {
                framer.add("unset")
            }
        }
        sorted.append(("env_inputs", framer.takeDigest()))

        let inputStart = sorted.count
        for (path, digest) in inputDigests { sorted.append(("input:" + path, digest)) }
        if inputDigests.count > 1 { sorted[inputStart...].sort { byteOrder($0.key, $1.key) } }

        var components: [String: String] = [:]
        components.reserveCapacity(sorted.count)
        for (name, digest) in sorted { components[name] = digest }
        return CacheKey(key: combine(sorted: sorted), components: components)
    }

    private static func addCommand(_ agent: AgentDefinition, _ subtask: Subtask, to command: inout FieldFramer) {
        command.add(agent.name)
        command.add(agent.kind.rawValue)
        switch agent.kind {
        case .shell:
            command.add("shell")
            for word in agent.shell { command.add(word) }
        case .command:
            command.add("command")
            for word in agent.command { command.add(word) }
        case .http:
            command.add("http")
            command.add(agent.url ?? "-")
            for name in agent.headers.keys.sorted(by: byteOrder) {
                command.add(name)
                command.add(agent.headers[name]!)
            }
        }
        command.add("run")
        command.add(subtask.run ?? "-")
    }

    private static func addEnvironment(_ environment: [String: String], to env: inout FieldFramer) {
        if environment.count == 1, let only = environment.first {
            env.add(only.key)
            env.add(only.value)
            return
        }
        for (name, value) in environment.sorted(by: { byteOrder($0.key, $1.key) }) {
            env.add(name)
            env.add(value)
        }
    }

    /// Why `self` differs from `previous` (the key of the last successful
    /// run): its first differing component, in the order given above.
    /// nil when the keys are equal.
    package func reason(comparedTo previous: CacheKey, dependsOn: [String]) -> RunReason? {
        if previous.key == key && previous.components == components { return nil }
        let old = previous.components, new = components
        if old["command"] != new["command"] { return .commandChanged }
        if old["env"] != new["env"] || old["env_inputs"] != new["env_inputs"] { return .environmentChanged }
        let inputNames = Set(old.keys.filter { $0.hasPrefix("input:") })
            .union(new.keys.filter { $0.hasPrefix("input:") })
        for name in inputNames.sorted(by: byteOrder) where old[name] != new[name] {
            return .inputChanged(path: String(name.dropFirst("input:".count)))
        }
        let prefix = CacheKey.discoveredPrefix
        let discoveredNames = Set(old.keys.filter { $0.hasPrefix(prefix) }).union(new.keys.filter { $0.hasPrefix(prefix) })
        for name in discoveredNames.sorted(by: byteOrder) where old[name] != new[name] {
            return .discoveredInputChanged(path: String(name.dropFirst(prefix.count)))
        }
        for id in dependsOn where old["dep:" + id] != new["dep:" + id] {
            return .dependencyChanged(id: id)
        }
        let depNames = Set(old.keys.filter { $0.hasPrefix("dep:") }).union(new.keys.filter { $0.hasPrefix("dep:") })
        for name in depNames.sorted(by: byteOrder) where old[name] != new[name] {
            return .dependencyChanged(id: String(name.dropFirst("dep:".count)))
        }
        return .definitionChanged
    }
}

/// Ascending byte order of UTF-8 text, independent of locale and of
/// Swift's `String` comparison (which compares Unicode scalars and already
/// matches, but spelled out here because the key depends on it).
@inline(__always)
func byteOrder(_ a: String, _ b: String) -> Bool {
    let fast = a.utf8.withContiguousStorageIfAvailable { pa in
        b.utf8.withContiguousStorageIfAvailable { pb -> Bool in
            let n = min(pa.count, pb.count)
            let c = n == 0 ? 0 : memcmp(pa.baseAddress!, pb.baseAddress!, n)
            return c != 0 ? c < 0 : pa.count < pb.count
        }
    }
    if let fast, let fast { return fast }
    return a.utf8.lexicographicallyPrecedes(b.utf8)
}

/// Netstring framing fed into SHA-256: `field(x)` = length ":" bytes ",".
/// Fields are collected in one buffer and hashed once.
package struct FieldFramer {
    private var buffer: [UInt8] = []

    package init() { buffer.reserveCapacity(256) }

    package mutating func add(_ text: String) {
        appendLength(text.utf8.count)
        if text.utf8.withContiguousStorageIfAvailable({ buffer.append(contentsOf: $0) }) == nil {
            buffer.append(contentsOf: text.utf8)
        }
        buffer.append(UInt8(ascii: ","))
    }

    package mutating func add(_ bytes: [UInt8]) {
        appendLength(bytes.count)
        buffer.append(contentsOf: bytes)
        buffer.append(UInt8(ascii: ","))
    }

    /// The decimal length and ":", without making a `String`.
    private mutating func appendLength(_ count: Int) {
        if count < 10 {
            buffer.append(UInt8(ascii: "0") + UInt8(count))
        } else {
            var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                         UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            var n = count, i = 20
            withUnsafeMutableBytes(of: &digits) { raw in
                while n > 0 {
                    i -= 1
                    raw[i] = UInt8(ascii: "0") + UInt8(n % 10)
                    n /= 10
                }
                buffer.append(contentsOf: raw[i...])
            }
        }
        buffer.append(UInt8(ascii: ":"))
    }

    /// The framed bytes added so far.
    package var bytes: [UInt8] { buffer }

    /// Lowercase hex SHA-256 of everything added.
    package var digest: String {
        Digest.hex(SHA256.hash(data: buffer))
    }

    /// `digest`, then starts over empty (keeping the buffer's storage).
    package mutating func takeDigest() -> String {
        let out = digest
        buffer.removeAll(keepingCapacity: true)
        return out
    }
}

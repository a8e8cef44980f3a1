// Cache key format, version 1 (DESIGN §5). This comment is the specification.
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
//                order, "cache", "true"/"false"
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
// env_inputs, inputs (by path), dependencies (by `depends_on` order),
// definition.
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

    /// The key of a component map, per the specification above.
    package static func combine(_ components: [String: String]) -> String {
        var framer = FieldFramer()
        framer.add("planrun-cache-key")
        framer.add(String(formatVersion))
        for name in components.keys.sorted(by: byteOrder) {
            framer.add(name)
            framer.add(components[name]!)
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
        var components: [String: String] = [:]
        let agent = plan.agent(for: subtask)

        var command = FieldFramer()
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
        components["command"] = command.digest

        var env = FieldFramer()
        let environment = plan.environment(for: subtask)
        for name in environment.keys.sorted(by: byteOrder) {
            env.add(name)
            env.add(environment[name]!)
        }
        components["env"] = env.digest

        var envInputs = FieldFramer()
        for name in Set(subtask.envInputs).sorted(by: byteOrder) {
            envInputs.add(name)
            if let value = callerEnvironment[name] {
                envInputs.add("=" + value)
            } else {
                envInputs.add("unset")
            }
        }
        components["env_inputs"] = envInputs.digest

        var definition = FieldFramer()
        definition.add(subtask.with?.canonicalJSON ?? "-")
        definition.add("inputs")
        for pattern in subtask.inputs { definition.add(pattern) }
        definition.add("outputs")
        for pattern in subtask.outputs { definition.add(pattern) }
        definition.add("cache")
        definition.add(subtask.cache ? "true" : "false")
        components["definition"] = definition.digest

        for (path, digest) in inputDigests { components["input:" + path] = digest }
        for (id, digest) in dependencyDigests { components["dep:" + id] = digest }
        return CacheKey(components: components)
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
    a.utf8.lexicographicallyPrecedes(b.utf8)
}

/// Netstring framing fed into SHA-256: `field(x)` = length ":" bytes ",".
/// Fields are collected in one buffer and hashed once.
package struct FieldFramer {
    private var buffer: [UInt8] = []

    package init() { buffer.reserveCapacity(256) }

    package mutating func add(_ text: String) {
        buffer.append(contentsOf: String(text.utf8.count).utf8)
        buffer.append(UInt8(ascii: ":"))
        buffer.append(contentsOf: text.utf8)
        buffer.append(UInt8(ascii: ","))
    }

    package mutating func add(_ bytes: [UInt8]) {
        buffer.append(contentsOf: String(bytes.count).utf8)
        buffer.append(UInt8(ascii: ":"))
        buffer.append(contentsOf: bytes)
        buffer.append(UInt8(ascii: ","))
    }

    /// The framed bytes added so far.
    package var bytes: [UInt8] { buffer }

    /// Lowercase hex SHA-256 of everything added.
    package var digest: String {
        Digest.hex(SHA256.hash(data: buffer))
    }
}

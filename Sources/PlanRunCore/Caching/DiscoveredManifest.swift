import Foundation

/// The sets of discovered inputs recorded under one declared key (ccache's
/// direct-mode manifest, DESIGN §8.4), stored at `ac/DECLARED_KEY` in the
/// local store and on the remote:
///
/// ```json
/// {"format":"planrun-discovered-1","sets":[{"files":[["src/util.h","…"],["/usr/include/stdio.h","…"]],"key":"…"}]}
/// ```
/// Sets are newest first, at most `limit` of them; each has every file's
/// content digest when that run ended and the full key it led to
/// (`CacheKey.full`). A reader recomputes the full key from the declared
/// key and the digests it computes itself, and ignores a set whose `key`
/// does not match, so a manifest from a remote can cause a miss but never
/// a hit that local files do not support.
///
/// The format is a string, where an action result's (`ActionResult`) is a
/// number, so each reader refuses the other's entries: the action reader
/// leaves a manifest alone (`isManifest`), and this one refuses anything
/// but its own format.
package struct DiscoveredManifest: Sendable, Hashable {
    package struct Entry: Sendable, Hashable {
        /// The full key.
        package var key: String
        /// Path -> content digest.
        package var files: [String: String]

        package init(key: String, files: [String: String]) {
            self.key = key
            self.files = files
        }
    }

    package static let format = "planrun-discovered-1"
    /// How many sets a manifest keeps.
    package static let limit = 16

    /// Newest first.
    package var sets: [Entry]

    package init(sets: [Entry] = []) { self.sets = sets }

    /// `entry` first, without an older set of the same key, and at most `limit` sets.
    package func adding(_ entry: Entry) -> DiscoveredManifest {
        var sets = [entry] + self.sets.filter { $0.key != entry.key }
        if sets.count > Self.limit { sets.removeLast(sets.count - Self.limit) }
        return DiscoveredManifest(sets: sets)
    }

    /// `other`'s sets after this one's, without duplicates, at most `limit`.
    package func merging(_ other: DiscoveredManifest) -> DiscoveredManifest {
        var keys = Set(sets.map(\.key))
        var out = sets
        for entry in other.sets where keys.insert(entry.key).inserted { out.append(entry) }
        if out.count > Self.limit { out.removeLast(out.count - Self.limit) }
        return DiscoveredManifest(sets: out)
    }

    private static let prefix = Array("{\"format\":\"\(format)\"".utf8)

    /// Whether `bytes` are in this format (as `jsonBytes` writes them).
    package static func isManifest(_ bytes: [UInt8]) -> Bool {
        bytes.count >= prefix.count && bytes[0..<prefix.count].elementsEqual(prefix)
    }

    /// The JSON, keys sorted, no whitespace; the oldest sets are left out
    /// while it is larger than `sizeLimit`. nil when even the newest set
    /// alone is larger.
    package func jsonBytes(sizeLimit: Int = LocalCacheStore.actionSizeLimit) -> [UInt8]? {
        var encoded: [[UInt8]] = []
        var total = Self.prefix.count + 12
        for entry in sets {
            var out: [UInt8] = []
            out.append(contentsOf: "{\"files\":[".utf8)
            for (i, (path, digest)) in entry.files.sorted(by: { byteOrder($0.key, $1.key) }).enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(UInt8(ascii: "["))
                JSONValue.writeString(path, to: &out)
                out.append(UInt8(ascii: ","))
                JSONValue.writeString(digest, to: &out)
                out.append(UInt8(ascii: "]"))
            }
            out.append(contentsOf: "],\"key\":".utf8)
            JSONValue.writeString(entry.key, to: &out)
            out.append(UInt8(ascii: "}"))
            guard total + out.count + 1 <= sizeLimit else { break }
            total += out.count + 1
            encoded.append(out)
        }
        guard !encoded.isEmpty || sets.isEmpty else { return nil }
        var out = Self.prefix
        out.append(contentsOf: ",\"sets\":[".utf8)
        for (i, set) in encoded.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: set)
        }
        out.append(contentsOf: "]}".utf8)
        return out
    }

    private struct Wire: Decodable {
        var format: String
        var sets: [WireSet]
    }

    private struct WireSet: Decodable {
        var key: String
        var files: [[String]]
    }

    /// Reads a manifest: nil unless it is this format, every key and digest
    /// is 64 lowercase hex digits, and every path is non-empty, without NUL
    /// and listed once per set.
    package static func decode(_ bytes: [UInt8]) -> DiscoveredManifest? {
        guard isManifest(bytes), let wire = try? JSONDecoder().decode(Wire.self, from: Data(bytes)),
              wire.format == format, wire.sets.count <= limit
        else { return nil }
        var sets: [Entry] = []
        for set in wire.sets {
            guard LocalCacheStore.isDigest(set.key) else { return nil }
            var files: [String: String] = [:]
            for pair in set.files {
                guard pair.count == 2, !pair[0].isEmpty, !pair[0].contains("\0"), LocalCacheStore.isDigest(pair[1]),
                      files.updateValue(pair[1], forKey: pair[0]) == nil
                else { return nil }
            }
            sets.append(Entry(key: set.key, files: files))
        }
        return DiscoveredManifest(sets: sets)
    }
}

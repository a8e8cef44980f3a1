import Foundation

/// The action result stored at `ac/KEY` (JSON): what a successful run of a
/// subtask with that key produced.
///
/// ```json
/// {"format": 2, "exit_status": 0, "result_digest": "…", "result_blob": "…",
///  "outputs": [{"path": "build/app.db", "kind": "file", "digest": "…", "executable": false, "mode": 420},
///              {"path": "site", "kind": "folder", "digest": "…", "executable": false},
///              {"path": "latest", "kind": "symlink", "digest": "…", "executable": false}],
///  "components": {"command": "…", "input:src/a.c": "…"}}
/// ```
/// `result_blob` is the CAS digest of the result bytes; a file output's
/// `digest` is the CAS digest of its content and `mode` its permission bits
/// (`0o777` at most: setuid, setgid and sticky are dropped); a folder
/// output's is the CAS digest of its manifest (`FolderManifest` JSON); a
/// symlink output's is the CAS digest of its target text (restored as a
/// link, never followed). `components` are the cache key's component
/// digests (see CacheKey.swift).
///
/// Format 1 entries recorded neither modes nor links (a link was followed
/// and stored as what it pointed to), so they are read as misses, never
/// restored.
///
/// Entries uploaded to a remote store also carry small blobs inline, as
/// Bazel's `ActionResult` does (`OutputFile.contents`, `stdout_raw`): the
/// result as `result_contents` and each small file output as `contents`
/// (base64, `inlineLimit` bytes at most), so a restore needs one request.
/// The blobs still go to `cas/` too (older readers and other tools use
/// them), and inline bytes are checked against their digest like a blob.
/// Both fields are optional: entries without them read as before, and the
/// local store never writes them.
package struct ActionResult: Codable, Sendable, Hashable {
    package var format: Int
    package var exitStatus: Int
    package var resultDigest: String
    package var resultBlob: String
    package var outputs: [OutputEntry]
    package var components: [String: String]
    /// The result bytes (base64), when small; remote entries only.
    package var resultContents: String?
    /// The size in bytes of each blob the entry names (result, outputs,
    /// folder manifests and their files); remote entries only: a download
    /// past its named size is refused (a hostile server cannot fill the disk).
    package var sizes: [String: Int]?

    /// The format this version writes and reads.
    package static let currentFormat = 2

    /// The largest blob carried inline.
    package static let inlineLimit = 4096

    package init(resultDigest: String, resultBlob: String, outputs: [OutputEntry], components: [String: String]) {
        self.format = ActionResult.currentFormat
        self.exitStatus = 0
        self.resultDigest = resultDigest
        self.resultBlob = resultBlob
        self.outputs = outputs
        self.components = components
    }

    enum CodingKeys: String, CodingKey {
        case format, outputs, components, sizes
        case exitStatus = "exit_status"
        case resultDigest = "result_digest"
        case resultBlob = "result_blob"
        case resultContents = "result_contents"
    }

    /// The entry as JSON: keys sorted, no whitespace, absent optional
    /// fields left out (what `JSONEncoder` with `.sortedKeys` writes, and
    /// `JSONDecoder` reads back), rendered straight into bytes: this runs
    /// once per recorded subtask, where `JSONEncoder`'s reflection and
    /// boxing would be a visible share of planrun's own time.
    package var jsonBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512 + 160 * outputs.count + 120 * components.count)
        func key(_ name: String, first: Bool = false) {
            if !first { out.append(UInt8(ascii: ",")) }
            JSONValue.writeString(name, to: &out)
            out.append(UInt8(ascii: ":"))
        }
        out.append(UInt8(ascii: "{"))
        key("components", first: true)
        out.append(UInt8(ascii: "{"))
        for (i, name) in components.keys.sorted().enumerated() {
            key(name, first: i == 0)
            JSONValue.writeString(components[name]!, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        key("exit_status")
        out.append(contentsOf: String(exitStatus).utf8)
        key("format")
        out.append(contentsOf: String(format).utf8)
        key("outputs")
        out.append(UInt8(ascii: "["))
        for (i, output) in outputs.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "{"))
            if let contents = output.contents {
                key("contents", first: true)
                JSONValue.writeString(contents, to: &out)
                key("digest")
            } else {
                key("digest", first: true)
            }
            JSONValue.writeString(output.digest, to: &out)
            key("executable")
            out.append(contentsOf: (output.executable ? "true" : "false").utf8)
            key("kind")
            JSONValue.writeString(output.kind.rawValue, to: &out)
            if let mode = output.mode {
                key("mode")
                out.append(contentsOf: String(mode).utf8)
            }
            key("path")
            JSONValue.writeString(output.path, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        key("result_blob")
        JSONValue.writeString(resultBlob, to: &out)
        if let resultContents {
            key("result_contents")
            JSONValue.writeString(resultContents, to: &out)
        }
        key("result_digest")
        JSONValue.writeString(resultDigest, to: &out)
        if let sizes {
            key("sizes")
            out.append(UInt8(ascii: "{"))
            for (i, digest) in sizes.keys.sorted().enumerated() {
                key(digest, first: i == 0)
                out.append(contentsOf: String(sizes[digest]!).utf8)
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Digests well formed, and modes permission bits only.
    package var isWellFormed: Bool {
        LocalCacheStore.isDigest(resultBlob)
            && outputs.allSatisfy { LocalCacheStore.isDigest($0.digest) && ($0.mode ?? 0) & ~0o777 == 0 }
    }

    /// The entry without inline contents (what the history and the local
    /// store keep).
    package var withoutContents: ActionResult {
        var copy = self
        copy.resultContents = nil
        copy.sizes = nil
        for i in copy.outputs.indices { copy.outputs[i].contents = nil }
        return copy
    }
}

/// One declared output as a run left it.
package struct OutputEntry: Codable, Sendable, Hashable {
    /// `symlink`: the declared path itself is a link; `digest` is the CAS
    /// digest of its target text.
    package enum Kind: String, Codable, Sendable { case file, folder, symlink }

    /// Plan-relative, as declared.
    package var path: String
    package var kind: Kind
    package var digest: String
    package var executable: Bool
    /// A file's permission bits (`0o777` at most); nil for folders and
    /// links, and in history rows written before modes were recorded.
    package var mode: Int?
    /// A small file's bytes (base64); remote entries only (see `ActionResult`).
    package var contents: String?

    package init(path: String, kind: Kind, digest: String, executable: Bool = false, mode: Int? = nil) {
        self.path = path
        self.kind = kind
        self.digest = digest
        self.executable = executable
        self.mode = mode
    }

    /// Whether `now` (the output as it is) is what this entry recorded:
    /// same kind and digest, and the same mode when one was recorded.
    package func matches(_ now: OutputEntry) -> Bool {
        now.kind == kind && now.digest == digest && (mode == nil || now.mode == mode)
    }

    /// The permission bits to restore a file with: the recorded mode, or
    /// (an entry without one) 0755 / 0644 after `executable`.
    package var restoreMode: mode_t {
        mode.map { mode_t($0 & 0o777) } ?? (executable ? 0o755 : 0o644)
    }
}

/// A folder output: its files and links (paths relative to the folder,
/// sorted), stored as a CAS blob whose digest stands for the folder.
/// A file records its CAS digest and permission bits; a link records its
/// target text in `link` and the SHA-256 of that text as `digest` (no
/// blob: the manifest carries it). Links are stored as links, never
/// followed.
package struct FolderManifest: Codable, Sendable, Hashable {
    package struct File: Codable, Sendable, Hashable {
        package var path: String
        package var digest: String
        package var executable: Bool
        /// Permission bits (`0o777` at most); nil for a link.
        package var mode: Int?
        /// A link's target text; nil for a file.
        package var link: String?

        package init(path: String, digest: String, executable: Bool, mode: Int? = nil, link: String? = nil) {
            self.path = path
            self.digest = digest
            self.executable = executable
            self.mode = mode
            self.link = link
        }

        /// The permission bits to restore the file with.
        package var restoreMode: mode_t {
            mode.map { mode_t($0 & 0o777) } ?? (executable ? 0o755 : 0o644)
        }
    }

    package var files: [File]

    /// The files that have a blob in the CAS (not links).
    package var blobDigests: [String] { files.filter { $0.link == nil }.map(\.digest) }

    /// Paths relative without `..`, each once, none below another entry
    /// (a link or a file is never a folder to write into), digests well
    /// formed, a link's digest that of its text, modes permission bits only.
    package var isWellFormed: Bool {
        var paths = Set<String>()
        for file in files {
            guard PathSafety.isSafeRelative(file.path), LocalCacheStore.isDigest(file.digest),
                  (file.mode ?? 0) & ~0o777 == 0
            else { return false }
            if let link = file.link {
                guard !link.isEmpty, !link.contains("\0"), Digest.sha256Hex(Array(link.utf8)) == file.digest else {
                    return false
                }
            }
            guard paths.insert(PathSafety.normalized(file.path)).inserted else { return false }
        }
        for path in paths {
            var parent = Substring(path)
            while let slash = parent.lastIndex(of: "/") {
                parent = parent[..<slash]
                if paths.contains(String(parent)) { return false }
            }
        }
        return true
    }

    /// Canonical bytes: JSON with sorted keys, files in path byte order.
    package var bytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let sorted = FolderManifest(files: files.sorted { byteOrder($0.path, $1.path) })
        return Array((try? encoder.encode(sorted)) ?? Data())
    }
}

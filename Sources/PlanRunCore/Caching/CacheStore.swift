import Crypto
import Synchronization
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The action result stored at `ac/KEY` (JSON): what a successful run of a
/// subtask with that key produced.
///
/// ```json
/// {"format": 1, "exit_status": 0, "result_digest": "…", "result_blob": "…",
///  "outputs": [{"path": "build/app.db", "kind": "file", "digest": "…", "executable": false},
///              {"path": "site", "kind": "folder", "digest": "…", "executable": false}],
///  "components": {"command": "…", "input:src/a.c": "…"}}
/// ```
/// `result_blob` is the CAS digest of the result bytes; a file output's
/// `digest` is the CAS digest of its content; a folder output's is the CAS
/// digest of its manifest (`FolderManifest` JSON). `components` are the cache
/// key's component digests (see CacheKey.swift).
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
    /// past its named size is refused (DESIGN §9.6).
    package var sizes: [String: Int]?

    /// The largest blob carried inline.
    package static let inlineLimit = 4096

    package init(resultDigest: String, resultBlob: String, outputs: [OutputEntry], components: [String: String]) {
        self.format = 1
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
    /// `JSONDecoder` reads back), rendered straight into bytes: encoding
    /// through `JSONEncoder` was about a tenth of planrun's own time per
    /// subtask run in an incremental build.
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
    package enum Kind: String, Codable, Sendable { case file, folder }

    /// Plan-relative, as declared.
    package var path: String
    package var kind: Kind
    package var digest: String
    package var executable: Bool
    /// A small file's bytes (base64); remote entries only (see `ActionResult`).
    package var contents: String?

    package init(path: String, kind: Kind, digest: String, executable: Bool = false) {
        self.path = path
        self.kind = kind
        self.digest = digest
        self.executable = executable
    }
}

/// A folder output: its files (paths relative to the folder, sorted), stored
/// as a CAS blob whose digest stands for the folder.
package struct FolderManifest: Codable, Sendable, Hashable {
    package struct File: Codable, Sendable, Hashable {
        package var path: String
        package var digest: String
        package var executable: Bool
    }

    package var files: [File]

    /// Canonical bytes: JSON with sorted keys, files in path byte order.
    package var bytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let sorted = FolderManifest(files: files.sorted { byteOrder($0.path, $1.path) })
        return Array((try? encoder.encode(sorted)) ?? Data())
    }
}

/// The local content-addressed store in `.planrun/cache/`:
/// `ac/KEY` action results (JSON), `cas/DIGEST` blobs, `tmp/` for writes in
/// progress. Writes go to a temporary file and are renamed into place, so a
/// reader sees a whole entry or none. Every blob is checked against its
/// digest when read; a bad blob is removed (unless read-only) and reported
/// as missing. No fsync: a blob torn by a power cut fails its digest check
/// and an `ac` entry torn likewise fails to parse, so both read as misses.
package struct LocalCacheStore: Sendable {
    package let root: String
    /// A read-only store never writes or removes anything.
    package let readOnly: Bool
    private let seen = Seen()

    /// What this store made or found during the build, so that each
    /// subtask's writes do not stat the same folders (`tmp/`, `cas/`,
    /// `ac/`) and the same blobs (an empty result) again. Only the write
    /// path trusts it (`isStored`); a restore checks the file itself.
    private final class Seen: Sendable {
        let folders = Mutex<Set<String>>([])
        let blobs = Mutex<Set<String>>([])
    }

    package init(root: String, readOnly: Bool = false) {
        self.root = root
        self.readOnly = readOnly
    }

    /// Creates folder `path` (and its parents) unless this store made or
    /// saw it already.
    private func ensureFolder(_ path: String) throws(CacheError) {
        if seen.folders.withLock({ $0.contains(path) }) { return }
        try LocalCacheStore.makeDirectories(path)
        seen.folders.withLock { _ = $0.insert(path) }
    }

    /// Whether blob `digest` is in the store, for a writer deciding to
    /// skip writing it: true for blobs this store wrote or found before.
    package func isStored(_ digest: String) -> Bool {
        if seen.blobs.withLock({ $0.contains(digest) }) { return true }
        guard hasBlob(digest) else { return false }
        rememberBlob(digest)
        return true
    }

    private func rememberBlob(_ digest: String) {
        seen.blobs.withLock { _ = $0.insert(digest) }
    }

    private func forgetBlob(_ digest: String) {
        seen.blobs.withLock { _ = $0.remove(digest) }
    }

    /// `ac/KEY` and `cas/DIGEST` names are 64 lowercase hex digits.
    package static func isDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    package func blobPath(_ digest: String) -> String { root + "/cas/" + digest }
    package func actionPath(_ key: String) -> String { root + "/ac/" + key }

    // MARK: Action results

    /// The action result for `key`, or nil when absent or unreadable (a
    /// corrupt entry is removed).
    package func action(_ key: String) -> ActionResult? {
        guard LocalCacheStore.isDigest(key), let bytes = FileBytes.read(actionPath(key)) else {
            return nil
        }
        guard let result = try? JSONDecoder().decode(ActionResult.self, from: Data(bytes)), result.format == 1,
              LocalCacheStore.isDigest(result.resultBlob),
              result.outputs.allSatisfy({ LocalCacheStore.isDigest($0.digest) })
        else {
            remove(actionPath(key))
            return nil
        }
        return result
    }

    package func putAction(_ key: String, _ result: ActionResult) throws(CacheError) {
        guard !readOnly, LocalCacheStore.isDigest(key) else { return }
        try writeAtomically(result.jsonBytes, to: actionPath(key))
    }

    // MARK: Blobs

    package func hasBlob(_ digest: String) -> Bool {
        LocalCacheStore.isDigest(digest) && FileStat.of(blobPath(digest))?.kind == .file
    }

    /// The blob's bytes if present and intact; a blob whose content does not
    /// match its name is removed and reported as missing.
    package func blob(_ digest: String) -> [UInt8]? {
        guard LocalCacheStore.isDigest(digest), let bytes = FileBytes.read(blobPath(digest)) else {
            return nil
        }
        guard Digest.sha256Hex(bytes) == digest else {
            remove(blobPath(digest))
            forgetBlob(digest)
            return nil
        }
        return bytes
    }

    /// Stores bytes; returns their digest.
    @discardableResult
    package func putBlob(_ bytes: [UInt8]) throws(CacheError) -> String {
        let digest = Digest.sha256Hex(bytes)
        if readOnly || isStored(digest) { return digest }
        try writeAtomically(bytes, to: blobPath(digest))
        rememberBlob(digest)
        return digest
    }

    /// Copies a file into the store, hashing what it copies; returns the
    /// digest of the stored content.
    package func putFile(_ path: String) throws(CacheError) -> String {
        guard !readOnly else { return try FileDigester.sha256(ofFile: path) }
        try ensureFolder(root + "/cas")
        let temp = try makeTemp()
        let digest: String
        do {
            digest = try LocalCacheStore.copy(from: path, to: temp)
        } catch {
            remove(temp)
            throw error
        }
        if isStored(digest) {
            remove(temp)
        } else if rename(temp, blobPath(digest)) != 0 {
            let reason = LocalCacheStore.errnoText()
            remove(temp)
            throw .storeWrite(reason: reason)
        }
        rememberBlob(digest)
        return digest
    }

    /// Writes blob `digest` to the absolute `destination` (replacing it)
    /// through a temporary file beside it, checking the content on the way.
    /// Returns false (and removes the bad blob) when the blob is missing or
    /// does not match its digest; nothing is written then.
    package func restoreBlob(_ digest: String, to destination: String, executable: Bool) throws(CacheError) -> Bool {
        guard !readOnly, hasBlob(digest) else { return false }
        let temp = destination + ".planrun-tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let actual: String
        do {
            actual = try LocalCacheStore.copy(from: blobPath(digest), to: temp, mode: executable ? 0o755 : 0o644)
        } catch {
            remove(temp)
            throw error
        }
        guard actual == digest else {
            remove(temp)
            remove(blobPath(digest))
            forgetBlob(digest)
            return false
        }
        if rename(temp, destination) != 0 {
            let reason = LocalCacheStore.errnoText()
            remove(temp)
            throw .storeWrite(reason: "cannot restore `\(destination)`: \(reason)")
        }
        return true
    }

    /// Writes `bytes` to the absolute `destination` (replacing it) through a
    /// temporary file beside it, so a reader sees the old file or the new
    /// one. The caller has checked the bytes against their digest.
    package static func replaceFile(_ destination: String, with bytes: [UInt8], executable: Bool) throws(CacheError) {
        let temp = destination + ".planrun-tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try writeFile(bytes, to: temp, mode: executable ? 0o755 : 0o644)
        } catch {
            unlink(temp)
            throw error
        }
        if rename(temp, destination) != 0 {
            let reason = errnoText()
            unlink(temp)
            throw .storeWrite(reason: "cannot restore `\(destination)`: \(reason)")
        }
    }

    /// Removes what a killed writer left in `tmp/`. Call only while no
    /// other process writes the store (the build lock is held).
    package func removeLeftovers() {
        guard !readOnly else { return }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root + "/tmp")) ?? [] {
            unlink(root + "/tmp/" + name)
        }
    }

    // MARK: Files

    /// A new path in `tmp/` for a download in progress (removed by the
    /// caller, or by `removeLeftovers` after a kill).
    package func temporaryPath() throws(CacheError) -> String { try makeTemp() }

    private func makeTemp() throws(CacheError) -> String {
        try ensureFolder(root + "/tmp")
        return root + "/tmp/\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    }

    private func writeAtomically(_ bytes: [UInt8], to path: String) throws(CacheError) {
        let dir = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
        try ensureFolder(dir)
        let temp = try makeTemp()
        do {
            try LocalCacheStore.writeFile(bytes, to: temp)
        } catch {
            remove(temp)
            throw error
        }
        if rename(temp, path) != 0 {
            let reason = LocalCacheStore.errnoText()
            remove(temp)
            throw .storeWrite(reason: reason)
        }
    }

    private func remove(_ path: String) {
        guard !readOnly else { return }
        unlink(path)
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }

    static func makeDirectories(_ path: String) throws(CacheError) {
        if FileStat.of(path)?.kind == .directory { return }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw .storeWrite(reason: "cannot create folder `\(path)`: \(error.localizedDescription)")
        }
    }

    static func writeFile(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(CacheError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .storeWrite(reason: "cannot create `\(path)`: \(errnoText())") }
        defer { close(fd) }
        fchmod(fd, mode)  // the mode asked for, whatever the umask
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .storeWrite(reason: "cannot write `\(path)`: \(errnoText())")
            }
            offset += n
        }
    }

    /// Copies `source` to a new file `destination` and returns the SHA-256 of
    /// the bytes copied.
    static func copy(from source: String, to destination: String, mode: mode_t = 0o644) throws(CacheError) -> String {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw .unreadable(path: source, reason: errnoText()) }
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard output >= 0 else { throw .storeWrite(reason: "cannot create `\(destination)`: \(errnoText())") }
        defer { close(output) }
        fchmod(output, mode)
        var hasher = SHA256()
        let size = 256 * 1024
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(input, buffer.baseAddress, size)
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: source, reason: errnoText())
            }
            if n == 0 { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            hasher.update(bufferPointer: chunk)
            var offset = 0
            while offset < n {
                let w = write(output, chunk.baseAddress! + offset, n - offset)
                if w < 0 {
                    if errno == EINTR { continue }
                    throw .storeWrite(reason: "cannot write `\(destination)`: \(errnoText())")
                }
                offset += w
            }
        }
        return Digest.hex(hasher.finalize())
    }
}

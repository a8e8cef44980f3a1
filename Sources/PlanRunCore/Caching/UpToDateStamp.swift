import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The whole-plan up-to-date check: how a rebuild where nothing changed
/// answers in one `stat` per file, without reading the plan, the state
/// database or the cache (ninja's no-op is the bar).
///
/// What it certifies: a build of this plan file, with these targets, `--var` values and
/// these `env_inputs` values, by this planrun binary, decided every selected
/// subtask `cached` (key equal to the last success, outputs intact) while
/// every `stat` those decisions took returned what the stamp records. The
/// decisions are a function of exactly those things plus the state
/// database, so as long as all of them are unchanged a new build would
/// decide the same and run nothing:
/// - the plan file's bytes (its stat; the plan holds agents, commands, `env`,
///   patterns), the binary (its stat; key format), the targets, the values
///   of the `env_inputs` the plan names;
/// - every path a decision stat'ed: input files (their digests come from
///   the stat cache on the same stat), folders listed by globs (a folder's
///   mtime changes when an entry is added, removed or renamed), outputs,
///   files of folder outputs; and paths found absent;
/// - the state database: only a build writes history, and every build,
///   `retry` and `clean` removes the stamp while holding the build lock,
///   before it changes anything. `state.db` itself is checked by identity
///   (device, inode), so removing it by hand also invalidates the stamp.
///
/// A stamp is written only at the end of a build in which every selected
/// subtask was `cached` (not restored, not run; `cache: false` always runs,
/// so such plans never get one), and only when no recorded path changed
/// within the racy window (2 s): a file modified again within the same
/// timestamp tick could keep its stat, so recent files wait for a later
/// build. `--force`, `--only`, `--dry-run`, `--json` and `--report` never
/// take the shortcut.
///
/// Format (`uptodate` in the state folder; native byte order, a local file
/// only): magic `PLANRUN-UPTODATE-1\n`, a header of `name\tvalue\n` lines
/// ended by an empty line, then one record per path: flags (UInt8: 1 follow
/// symlinks, 2 present, 4 identity only, 8 relative), kind (UInt8), mode (UInt32), size,
/// mtime ns, ctime ns (Int64), inode, device (UInt64), path length (UInt32),
/// path bytes, NUL. Flag 8 marks a path relative to the header's `root`
/// (the plan's folder).
package enum UpToDateStamp {
    package static let fileName = "uptodate"
    static let magic = Array("PLANRUN-UPTODATE-1\n".utf8)

    package static func path(stateDirectory: String) -> String {
        (stateDirectory as NSString).appendingPathComponent(fileName)
    }

    /// Removes the stamp (a build that may change anything calls this
    /// under the build lock before it does). Throws when it exists and
    /// cannot be removed: a build must not go on leaving a stamp that
    /// would later claim its changes never happened.
    package static func remove(stateDirectory: String) throws(CacheError) {
        let file = path(stateDirectory: stateDirectory)
        if unlink(file) != 0 && errno != ENOENT && errno != ENOTDIR {
            throw .storeWrite(reason: "cannot remove `\(file)`: \(String(cString: strerror(errno)))")
        }
    }

    /// What identifies an invocation besides the files: written in the
    /// header and compared as text.
    package struct Invocation: Sendable, Equatable {
        /// The plan file's absolute, standardized path
        /// (`PlanLoader.location(of:)`).
        package var planFile: String
        /// The targets, sorted and unique (empty: the whole plan).
        package var targets: [String]
        /// The caller's environment (for `env_inputs`).
        package var environment: [String: String]
        /// The `--var` arguments, in order (a later one wins, so order matters).
        package var variables: [String]

        package init(planFile: String, targets: [String], environment: [String: String], variables: [String] = []) {
            self.variables = variables
            self.planFile = planFile
            self.targets = Array(Set(targets)).sorted(by: byteOrder)
            self.environment = environment
        }

    }

    // MARK: Checking

    /// The number of subtasks a build of `invocation` would find up to date
    /// when the stamp in `stateDirectory` still holds; nil when there is no
    /// valid stamp or anything it records changed.
    package static func check(_ invocation: Invocation, stateDirectory: String) -> Int? {
        // Read only as a regular file: a link or FIFO there is no stamp.
        guard case .bytes(let bytes) = FileBytes.readRegular(path(stateDirectory: stateDirectory)),
              bytes.count > magic.count, bytes.prefix(magic.count).elementsEqual(magic)
        else { return nil }
        return bytes.withUnsafeBytes { raw -> Int? in
            var offset = magic.count
            guard let header = parseHeader(raw, &offset) else { return nil }
            guard let count = header["count"].flatMap({ Int($0) }), count >= 0,
                  header["binary"] == binaryIdentity(), header["binary"] != nil,
                  header["plan"] == invocation.planFile,
                  header["targets"] == invocation.targets.joined(separator: "\u{1}"),
                  header["vars"] ?? "" == invocation.variables.joined(separator: "\u{1}"),
                  header["env"] == environmentDigest(names: header["env_names"] ?? "", invocation.environment)
            else { return nil }
            // Paths inside the plan's folder are stored relative to it and
            // looked up from an open descriptor of it: the kernel then walks
            // two or three components per file instead of the whole path.
            let root = header["root"] ?? ""
            let rootFD = root.isEmpty ? -1 : open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            defer { if rootFD >= 0 { close(rootFD) } }
            while offset < raw.count {
                guard let holds = Entry.check(raw, &offset, rootFD: rootFD), holds else { return nil }
            }
            return count
        }
    }

    private static func parseHeader(_ raw: UnsafeRawBufferPointer, _ offset: inout Int) -> [String: String]? {
        var header: [String: String] = [:]
        while true {
            guard let end = raw[offset...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            if end == offset { offset += 1; return header }
            let line = String(decoding: UnsafeRawBufferPointer(rebasing: raw[offset..<end]), as: UTF8.self)
            offset = end + 1
            guard let tab = line.firstIndex(of: "\t") else { return nil }
            header[String(line[..<tab])] = String(line[line.index(after: tab)...])
        }
    }

    /// The running binary's path and stat: a rebuilt planrun may compute
    /// keys differently, so its stamp does not carry over.
    static func binaryIdentity() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        buffer[n] = 0
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let st = FileStat.of(exe) else { return nil }
        return "\(exe)\u{1}\(st.size)\u{1}\(st.mtimeNs)\u{1}\(st.ctimeNs)\u{1}\(st.inode)"
    }

    /// SHA-256 over the values (or absence) of the `\u{1}`-separated names.
    static func environmentDigest(names: String, _ environment: [String: String]) -> String {
        var framer = FieldFramer()
        framer.add("planrun-uptodate-env")
        for name in names.split(separator: "\u{1}") {
            framer.add(String(name))
            if let value = environment[String(name)] {
                framer.add("=")
                framer.add(value)
            } else {
                framer.add("unset")
            }
        }
        return framer.digest
    }

    // MARK: Recording

    /// One recorded `stat`.
    struct Entry {
        static let follow: UInt8 = 1, present: UInt8 = 2, identityOnly: UInt8 = 4, relative: UInt8 = 8
        var path: String
        var flags: UInt8
        var stat: FileStat?

        /// Whether the entry at `offset` still holds, without making a
        /// `String` or a `FileStat`: one `fstatat` on the path's bytes in
        /// place. nil when the record is malformed.
        static func check(_ raw: UnsafeRawBufferPointer, _ offset: inout Int, rootFD: Int32) -> Bool? {
            guard raw.count - offset >= fixedSize else { return nil }
            let base = offset
            let flags = raw[base]
            let length = Int(raw.loadUnaligned(fromByteOffset: base + 46, as: UInt32.self))
            let start = base + fixedSize
            guard length > 0, raw.count - start > length, raw[start + length] == 0 else { return nil }
            offset = start + length + 1
            let relative = flags & Entry.relative != 0
            if relative && rootFD < 0 { return false }
            var st = Glibc.stat()
            let path = raw.baseAddress!.advanced(by: start).assumingMemoryBound(to: CChar.self)
            let rc = fstatat(relative ? rootFD : AT_FDCWD, path, &st, flags & Entry.follow != 0 ? 0 : AT_SYMLINK_NOFOLLOW)
            guard flags & Entry.present != 0 else { return rc != 0 }
            guard rc == 0 else { return false }
            let now = FileStat(st)
            if flags & Entry.identityOnly != 0 {
                return now.inode == raw.loadUnaligned(fromByteOffset: base + 30, as: UInt64.self)
                    && now.device == raw.loadUnaligned(fromByteOffset: base + 38, as: UInt64.self)
            }
            return kindCode(now.kind) == raw[base + 1]
                && now.mode == raw.loadUnaligned(fromByteOffset: base + 2, as: UInt32.self)
                && now.size == raw.loadUnaligned(fromByteOffset: base + 6, as: Int64.self)
                && now.mtimeNs == raw.loadUnaligned(fromByteOffset: base + 14, as: Int64.self)
                && now.ctimeNs == raw.loadUnaligned(fromByteOffset: base + 22, as: Int64.self)
                && now.inode == raw.loadUnaligned(fromByteOffset: base + 30, as: UInt64.self)
                && now.device == raw.loadUnaligned(fromByteOffset: base + 38, as: UInt64.self)
        }

        /// Writes the record; a path below `root` (`root` ending in `/`) is
        /// written relative to it.
        func write(into out: inout [UInt8], root: String) {
            var flags = self.flags
            if stat != nil { flags |= Entry.present }
            var stored = path
            if !root.isEmpty, path.hasPrefix(root), path.utf8.count > root.utf8.count {
                stored = String(path.dropFirst(root.count))
                flags |= Entry.relative
            }
            let s = stat ?? FileStat(kind: .other, size: 0, mtimeNs: 0, ctimeNs: 0, inode: 0, device: 0, mode: 0)
            out.append(flags)
            out.append(Entry.kindCode(s.kind))
            Swift.withUnsafeBytes(of: s.mode) { out.append(contentsOf: $0) }
            for value in [s.size, s.mtimeNs, s.ctimeNs] { Swift.withUnsafeBytes(of: value) { out.append(contentsOf: $0) } }
            for value in [s.inode, s.device] { Swift.withUnsafeBytes(of: value) { out.append(contentsOf: $0) } }
            let bytes = Array(stored.utf8)
            Swift.withUnsafeBytes(of: UInt32(bytes.count)) { out.append(contentsOf: $0) }
            out.append(contentsOf: bytes)
            out.append(0)
        }

        static let fixedSize = 1 + 1 + 4 + 8 * 3 + 8 * 2 + 4

        static func kindCode(_ kind: FileStat.Kind) -> UInt8 {
            switch kind {
            case .file: 1
            case .directory: 2
            case .symlink: 3
            case .other: 4
            }
        }

        static func kindFromCode(_ code: UInt8) -> FileStat.Kind? {
            switch code {
            case 1: .file
            case 2: .directory
            case 3: .symlink
            case 4: .other
            default: nil
            }
        }
    }

    /// Writes the stamp for `entries` (atomically: a temporary file, then
    /// rename); paths below `root` (the plan's folder) are stored relative
    /// to it. Returns false, writing nothing, when a recorded path changed
    /// within the racy window before `now`, or the write fails.
    static func write(
        stateDirectory: String, invocation: Invocation, root: String, envNames: [String], count: Int,
        entries: [Entry], now: Int64 = FileDigester.now(), racyWindowNs: Int64 = FileDigester.defaultRacyWindowNs
    ) -> Bool {
        guard let binary = binaryIdentity() else { return false }
        for entry in entries {
            guard let st = entry.stat, entry.flags & Entry.identityOnly == 0 else { continue }
            if st.mtimeNs >= now - racyWindowNs || st.ctimeNs >= now - racyWindowNs { return false }
        }
        let names = envNames.joined(separator: "\u{1}")
        let header: [(String, String)] = [
            ("binary", binary),
            ("count", String(count)),
            ("env", environmentDigest(names: names, invocation.environment)),
            ("env_names", names),
            ("plan", invocation.planFile),
            ("root", root),
            ("targets", invocation.targets.joined(separator: "\u{1}")),
            ("vars", invocation.variables.joined(separator: "\u{1}")),
        ]
        var out = magic
        for (name, value) in header {
            // A newline in a value (a path, a target) would break the header.
            guard !value.utf8.contains(UInt8(ascii: "\n")) else { return false }
            out.append(contentsOf: Array("\(name)\t\(value)\n".utf8))
        }
        out.append(UInt8(ascii: "\n"))
        out.reserveCapacity(out.count + entries.count * (Entry.fixedSize + 48))
        for entry in entries {
            guard !entry.path.isEmpty, !entry.path.utf8.contains(0) else { return false }
            entry.write(into: &out, root: root.hasSuffix("/") ? root : root + "/")
        }
        do {
            try LocalCacheStore.replaceFile(path(stateDirectory: stateDirectory), with: out, mode: 0o644)
        } catch {
            return false
        }
        return true
    }
}

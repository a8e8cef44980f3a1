import Foundation

/// Expands a subtask's `inputs` into the sorted list of files they name.
///
/// Syntax, per `/`-separated segment, relative to the plan's folder:
/// - `*` any run of characters, `?` one character, `[abc]`, `[a-z]`,
///   `[!a-z]` (or `[^a-z]`) one character of (or not of) a set, `\x` the
///   character `x` itself;
/// - `**` as a whole segment: zero or more folders (`src/**/*.c`); a trailing
///   `**` means every file below (`docs/**`);
/// - wildcards do not match names starting with `.` unless the segment
///   itself starts with `.` (as in shells; this keeps `.git` and `.planrun`
///   out of `**`), and never match `.planrun` (the state folder is never an
///   input);
/// - a pattern without wildcards may name a file, or a folder, which stands
///   for every file below it; wildcard matches are files only;
/// - a leading `-` marks the pattern optional (like make's `-include`): it
///   may match nothing. Without it, a pattern that matches nothing is an
///   error. (A file whose name starts with `-` is written `./-name`.)
///
/// Symbolic links: a link to a file matches as a file (its target's content
/// is what is hashed); `**` and a folder named literally never descend into
/// a linked folder, so a glob's cost is bounded by the real tree
/// and always terminates. A path written out (`src/link/a.c`, `link/*.c`) does follow a
/// link; a folder is never entered twice on one path. A restore's
/// temporary files (`NAME.planrun-tmp-PID-N`) never match. Results are
/// plan-relative, in byte order, without duplicates.
///
/// Hand-written because no package available to planrun (Foundation,
/// swift-system, swift-collections...) offers `**` globbing on Linux, and
/// Glibc's `glob(3)` has no `**` and no loop protection.
package enum InputGlob {
    /// A parsed `inputs` entry.
    package struct Pattern: Sendable, Hashable {
        package var text: String
        package var optional: Bool

        package init(_ entry: String) {
            if entry.hasPrefix("-") {
                text = String(entry.dropFirst())
                optional = true
            } else {
                text = entry
                optional = false
            }
        }
    }

    /// Every input file of `subtask`, plan-relative, sorted, unique. Every
    /// path it stats (files, folders it lists, paths found absent) is noted
    /// in `log`.
    package static func inputFiles(of subtask: Subtask, root: String, log: StatLog? = nil) throws(CacheError) -> [String] {
        // Fast path: one plain file path (the common `inputs: [src/a.c]`).
        if subtask.inputs.count == 1, isPlainPath(subtask.inputs[0]) {
            let path = subtask.inputs[0]
            switch FileStat.of(Walker.join(path: root, path), log: log)?.kind {
            case .file: return [path]
            case .directory: break // every file below: the general path
            default: throw MissingInput.error(subtask: subtask, index: 0, pattern: path, root: root)
            }
        }
        var all = Set<String>()
        for (index, entry) in subtask.inputs.enumerated() {
            let pattern = Pattern(entry)
            let files = try expand(pattern.text, root: root, log: log)
            if files.isEmpty && !pattern.optional {
                throw MissingInput.error(subtask: subtask, index: index, pattern: pattern.text, root: root)
            }
            all.formUnion(files)
        }
        return all.sorted(by: byteOrder)
    }

    /// Whether `entry` is a relative path that `expand` returns unchanged
    /// when it names a file: not optional (`-`), not absolute, no wildcard
    /// or escape, no empty or `.` segment.
    static func isPlainPath(_ entry: String) -> Bool {
        if entry.utf8.first == UInt8(ascii: "-") { return false }
        var segmentLength = 0
        var lastByte: UInt8 = 0
        for byte in entry.utf8 {
            switch byte {
            case UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "["), UInt8(ascii: "\\"):
                return false
            case UInt8(ascii: "/"):
                // An empty segment (leading `/`, `//`) or a `.` segment.
                if segmentLength == 0 || (segmentLength == 1 && lastByte == UInt8(ascii: ".")) { return false }
                segmentLength = 0
            default:
                segmentLength += 1
            }
            lastByte = byte
        }
        return segmentLength > 0 && !(segmentLength == 1 && lastByte == UInt8(ascii: "."))
    }

    /// The files `pattern` matches under `root`, plan-relative, sorted.
    package static func expand(_ pattern: String, root: String, log: StatLog? = nil) throws(CacheError) -> [String] {
        let absolute = pattern.hasPrefix("/")
        var segments = pattern.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        segments.removeAll { $0 == "." }
        if segments.isEmpty { throw .invalidPattern(pattern: pattern, reason: "it names no file") }
        var compiled: [Segment] = []
        for s in segments {
            guard let seg = Segment(s) else {
                throw .invalidPattern(pattern: pattern, reason: "unterminated `[` in `\(s)`")
            }
            compiled.append(seg)
        }
        if case .globstar = compiled.last { compiled.append(Segment("*")!) }
        var walker = Walker(segments: compiled, log: log)
        // Fast path: no wildcard at all (the common `inputs: [src/a.c]`).
        let literal = compiled.compactMap { segment -> String? in
            if case .literal(let name) = segment { return name }
            return nil
        }
        if literal.count == compiled.count {
            let rel = (absolute ? "/" : "") + literal.joined(separator: "/")
            let full = absolute ? rel : Walker.join(path: root, rel)
            switch FileStat.of(full, log: log)?.kind {
            case .file: return [rel]
            case .directory:
                walker.addAllFiles(dir: full, rel: rel, ancestors: [])
                return Array(Set(walker.results)).sorted(by: byteOrder)
            default: return []
            }
        }
        let base = absolute ? "/" : root
        walker.walk(index: 0, dir: base, rel: absolute ? "/" : "", ancestors: [])
        return Array(Set(walker.results)).sorted(by: byteOrder)
    }

    /// One compiled path segment.
    enum Segment {
        case literal(String)
        case globstar
        case wildcard([Unicode.Scalar], matchesDot: Bool)

        init?(_ text: String) {
            if text == "**" { self = .globstar; return }
            let scalars = Array(text.unicodeScalars)
            if !scalars.contains(where: { $0 == "*" || $0 == "?" || $0 == "[" || $0 == "\\" }) {
                self = .literal(text)
                return
            }
            guard InputGlob.bracketsClosed(scalars) else { return nil }
            if !scalars.contains(where: { $0 == "*" || $0 == "?" || $0 == "[" }) {
                // Only escapes: unescape to a literal.
                var out = String.UnicodeScalarView()
                var i = 0
                while i < scalars.count {
                    if scalars[i] == "\\", i + 1 < scalars.count { i += 1 }
                    out.append(scalars[i])
                    i += 1
                }
                self = .literal(String(out))
                return
            }
            self = .wildcard(scalars, matchesDot: scalars.first == ".")
        }
    }

    static func bracketsClosed(_ p: [Unicode.Scalar]) -> Bool {
        var i = 0
        while i < p.count {
            if p[i] == "\\" { i += 2; continue }
            if p[i] == "[" {
                guard let end = bracketEnd(p, from: i) else { return false }
                i = end + 1
                continue
            }
            i += 1
        }
        return true
    }

    /// Index of the `]` closing the set opened at `start`, or nil.
    static func bracketEnd(_ p: [Unicode.Scalar], from start: Int) -> Int? {
        var i = start + 1
        if i < p.count, p[i] == "!" || p[i] == "^" { i += 1 }
        if i < p.count, p[i] == "]" { i += 1 } // a leading `]` is literal
        while i < p.count {
            if p[i] == "\\" { i += 2; continue }
            if p[i] == "]" { return i }
            i += 1
        }
        return nil
    }

    /// Whether `name` matches the wildcard segment `p` (no `/` involved).
    package static func matches(_ pattern: String, _ name: String) -> Bool {
        matches(Array(pattern.unicodeScalars), Array(name.unicodeScalars))
    }

    static func matches(_ p: [Unicode.Scalar], _ s: [Unicode.Scalar]) -> Bool {
        var pi = 0, si = 0
        var starP = -1, starS = 0
        while si < s.count {
            if pi < p.count {
                switch p[pi] {
                case "*":
                    starP = pi
                    starS = si
                    pi += 1
                    continue
                case "?":
                    pi += 1
                    si += 1
                    continue
                case "[":
                    if let end = bracketEnd(p, from: pi), setMatches(p, from: pi, to: end, s[si]) {
                        pi = end + 1
                        si += 1
                        continue
                    }
                case "\\" where pi + 1 < p.count:
                    if p[pi + 1] == s[si] {
                        pi += 2
                        si += 1
                        continue
                    }
                default:
                    if p[pi] == s[si] {
                        pi += 1
                        si += 1
                        continue
                    }
                }
            }
            guard starP >= 0 else { return false }
            pi = starP + 1
            starS += 1
            si = starS
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }

    static func setMatches(_ p: [Unicode.Scalar], from start: Int, to end: Int, _ c: Unicode.Scalar) -> Bool {
        var i = start + 1
        var negate = false
        if p[i] == "!" || p[i] == "^" {
            negate = true
            i += 1
        }
        var found = false
        while i < end {
            var lo = p[i]
            if lo == "\\", i + 1 < end {
                i += 1
                lo = p[i]
            }
            if i + 2 < end, p[i + 1] == "-" {
                var hi = p[i + 2]
                var next = i + 3
                if hi == "\\", i + 3 < end {
                    hi = p[i + 3]
                    next = i + 4
                }
                if lo.value <= c.value && c.value <= hi.value { found = true }
                i = next
            } else {
                if lo == c { found = true }
                i += 1
            }
        }
        return found != negate
    }

    /// Depth-first expansion; entries are visited in byte order.
    struct Walker {
        struct DirID: Hashable { var device: UInt64; var inode: UInt64 }

        let segments: [Segment]
        /// Where every stat the walk takes is noted.
        let log: StatLog?
        var results: [String] = []

        init(segments: [Segment], log: StatLog?) {
            self.segments = segments
            self.log = log
        }

        static func join(_ rel: String, _ name: String) -> String {
            rel.isEmpty ? name : rel.hasSuffix("/") ? rel + name : rel + "/" + name
        }

        static func join(path dir: String, _ name: String) -> String {
            dir.hasSuffix("/") ? dir + name : dir + "/" + name
        }

        /// The names in `dir`, in byte order, without a restore's
        /// temporary files (`LocalCacheStore.isTemporaryName`).
        static func entries(of dir: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
                .filter { !LocalCacheStore.isTemporaryName($0) }.sorted(by: byteOrder)
        }

        /// Whether `path` is a folder itself, not a link to one.
        func isRealFolder(_ path: String) -> Bool {
            FileStat.of(path, followSymlinks: false, log: log)?.kind == .directory
        }

        mutating func walk(index: Int, dir: String, rel: String, ancestors: Set<DirID>) {
            guard let st = FileStat.of(dir, log: log), st.kind == .directory else { return }
            let me = DirID(device: st.device, inode: st.inode)
            guard !ancestors.contains(me) else { return }
            let outer = ancestors
            var ancestors = ancestors
            ancestors.insert(me)
            let last = index == segments.count - 1
            switch segments[index] {
            case .literal(let name):
                let path = Walker.join(path: dir, name)
                let childRel = Walker.join(rel, name)
                if last {
                    guard let child = FileStat.of(path, log: log) else { return }
                    if child.kind == .directory {
                        addAllFiles(dir: path, rel: childRel, ancestors: ancestors)
                    } else if child.kind == .file {
                        results.append(childRel)
                    }
                } else {
                    walk(index: index + 1, dir: path, rel: childRel, ancestors: ancestors)
                }
            case .globstar:
                walk(index: index + 1, dir: dir, rel: rel, ancestors: outer)
                for name in Walker.entries(of: dir) where !name.hasPrefix(".") {
                    let path = Walker.join(path: dir, name)
                    if isRealFolder(path) {
                        walk(index: index, dir: path, rel: Walker.join(rel, name), ancestors: ancestors)
                    }
                }
            case .wildcard(let pattern, let matchesDot):
                for name in Walker.entries(of: dir) {
                    if name.hasPrefix(".") && (!matchesDot || name == ".planrun") { continue }
                    guard InputGlob.matches(pattern, Array(name.unicodeScalars)) else { continue }
                    let path = Walker.join(path: dir, name)
                    let childRel = Walker.join(rel, name)
                    if last {
                        if FileStat.of(path, log: log)?.kind == .file { results.append(childRel) }
                    } else {
                        walk(index: index + 1, dir: path, rel: childRel, ancestors: ancestors)
                    }
                }
            }
        }

        /// Every file below a folder named literally (`.planrun` excluded),
        /// links to files included, linked folders not entered.
        mutating func addAllFiles(dir: String, rel: String, ancestors: Set<DirID>) {
            guard let st = FileStat.of(dir, log: log), st.kind == .directory else { return }
            let me = DirID(device: st.device, inode: st.inode)
            guard !ancestors.contains(me) else { return }
            var ancestors = ancestors
            ancestors.insert(me)
            for name in Walker.entries(of: dir) where name != ".planrun" {
                let path = Walker.join(path: dir, name)
                let childRel = Walker.join(rel, name)
                switch FileStat.of(path, followSymlinks: false, log: log)?.kind {
                case .file: results.append(childRel)
                case .directory: addAllFiles(dir: path, rel: childRel, ancestors: ancestors)
                case .symlink: if FileStat.of(path, log: log)?.kind == .file { results.append(childRel) }
                default: break
                }
            }
        }
    }
}

import Foundation

/// Inputs that name no file: the error a build gives, with the
/// pattern's place in the plan and the closest existing path, and the check
/// `validate` makes ahead of any build for plain paths.
package enum MissingInput {
    /// The error for input `index` of `subtask` (its text without the
    /// optional mark is `pattern`) matching nothing under `root`.
    static func error(subtask: Subtask, index: Int, pattern: String, root: String) -> CacheError {
        let locations = subtask.locations.inputs
        return .inputNotFound(subtask: subtask.id, pattern: pattern,
                              location: index < locations.count ? locations[index] : nil,
                              suggestion: InputGlob.isPlainPath(pattern) ? suggestion(for: pattern, root: root) : nil)
    }

    /// The path beside the plain relative `path` (same folder) whose name is closest to its
    /// last component, plan-relative; nil when the folder does not exist or
    /// nothing is close. Only the first 10,000 names of a folder are read,
    /// so the cost is bounded whatever the folder holds.
    package static func suggestion(for path: String, root: String) -> String? {
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        guard let name = components.last.map(String.init) else { return nil }
        let folder = components.dropLast().joined(separator: "/")
        guard let directory = opendir(folder.isEmpty ? root : root + "/" + folder) else { return nil }
        defer { closedir(directory) }
        var names: [String] = []
        while names.count < 10_000, let entry = readdir(directory) {
            let entryName = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if entryName == "." || entryName == ".." { continue }
            if entryName.hasPrefix("."), !name.hasPrefix(".") { continue }
            names.append(entryName)
        }
        names.sort()
        guard let closest = Suggestion.closest(to: name, in: names) else { return nil }
        return folder.isEmpty ? closest : folder + "/" + closest
    }

    /// `validate`'s check: every input that is a plain path (no wildcard,
    /// not optional) and names neither an existing file or folder, nor a
    /// subtask's output, nor a folder holding one, nor a path inside an
    /// output folder. One diagnostic per such input, at its position.
    package static func diagnostics(for plan: Plan) -> [Diagnostic] {
        // The outputs and the folders holding them, collected only once an
        // input is missing on disk: in a plan whose inputs all exist (the
        // usual case) they are never needed.
        var outputSets: (outputs: Set<String>, folders: Set<String>)?
        func collectOutputs() -> (outputs: Set<String>, folders: Set<String>) {
            var outputs = Set<String>()
            var outputFolders = Set<String>()
            for subtask in plan.subtasks {
                for output in subtask.outputs {
                    guard let normalized = PlanValidator.normalizedRelativePath(output) else { continue }
                    outputs.insert(normalized)
                    var parts = normalized.split(separator: "/")
                    while parts.popLast() != nil, !parts.isEmpty { outputFolders.insert(parts.joined(separator: "/")) }
                }
            }
            return (outputs, outputFolders)
        }
        var found: [Diagnostic] = []
        var probe = ExistenceProbe(root: plan.directory)
        defer { probe.finish() }
        // Indexes, not `for subtask in`: the loop reads a few fields of each
        // subtask and must not copy (retain and release) all of them.
        for s in plan.subtasks.indices {
            // Plain paths are relative and have no `.` or empty segment.
            for (index, entry) in plan.subtasks[s].inputs.enumerated() where InputGlob.isPlainPath(entry) {
                if probe.exists(entry) { continue }
                let subtask = plan.subtasks[s]
                if outputSets == nil { outputSets = collectOutputs() }
                let (outputs, outputFolders) = outputSets!
                if let normalized = PlanValidator.normalizedRelativePath(entry) {
                    if outputs.contains(normalized) || outputFolders.contains(normalized) { continue }
                    var parts = normalized.split(separator: "/")
                    var insideOutput = false
                    while parts.popLast() != nil, !parts.isEmpty {
                        if outputs.contains(parts.joined(separator: "/")) { insideOutput = true; break }
                    }
                    if insideOutput { continue }
                }
                let at = subtask.locations.inputs
                found.append(Diagnostic(
                    .inputNotFound(subtask: subtask.id, path: entry,
                                   suggestion: suggestion(for: entry, root: plan.directory)),
                    at: index < at.count ? at[index] : subtask.locations.item))
            }
        }
        return found
    }
}

/// Whether plain plan-relative paths exist (`stat` succeeds, links
/// followed), for many paths at once. A folder asked about often is read
/// with `readdir` instead: one `getdents` per few hundred names against a
/// `stat` (a path walk) per name. A name in the listing whose type is known
/// and not a link exists; anything else (not listed yet, a link, an
/// unknown type, a folder that cannot be listed) is decided by `fstatat`
/// relative to the plan's folder, so the answer is always `stat`'s; a name
/// `stat` finds joins its folder's names, so that inputs many subtasks
/// share (a common header) are looked up once. Only ASCII names are kept
/// and compared (Swift compares Strings by canonical equivalence, a file
/// system by bytes; for ASCII they agree).
/// Foundation's `FileManager.contentsOfDirectory` reads a whole folder at
/// once and gives no types, so this calls `readdir` itself.
struct ExistenceProbe {
    /// Lookups in one folder before it is listed, and entries read per
    /// lookup at most: a folder is read only as far as its lookups pay for
    /// (a `stat` costs about as much as reading a few dozen entries), so a
    /// plan naming a few files of a huge folder reads little of it.
    static let listAfter = 8
    static let entriesPerLookup = 16
    /// Folders being listed at once (each holds a descriptor and a buffer).
    static let maxOpen = 64

    let root: String
    let rootFD: Int32
    var listings: [Substring: FolderListing] = [:]
    var openCount = 0
    /// `stat` calls made (tests check that listing saves them).
    private(set) var stats = 0

    init(root: String) {
        self.root = root
        rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    }

    mutating func finish() {
        for listing in listings.values { if let d = listing.directory { closedir(d) } }
        listings = [:]
        if rootFD >= 0 { _ = close(rootFD) }
    }

    /// Whether `path` (plain, relative to the root) exists.
    mutating func exists(_ path: String) -> Bool {
        let slash = path.utf8.lastIndex(of: UInt8(ascii: "/"))
        let folder = slash.map { path[..<$0] } ?? ""
        let name = slash.map { String(path[path.utf8.index(after: $0)...]) } ?? path
        let listable = rootFD >= 0 && name.utf8.allSatisfy { $0 < 0x80 }
        if listable,
           listings[folder, default: FolderListing()].contains(name, folder: folder, rootFD: rootFD, openCount: &openCount) {
            return true
        }
        stats += 1
        var st = stat()
        guard rootFD >= 0 else { return stat(root + "/" + path, &st) == 0 }
        guard fstatat(rootFD, path, &st, 0) == 0 else { return false }
        if listable { listings[folder]?.names.insert(name) }
        return true
    }
}

/// One folder's part of `ExistenceProbe`: the names read so far whose type
/// says they exist, and the open listing while there is more to read.
struct FolderListing {
    var directory: OpaquePointer?
    var names = Set<String>()
    var lookups = 0
    var read = 0
    /// Whether opening the folder was tried (once).
    var opened = false

    /// Whether `name` is among the names read, reading on as far as the
    /// lookups allow. false means only "not seen": the caller asks `stat`.
    mutating func contains(_ name: String, folder: Substring, rootFD: Int32, openCount: inout Int) -> Bool {
        lookups += 1
        if !opened, lookups >= ExistenceProbe.listAfter, openCount < ExistenceProbe.maxOpen {
            opened = true
            let fd = openat(rootFD, folder.isEmpty ? "." : String(folder), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 {
                if let d = fdopendir(fd) {
                    directory = d
                    openCount += 1
                } else {
                    _ = close(fd)
                }
            }
        }
        if names.contains(name) { return true }
        guard let d = directory else { return false }
        var found = false
        while read < lookups * ExistenceProbe.entriesPerLookup {
            guard let entry = readdir(d) else {
                closedir(d)
                directory = nil
                openCount -= 1
                break
            }
            read += 1
            let type = Int32(entry.pointee.d_type)
            if type == Int32(DT_LNK) || type == Int32(DT_UNKNOWN) { continue }
            let entryName = withUnsafeBytes(of: entry.pointee.d_name) { raw -> String? in
                let bytes = raw.prefix { $0 != 0 }
                return bytes.allSatisfy { $0 < 0x80 } ? String(decoding: bytes, as: UTF8.self) : nil
            }
            guard let entryName else { continue }
            if !found, entryName == name { found = true }
            names.insert(entryName)
        }
        return found
    }
}

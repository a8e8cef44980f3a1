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
        // Paths already found on disk: inputs that many subtasks share (a
        // common header) are looked up once.
        var existing = Set<String>()
        for subtask in plan.subtasks {
            // Plain paths are relative and have no `.` or empty segment.
            for (index, entry) in subtask.inputs.enumerated() where InputGlob.isPlainPath(entry) {
                if existing.contains(entry) { continue }
                if FileStat.of(plan.directory + "/" + entry) != nil {
                    existing.insert(entry)
                    continue
                }
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

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The entries planrun owns in a state folder (`.planrun/` or
/// `--state-dir`), and the check that none of them is a symbolic link or of
/// the wrong kind: nothing in the state folder is ever followed.
///
/// planrun writes, deletes and reads these by path (SQLite opens
/// `state.db` by path, logs and the cache's folders are created by path),
/// so a link planted in place of one of them would make planrun act on
/// whatever it points to. The check runs whenever planrun opens the state
/// folder (the build lock, the state database, `clean`), and it refuses
/// instead of acting: nothing is written or deleted through a link. The
/// state folder itself may be a link to a folder (a user's choice, such as
/// a faster disk); the check starts below it.
///
/// Files in `cache/ac/` and `cache/cas/` are checked where they are read
/// (`FileBytes.readRegular`: no link followed, regular files only), and
/// written by renaming over them, which replaces a link rather than
/// following it.
package enum StateFolder {
    /// Folders planrun makes in the state folder.
    static let folders = ["cache", "cache/ac", "cache/cas", "cache/tmp", "tmp", "logs"]
    /// Files planrun makes in the state folder (SQLite's included).
    static let files = [
        "state.db", "state.db-wal", "state.db-shm", "state.db-journal", "build.lock", "uptodate", "approval.json",
        "processes", "state.db-checked",
    ]
    /// Folders whose entries are folders planrun made (one per run) and
    /// removes by path.
    static let runFolders = ["logs", "tmp"]

    /// Why a state folder is not used.
    package struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        package enum Problem: Sendable, Hashable { case symlink, notFolder, notFile }

        /// The offending entry's full path.
        package var path: String
        package var problem: Problem

        package var description: String {
            switch problem {
            case .symlink:
                "refusing to use the state folder: `\(path)` is a symbolic link (planrun never follows links inside its state folder; remove the link)"
            case .notFolder:
                "refusing to use the state folder: `\(path)` is not a folder (remove it)"
            case .notFile:
                "refusing to use the state folder: `\(path)` is not a regular file (remove it)"
            }
        }
    }

    /// Throws when one of planrun's entries in `directory` is a link, or a
    /// file where a folder belongs (or the reverse). Absent entries are fine.
    package static func check(_ directory: String) throws(Refusal) {
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        for name in folders {
            let path = base + name
            guard let st = FileStat.of(path, followSymlinks: false) else { continue }
            switch st.kind {
            case .directory: continue
            case .symlink: throw Refusal(path: path, problem: .symlink)
            default: throw Refusal(path: path, problem: .notFolder)
            }
        }
        for name in files {
            try checkFile(base + name)
        }
        for name in runFolders {
            let folder = base + name
            guard let dir = opendir(folder) else { continue }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                let child = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
                }
                if child == "." || child == ".." { continue }
                if FileStat.of(folder + "/" + child, followSymlinks: false)?.kind == .symlink {
                    throw Refusal(path: folder + "/" + child, problem: .symlink)
                }
            }
        }
    }

    /// Throws when `path` exists and is not a regular file (a link, a
    /// folder, a FIFO or a device).
    package static func checkFile(_ path: String) throws(Refusal) {
        guard let st = FileStat.of(path, followSymlinks: false) else { return }
        switch st.kind {
        case .file: return
        case .symlink: throw Refusal(path: path, problem: .symlink)
        default: throw Refusal(path: path, problem: .notFile)
        }
    }

    /// The first declared output that is the state folder `directory`,
    /// holds it or lies inside it (compared as absolute, standardized
    /// paths): `.planrun` is refused by validation, a `--state-dir` inside
    /// the plan's folder only here.
    package static func outputOverlapping(_ directory: String, in plan: Plan) -> (subtask: String, output: String)? {
        let state = standardized(directory)
        for subtask in plan.subtasks {
            for output in subtask.outputs {
                let path = standardized(plan.directory + "/" + output)
                if path == state || state.hasPrefix(path + "/") || path.hasPrefix(state + "/") {
                    return (subtask.id, output)
                }
            }
        }
        return nil
    }

    private static func standardized(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": _ = parts.popLast()
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }
}

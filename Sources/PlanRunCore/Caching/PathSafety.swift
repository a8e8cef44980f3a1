import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Checks that keep restored paths inside the plan's folder.
package enum PathSafety {
    /// `a/./b/` -> `a/b`.
    package static func normalized(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }.joined(separator: "/")
    }

    /// Relative, no `..`, not empty, no NUL.
    package static func isSafeRelative(_ path: String) -> Bool {
        guard !path.hasPrefix("/"), !path.contains("\0") else { return false }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        return !parts.isEmpty && !parts.contains("..")
    }

    /// The absolute destination of plan-relative `path`, after creating its
    /// parent folders. Throws `pathEscapes` when the path is unsafe or a
    /// parent is (or links to) something outside `root`. `realRoot` is
    /// `realPath(root)` when the caller already has it (resolved once per
    /// build: the plan's folder itself is the user's, what is below it is
    /// checked here every time).
    package static func prepareDestination(_ path: String, root: String, realRoot known: String? = nil) throws(CacheError) -> String {
        guard isSafeRelative(path) else { throw .pathEscapes(path: path) }
        guard let realRoot = known ?? realPath(root) else { throw .missingFile(path: root) }
        let parts = normalized(path).split(separator: "/").map(String.init)
        var current = realRoot
        for part in parts.dropLast() {
            let next = current + "/" + part
            switch FileStat.of(next, followSymlinks: false)?.kind {
            case nil:
                if mkdir(next, 0o755) != 0 && errno != EEXIST {
                    throw .storeWrite(reason: "cannot create folder `\(next)`: \(LocalCacheStore.errnoText())")
                }
                current = next
            case .directory:
                current = next
            case .symlink:
                guard let resolved = realPath(next), resolved == realRoot || resolved.hasPrefix(realRoot + "/"),
                      FileStat.of(resolved)?.kind == .directory
                else { throw .pathEscapes(path: path) }
                current = resolved
            default:
                throw .notAFile(path: next)
            }
        }
        return current + "/" + parts.last!
    }

    /// The absolute path of plan-relative `path` for removal: its parent
    /// folders must resolve inside `root` (the last component itself is not
    /// followed, so a symlink output is removed, not its target). nil when
    /// a parent does not exist.
    package static func existingPath(_ path: String, root: String) throws(CacheError) -> String? {
        guard isSafeRelative(path) else { throw .pathEscapes(path: path) }
        guard let realRoot = realPath(root) else { return nil }
        let parts = normalized(path).split(separator: "/").map(String.init)
        let parent = ([realRoot] + parts.dropLast()).joined(separator: "/")
        guard let realParent = realPath(parent) else { return nil }
        guard realParent == realRoot || realParent.hasPrefix(realRoot + "/") else { throw .pathEscapes(path: path) }
        return realParent + "/" + parts.last!
    }

    package static func realPath(_ path: String) -> String? {
        PlanLoader.realPath(path)
    }
}

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads outputs as they are on disk, inside the plan's folder: their kind,
/// digest and permission bits (`OutputEntry`), a folder's manifest, a
/// link's target text. Nothing is followed: a declared output that is a
/// link is a `symlink` output, and so is a link inside an output folder.
package struct OutputReader: Sendable {
    /// The plan's folder; output paths are relative to it.
    package let root: String
    package let digester: FileDigester

    package init(root: String, digester: FileDigester) {
        self.root = root
        self.digester = digester
    }

    package func absolute(_ relative: String) -> String {
        root.hasSuffix("/") ? root + relative : root + "/" + relative
    }

    /// The output at plan-relative `path` as it is now; nil when absent.
    /// The declared path itself is not followed: a link is a `symlink`
    /// output (its target text), never what it points to .
    /// Every stat it takes is noted in `log`.
    package func snapshot(_ path: String, log: StatLog? = nil) throws(CacheError) -> OutputEntry? {
        let full = absolute(path)
        guard let st = FileStat.of(full, followSymlinks: false, log: log) else { return nil }
        switch st.kind {
        case .file:
            return OutputEntry(
                path: path, kind: .file, digest: try digester.digest(ofFile: full, stat: st, log: log), executable: st.isExecutable,
                mode: Int(st.mode & 0o777))
        case .directory:
            let manifest = try folderManifest(full, log: log)
            return OutputEntry(path: path, kind: .folder, digest: Digest.sha256Hex(manifest.bytes))
        case .symlink:
            let target = try OutputReader.linkTarget(full)
            return OutputEntry(path: path, kind: .symlink, digest: Digest.sha256Hex(Array(target.utf8)))
        case .other:
            throw .notAFile(path: path)
        }
    }

    /// The target text of the link at `path`. A target that is not UTF-8
    /// is an error: it could not be stored as it is (entries are JSON).
    package static func linkTarget(_ path: String) throws(CacheError) -> String {
        var size = 1024
        while true {
            var buffer = [UInt8](repeating: 0, count: size)
            let n = buffer.withUnsafeMutableBufferPointer { readlink(path, $0.baseAddress!, size) }
            if n < 0 { throw .unreadable(path: path, reason: LocalCacheStore.errnoText()) }
            if n < size {
                guard let text = String(validating: buffer[0..<n], as: UTF8.self) else {
                    throw .unreadable(path: path, reason: "its link target is not UTF-8 text")
                }
                return text
            }
            size *= 2
        }
    }

    /// A folder's manifest: its files with their digests and permission
    /// bits, and its links with their target text. Nothing is followed:
    /// a link to a folder is a link, not the folder's files. A FIFO,
    /// socket or device in it is an error (`notAFile`).
    package func folderManifest(_ folder: String, log: StatLog? = nil) throws(CacheError) -> FolderManifest {
        var files: [FolderManifest.File] = []
        try collect(folder, rel: "", into: &files, log: log)
        return FolderManifest(files: files)
    }

    private func collect(_ dir: String, rel: String, into files: inout [FolderManifest.File], log: StatLog?) throws(CacheError) {
        for name in InputGlob.Walker.entries(of: dir) {
            let path = dir + "/" + name
            let childRel = rel.isEmpty ? name : rel + "/" + name
            guard let child = FileStat.of(path, followSymlinks: false, log: log) else { continue }
            switch child.kind {
            case .file:
                files.append(.init(
                    path: childRel, digest: try digester.digest(ofFile: path, stat: child, log: log), executable: child.isExecutable,
                    mode: Int(child.mode & 0o777)))
            case .directory:
                try collect(path, rel: childRel, into: &files, log: log)
            case .symlink:
                let target = try OutputReader.linkTarget(path)
                files.append(.init(path: childRel, digest: Digest.sha256Hex(Array(target.utf8)), executable: false, link: target))
            case .other:
                // A FIFO, socket or device cannot be stored as it is; leaving
                // it out would restore a different folder.
                throw .notAFile(path: path)
            }
        }
    }

    /// Whether the outputs are as `recorded`; the stats it takes are noted
    /// in `log`.
    package func intact(_ recorded: [OutputEntry], log: StatLog?) -> Bool {
        for entry in recorded {
            guard let now = try? snapshot(entry.path, log: log), entry.matches(now) else { return false }
        }
        return true
    }
}

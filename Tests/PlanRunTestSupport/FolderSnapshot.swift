import Foundation
import PlanRunCore

/// Relative path -> SHA-256 of content ("folder" for folders) of everything
/// below `root`: two equal snapshots mean the tree is byte-identical (what
/// the read-only commands promise).
package func snapshotFolder(_ root: String) throws -> [String: String] {
    var out: [String: String] = [:]
    let enumerator = FileManager.default.enumerator(atPath: root)
    while let rel = enumerator?.nextObject() as? String {
        let full = root + "/" + rel
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: full, isDirectory: &isDir), !isDir.boolValue {
            out[rel] = Digest.sha256Hex(Array(FileManager.default.contents(atPath: full) ?? Data()))
        } else {
            out[rel] = "folder"
        }
    }
    return out
}

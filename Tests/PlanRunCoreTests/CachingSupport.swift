import Foundation
@testable import PlanRunCore

/// A fresh temporary folder for one test; removed when the value is dropped.
final class CachingTempDir: Sendable {
    let path: String

    init() {
        let base = FileManager.default.temporaryDirectory.path
        path = PathSafety.realPath(base)! + "/planrun-cache-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func url(_ rel: String) -> String { path + "/" + rel }

    func write(_ rel: String, _ text: String) {
        let full = url(rel)
        try! FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try! Data(text.utf8).write(to: URL(fileURLWithPath: full))
    }

    func read(_ rel: String) -> String? {
        FileManager.default.contents(atPath: url(rel)).map { String(decoding: $0, as: UTF8.self) }
    }

    func exists(_ rel: String) -> Bool { FileManager.default.fileExists(atPath: url(rel)) }

    func remove(_ rel: String) { try? FileManager.default.removeItem(atPath: url(rel)) }

    /// Sets a file's mtime (and so its ctime to now) `seconds` in the past.
    func age(_ rel: String, seconds: Double = 100) {
        let date = Date().addingTimeInterval(-seconds)
        try! FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: url(rel))
    }
}

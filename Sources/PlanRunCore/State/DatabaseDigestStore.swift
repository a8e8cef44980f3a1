import Foundation
import GRDB

/// A `DigestStore` whose records were read ahead (`CacheState.load`);
/// saves go to `base`.
package struct LoadedDigestStore: DigestStore {
    let records: [String: FileDigestRecord]
    let base: any DigestStore

    package func loadAll() throws -> [String: FileDigestRecord] { records }

    package func save(_ records: [FileDigestRecord], removing removed: [String]) throws {
        try base.save(records, removing: removed)
    }
}

/// `DigestStore` over the state database's `file_digests` table.
package struct DatabaseDigestStore: DigestStore {
    private let reader: any DatabaseReader
    private let writer: (any DatabaseWriter)?

    package init(reader: any DatabaseReader, writer: (any DatabaseWriter)?) {
        self.reader = reader
        self.writer = writer
    }

    package func loadAll() throws -> [String: FileDigestRecord] {
        try reader.read { db in
            var all: [String: FileDigestRecord] = [:]
            all.reserveCapacity(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM file_digests") ?? 0)
            let rows = try Row.fetchCursor(db, sql: "SELECT path, size, mtime_ns, inode, ctime_ns, digest FROM file_digests")
            while let row = try rows.next() {
                // Columns by index (as selected): no name lookups per row.
                guard let path = row[0] as String?, let size = row[1] as Int64?,
                      let mtime = row[2] as Int64?, let inode = row[3] as Int64?,
                      let ctime = row[4] as Int64?, let digest = row[5] as String?
                else { continue }
                all[path] = FileDigestRecord(
                    path: path, size: size, mtimeNs: mtime, inode: UInt64(bitPattern: inode), ctimeNs: ctime, digest: digest)
            }
            return all
        }
    }

    package func save(_ records: [FileDigestRecord], removing removed: [String]) throws {
        guard let writer else { return }
        try writer.write { db in
            let delete = try db.makeStatement(sql: "DELETE FROM file_digests WHERE path = ?")
            for path in removed { try delete.execute(arguments: [path]) }
            let insert = try db.makeStatement(sql: """
                INSERT OR REPLACE INTO file_digests (path, size, mtime_ns, inode, ctime_ns, digest)
                VALUES (?, ?, ?, ?, ?, ?)
                """)
            for r in records {
                try insert.execute(arguments: [r.path, r.size, r.mtimeNs, Int64(bitPattern: r.inode), r.ctimeNs, r.digest])
            }
        }
    }
}

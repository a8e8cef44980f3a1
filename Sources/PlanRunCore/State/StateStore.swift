import Foundation
import GRDB
import Synchronization

/// The plan repository: an SQLite database (`state.db` in the
/// state folder, WAL mode) holding runs, each run's subtasks, every attempt,
/// and the tables caching uses (`subtask_state`, `file_digests`).
///
/// Schema (created by `migrator`, `StateStore+Schema.swift`):
/// - `runs(seq, id UNIQUE, plan, plan_file, status, reason, pid, started_at,
///   completed_at, total, cancel_request)`: `status` is `in_progress`,
///   `completed`, `failed` or `cancelled`; `cancel_request` is the reason
///   `planrun cancel` left for the running build.
/// - `run_subtasks(run_id, subtask_id, position, agent, status, attempts,
///   started_at, completed_at, error, result, result_digest, cache_key,
///   reason)`: one row per selected subtask, updated as it progresses.
///   A view over `run_rows`, `names` and `outcomes` (`v4-compact-runs`
///   says how they are stored); writes go to those tables.
/// - `attempts(run_id, subtask_id, attempt, status, started_at,
///   completed_at, exit_code, error, result, result_digest, cache_key)`:
///   a view over `run_attempts`, likewise.
/// - `subtask_state(subtask_id PK, cache_key, result_digest, result,
///   outputs, updated_at)`: last successful state per subtask
///   (`DatabaseSubtaskHistory`; the `outputs` column is `HistoryColumn`).
/// - `file_digests(path PK, size, mtime_ns, inode, ctime_ns, digest)`: the
///   stat cache (`DatabaseDigestStore`).
/// - `subtask_durations(subtask_id PK, seconds, completed_at)` (`v2-durations`):
///   each subtask's latest successful attempt, for critical-path
///   scheduling; a run's attempts are copied in when it ends (`finishRun`,
///   or `closeStaleRuns` for a killed one).
///
/// Times are seconds since 1970 (REAL). Writes happen one event at a time
/// from the executor's loop, so a reader in another process always sees a
/// consistent state, and a run killed mid-way leaves rows the next build
/// closes (`closeStaleRuns`).
package final class StateStore: Sendable {
    /// The database. The cache's tables are read and written by the
    /// State types made from it (`DatabaseSubtaskHistory`,
    /// `DatabaseDigestStore`); no code outside State/ runs SQL.
    package let database: DatabaseQueue
    package let path: String
    /// Ids of runs and names for the compact tables (writes only).
    let refs = StateRefs()

    /// Opens (creating if needed) the database at `directory/state.db`.
    /// SQLite opens it (and its `-wal` and `-shm`) by path, so the state
    /// folder's entries are checked first (`StateFolder`): a link there is
    /// refused, never followed.
    package init(directory: String) throws {
        try StateFolder.check(directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = (directory as NSString).appendingPathComponent("state.db")
        var config = Configuration()
        config.journalMode = .wal
        config.busyMode = .timeout(10)
        config.qos = Self.writerQoS
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // Takes effect only on a new, empty database (before the
            // migrator creates the tables); an older one is converted once
            // by `giveBackSpace`.
            try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
            try Self.keepLogAtClose(db)
        }
        database = try DatabaseQueue(path: path, configuration: config)
        try Self.verify(database, path: path)
        try Self.migrator.migrate(database)
    }

    /// The QoS of the database's queue, which runs the background commits
    /// (`flushInBackground`, `DatabaseSubtaskHistory.commitQueued`).
    /// GRDB's default, `.userInitiated`, runs them on Linux at nice -2,
    /// above the executor loop's thread (nice 0), so a commit could delay
    /// the next spawn; `.utility` is nice 2. Not `.background` (10):
    /// `status` reads these commits while the build runs, and on a busy
    /// machine they would wait for every other process.
    static let writerQoS = DispatchQoS.utility

    /// Opens an existing database read-only; nil when there is none.
    /// Creates and changes no file (see `openReadOnly`).
    package init?(readingDirectory directory: String) throws {
        path = (directory as NSString).appendingPathComponent("state.db")
        guard let database = try Self.openReadOnly(directory: directory, requiredTable: "runs") else { return nil }
        self.database = database
    }

    /// Opens `state.db` for reading without creating or changing any file;
    /// nil when there is no database or it lacks `requiredTable`.
    ///
    /// SQLite creates `-wal` and `-shm` files even for a read-only
    /// connection to a WAL database. When no build holds the lock and there
    /// is no `-wal` file with frames (the database was closed cleanly: the
    /// writer leaves an empty one, `keepLogAtClose`), nothing can change
    /// it and every commit is in the main file, so it is opened
    /// `immutable` (SQLite then reads neither `-wal` nor `-shm`) and no
    /// file is created or changed. While
    /// a build runs those files exist already, and a normal read-only
    /// connection sees its latest commits.
    package static func openReadOnly(directory: String, requiredTable: String) throws -> DatabaseQueue? {
        let path = (directory as NSString).appendingPathComponent("state.db")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            // A link to nothing is refused too, not taken for "no state yet".
            try StateFolder.checkFile(path)
            return nil
        }
        try StateFolder.check(directory)
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(10)
        let quiet = hasNoLog(path) && BuildLock.holder(directory: directory) == nil
        let database: DatabaseQueue
        if quiet, let escaped = path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) {
            database = try DatabaseQueue(path: "file:" + escaped + "?immutable=1", configuration: config)
        } else {
            database = try DatabaseQueue(path: path, configuration: config)
        }
        let ready = try database.read { db in try db.tableExists(requiredTable) }
        guard ready else { return nil }
        try verify(database, path: path)
        return database
    }

    /// Throws `StateDamage` unless SQLite's `quick_check` finds the
    /// database sound. Every command that opens the state checks it, so
    /// all of them refuse a damaged database alike, whichever pages they
    /// would read. The check reads every page once, so it is skipped for a file that is exactly as planrun closed it in order
    /// (`isUnchangedSinceCleanClose`). A database opened for writing and
    /// found sound is recorded so when the process exits in order.
    static func verify(_ database: some DatabaseReader, path: String) throws {
        try verify(database, path: path, trustingCleanClose: true)
    }

    /// As above; `trustingCleanClose: false` always runs the check.
    static func verify(_ database: some DatabaseReader, path: String, trustingCleanClose: Bool) throws {
        if !(trustingCleanClose && isUnchangedSinceCleanClose(path)) {
            let problems: [String]
            do {
                problems = try database.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CORRUPT || error.resultCode == .SQLITE_NOTADB {
                // A page the check cannot even walk (the schema's, a root).
                throw StateDamage(path: path, detail: error.message ?? "\(error)")
            }
            if problems != ["ok"] { throw StateDamage(path: path, detail: problems.prefix(3).joined(separator: "; ")) }
        }
        if !database.configuration.readonly { recordCleanCloseAtExit(path) }
    }

    /// Why the database in `directory` cannot be trusted, when it is
    /// damaged: it cannot be opened as a database, or SQLite's
    /// `quick_check` finds a problem. nil when it is sound or absent.
    /// Commands call it when the state failed them, so that `build`,
    /// `plan` and `status` all say the same about a damaged database.
    /// Creates and changes no file.
    package static func damage(directory: String) -> String? {
        let path = (directory as NSString).appendingPathComponent("state.db")
        guard FileStat.of(path)?.kind == .file else { return nil }
        do {
            guard let database = try openReadOnly(directory: directory, requiredTable: "runs") else {
                return "it has no `runs` table"
            }
            try verify(database, path: path, trustingCleanClose: false)
            return nil
        } catch let damage as StateDamage {
            return damage.detail
        } catch let error as DatabaseError {
            return error.message ?? "\(error)"
        } catch {
            return "\(error)"
        }
    }

    /// The start of an attempt, queued: a finish of the same attempt and
    /// then of its subtask in the same batch fold it in (its `attempts` row
    /// is replaced by the finished one, its `run_subtasks` update by the
    /// final one), so a short subtask costs two statements, not four.
    struct PendingStart: Sendable {
        var runID: String
        var subtask: String
        var attempt: Int
        var time: Double
        var reason: String?
        /// A queued `attemptFinished` writes this attempt's whole row.
        var attemptRowReplaced = false
    }

    /// A `run_subtasks` row `beginRun` queued: a subtask that finishes
    /// without running (cached) before it is written fills it in, so the
    /// row is inserted once with its final values instead of inserted and
    /// then updated (a rebuild that skips most subtasks).
    struct RunRow: Sendable {
        var subtask: String
        var position: Int
        var agent: String
        var status = "pending"
        var attempts = 0
        var startedAt: Double?
        var completedAt: Double?
        var error: String?
        var result: Data?
        var resultDigest: String?
        var cacheKey: String?
        var reason: String?
    }

    private enum PendingWrite: Sendable {
        case body(@Sendable (Database) throws -> Void)
        case start(PendingStart)
        case runRows(runID: String, [RunRow])
        case folded
    }

    private struct Pending: Sendable {
        var writes: [PendingWrite] = []
        /// Index in `writes` of each subtask's queued start.
        var starts: [String: Int] = [:]
        /// The queued `runRows` (index in `writes`, run id) and each
        /// subtask's place in it.
        var runRows: (write: Int, runID: String, index: [String: Int])?
    }

    private let pending = Mutex<Pending?>(nil)

    /// While deferring, event writes queue up and `flush` commits them in one
    /// transaction. The executor's loop flushes at most every 100 ms while
    /// subtasks run (and at once when nothing runs), so rows appear within
    /// a fraction of a second without one transaction per event.
    package func deferWrites() {
        pending.withLock { if $0 == nil { $0 = Pending() } }
    }

    /// Whether writes are queued for the next `flush`.
    package var hasPendingWrites: Bool {
        pending.withLock { !($0?.writes.isEmpty ?? true) }
    }

    /// Commits the queued writes (in order, one transaction), after any
    /// background commit (`flushInBackground`); throws the first of those
    /// that failed.
    package func flush() throws {
        let items = takePending()
        if items.isEmpty {
            database.writeWithoutTransaction { _ in }  // waits for background commits
        } else {
            try transaction { db in try Self.apply(items, db, self.refs) }
        }
        if let failure = backgroundFailure.withLock({ f -> String? in defer { f = nil }; return f }) {
            throw BackgroundFailure(description: failure)
        }
    }

    /// Commits the queued writes (in order, one transaction) on the
    /// database's queue while the caller goes on: the executor's loop
    /// flushes this way while subtasks run, so it never waits for a commit,
    /// nor for a checkpoint SQLite runs on it (two `fdatasync`, tens of
    /// milliseconds). A later `flush` commits after it (one serial queue).
    /// A failed background commit is kept and thrown by the next `flush`.
    package func flushInBackground() {
        let items = takePending()
        guard !items.isEmpty else { return }
        database.asyncWrite({ [refs] db in try Self.apply(items, db, refs) }, completion: { [self] _, result in
            if case .failure(let error) = result {
                refs.forget()
                backgroundFailure.withLock { if $0 == nil { $0 = error.localizedDescription } }
            }
        })
    }

    /// Why a background commit failed, if one did (`flush` throws it too).
    package var backgroundWriteFailure: String? { backgroundFailure.withLock { $0 } }

    private struct BackgroundFailure: Error, CustomStringConvertible {
        var description: String
    }

    private let backgroundFailure = Mutex<String?>(nil)

    /// The queued writes, leaving the queue empty (and still deferring).
    private func takePending() -> [PendingWrite] {
        pending.withLock { queue -> [PendingWrite] in
            guard queue != nil else { return [] }
            let items = queue!.writes
            queue = Pending()
            return items
        }
    }

    private static func apply(_ items: [PendingWrite], _ db: Database, _ refs: StateRefs) throws {
        for item in items {
            switch item {
            case .body(let body): try body(db)
            case .start(let start): try writeStart(db, start, refs)
            case .runRows(let runID, let rows): try insertRunRows(db, runID: runID, rows, refs)
            case .folded: break
            }
        }
    }

    /// A transaction; after a failure the ids it may have added are
    /// forgotten (`StateRefs`).
    func transaction<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try database.write(body)
        } catch {
            refs.forget()
            throw error
        }
    }

    /// Changes the queue with `change` while writes are deferred; false
    /// (nothing done) when they are not, and the caller writes at once.
    private func enqueue(_ change: (inout Pending) -> Void) -> Bool {
        pending.withLock { queue -> Bool in
            guard queue != nil else { return false }
            change(&queue!)
            return true
        }
    }

    private func perform(_ body: @escaping @Sendable (Database) throws -> Void) throws {
        if !enqueue({ $0.writes.append(.body(body)) }) { try transaction(body) }
    }

    // MARK: Runs

    /// Closes runs left `in_progress` by a build that no longer holds the
    /// lock (killed with SIGKILL, power cut): the run becomes `failed` with
    /// reason `interrupted`, and its unfinished subtasks `cancelled`.
    /// Call only while holding the `BuildLock`. Returns the closed run ids.
    @discardableResult
    package func closeStaleRuns(now: Date = Date()) throws -> [String] {
        try transaction { db in
            let rows = try Row.fetchAll(db, sql: "SELECT id, pid FROM runs WHERE status = 'in_progress'")
            var closed: [String] = []
            for row in rows {
                let id: String = row["id"]
                try Self.writeInterrupted(db, refs, runID: id, pid: row["pid"], at: now.timeIntervalSince1970)
                try Self.recordDurations(db, refs, runID: id)
                closed.append(id)
            }
            return closed
        }
    }

    /// Forgets old runs: when more than `keeping + slack` are recorded,
    /// deletes every finished run but the newest `keeping` (their subtask
    /// rows and attempts go with them). Returns the deleted run ids, for
    /// their log folders. Pruning in batches of `slack` keeps it off most
    /// builds; the state database otherwise grows by a row per selected
    /// subtask per build, forever. The freed space goes back to the file
    /// system (`giveBackSpace`).
    package func pruneRuns(keeping: Int, slack: Int) throws -> [String] {
        let pruned = try transaction { db -> [String] in
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM runs") ?? 0
            guard total > keeping + slack else { return [] }
            let old = try String.fetchAll(db, sql: """
                SELECT id FROM runs WHERE id NOT IN
                    (SELECT id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?)
                AND status != 'in_progress'
                """, arguments: [keeping])
            let delete = try db.makeStatement(sql: "DELETE FROM runs WHERE id = ?")
            for id in old { try delete.execute(arguments: [id]) }
            if !old.isEmpty { try StateRefs.deleteUnused(db) }
            return old
        }
        refs.forget()
        try giveBackSpace()
        return pruned
    }

    /// Returns the free pages of the database to the file system, so the
    /// file shrinks after pruning instead of staying at the size of its
    /// largest history. A database created without incremental auto-vacuum
    /// (before planrun set it) is rewritten once with it (`VACUUM`, which
    /// needs no other connection to be using the database: call only under
    /// the build lock).
    package func giveBackSpace() throws {
        try database.writeWithoutTransaction { db in
            if try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") != 2 {
                try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
                try db.execute(sql: "VACUUM")
            } else if try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0 > 0 {
                try db.execute(sql: "PRAGMA incremental_vacuum")
            }
        }
    }

    /// Records a new run and its selected subtasks as `pending`. The run's
    /// row is written at once (a killed build's run is found and closed by
    /// the next one); while writes are deferred, the subtasks' rows are
    /// queued with the rest (thousands of rows need not hold up the first
    /// subtask), and `latestRun` counts the ones not written yet as pending.
    package func beginRun(
        id: String, plan: String, planFile: String, pid: Int32, startedAt: Date,
        subtasks: [(id: String, position: Int, agent: String)]
    ) throws {
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO runs (id, plan, plan_file, status, pid, started_at, total)
                VALUES (?, ?, ?, 'in_progress', ?, ?, ?)
                """, arguments: [id, plan, planFile, Int(pid), startedAt.timeIntervalSince1970, subtasks.count])
        }
        let rows = subtasks.map { RunRow(subtask: $0.id, position: $0.position, agent: $0.agent) }
        let queued = enqueue { queue in
            var index: [String: Int] = [:]
            index.reserveCapacity(rows.count)
            for (i, row) in rows.enumerated() { index[row.subtask] = i }
            queue.runRows = (queue.writes.count, id, index)
            queue.writes.append(.runRows(runID: id, rows))
        }
        if !queued { try transaction { db in try Self.insertRunRows(db, runID: id, rows, refs) } }
    }

    /// One attempt of a subtask starts (the subtask becomes `running`).
    package func attemptStarted(runID: String, subtask: String, attempt: Int, at time: Date, reason: String?) throws {
        let start = PendingStart(runID: runID, subtask: subtask, attempt: attempt, time: time.timeIntervalSince1970,
                                 reason: reason)
        let queued = enqueue { queue in
            queue.starts[subtask] = queue.writes.count
            queue.writes.append(.start(start))
        }
        if !queued { try transaction { db in try Self.writeStart(db, start, refs) } }
    }

    /// One attempt ends. `status` is `done`, `failed`, `timed_out` or `cancelled`.
    package func attemptFinished(
        runID: String, subtask: String, attempt: Int, status: String, startedAt: Date,
        completedAt: Date, exitCode: Int?, error: String?, result: [UInt8]?,
        resultDigest: String?, cacheKey: String?
    ) throws {
        let refs = refs
        let body: @Sendable (Database) throws -> Void = { db in
            try Self.writeAttempt(
                db, refs, runID: runID, subtask: subtask, attempt: attempt, status: status,
                startedAt: startedAt.timeIntervalSince1970, completedAt: completedAt.timeIntervalSince1970,
                exitCode: exitCode, error: error, result: result.map { Data($0) }, resultDigest: resultDigest,
                cacheKey: cacheKey)
        }
        let queued = enqueue { queue in
            // This row replaces the queued start's `attempts` row.
            if let i = queue.starts[subtask], case .start(var start) = queue.writes[i],
               start.runID == runID, start.attempt == attempt {
                start.attemptRowReplaced = true
                queue.writes[i] = .start(start)
            }
            queue.writes.append(.body(body))
        }
        if !queued { try transaction(body) }
    }

    /// A subtask reaches its final status for this run.
    package func subtaskFinished(
        runID: String, subtask: String, status: String, attempts: Int, startedAt: Date?,
        completedAt: Date, error: String?, result: [UInt8]?, resultDigest: String?,
        cacheKey: String?, reason: String?
    ) throws {
        let refs = refs
        func body(reason: String?, startedAt: Double?) -> @Sendable (Database) throws -> Void {
            { db in
                try Self.writeFinish(
                    db, refs, runID: runID, subtask: subtask, status: status, attempts: attempts, startedAt: startedAt,
                    completedAt: completedAt.timeIntervalSince1970, error: error, result: result.map { Data($0) },
                    resultDigest: resultDigest, cacheKey: cacheKey, reason: reason)
            }
        }
        let queued = enqueue { queue in
            // Not started, its row not written yet: fill the row in.
            if queue.starts[subtask] == nil, let rows = queue.runRows, rows.runID == runID,
               let i = rows.index[subtask], case .runRows(_, var list) = queue.writes[rows.write] {
                queue.writes[rows.write] = .folded  // no second reference while the row changes
                list[i].status = status
                list[i].attempts = attempts
                list[i].startedAt = list[i].startedAt ?? startedAt?.timeIntervalSince1970
                list[i].completedAt = completedAt.timeIntervalSince1970
                list[i].error = error
                list[i].result = result.map { Data($0) }
                list[i].resultDigest = resultDigest
                list[i].cacheKey = cacheKey
                list[i].reason = reason ?? list[i].reason
                queue.writes[rows.write] = .runRows(runID: runID, list)
                return
            }
            var reason = reason
            var startedAt = startedAt?.timeIntervalSince1970
            // A queued start whose attempt row is already replaced: this
            // update does what its `run_subtasks` update would have done.
            if let i = queue.starts.removeValue(forKey: subtask), case .start(let start) = queue.writes[i],
               start.runID == runID, start.attemptRowReplaced {
                queue.writes[i] = .folded
                reason = reason ?? start.reason
                startedAt = startedAt ?? start.time
            }
            queue.writes.append(.body(body(reason: reason, startedAt: startedAt)))
        }
        if !queued { try transaction(body(reason: reason, startedAt: startedAt?.timeIntervalSince1970)) }
    }

    /// Marks several subtasks at once (blocked or cancelled), with one message each.
    package func subtasksEnded(runID: String, _ entries: [(id: String, status: String, error: String?)], at time: Date) throws {
        guard !entries.isEmpty else { return }
        let refs = refs
        try perform { db in try Self.writeEnded(db, refs, runID: runID, entries, at: time.timeIntervalSince1970) }
    }

    /// The run ends with `status` (`completed`, `failed`, `cancelled`).
    package func finishRun(id: String, status: String, reason: String?, at time: Date) throws {
        let refs = refs
        try perform { db in
            try db.execute(sql: "UPDATE runs SET status = ?, reason = ?, completed_at = ? WHERE id = ?",
                           arguments: [status, reason, time.timeIntervalSince1970, id])
            try Self.recordDurations(db, refs, runID: id)
        }
    }

    /// How long each subtask's most recent successful attempt took, in
    /// seconds (for critical-path scheduling).
    package func lastDurations() throws -> [String: Double] {
        try database.read { db in
            var out: [String: Double] = [:]
            let rows = try Row.fetchAll(db, sql: "SELECT subtask_id, seconds FROM subtask_durations")
            for row in rows {
                if let d = row["seconds"] as Double? { out[row["subtask_id"]] = max(0, d) }
            }
            return out
        }
    }

    /// Leaves a cancellation reason for the running build (`planrun cancel`).
    /// Returns false when no run is in progress.
    package func requestCancel(reason: String) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "UPDATE runs SET cancel_request = ? WHERE status = 'in_progress'", arguments: [reason])
            return db.changesCount > 0
        }
    }

    /// The reason `planrun cancel` left for run `id`, if any.
    package func cancelRequest(runID: String) throws -> String? {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT cancel_request FROM runs WHERE id = ?", arguments: [runID])
        }
    }
}

/// The state database is damaged: it cannot be trusted, and `planrun clean
/// --state` is the way out.
package struct StateDamage: Error, Sendable, CustomStringConvertible {
    package var path: String
    package var detail: String
    package var description: String { "the state database `\(path)` is damaged (\(detail))" }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// Makes sure no process group of a build's subtasks outlives the build,
/// however planrun dies, even by SIGKILL (see docs/DESIGN.md, Threads).
/// Two records:
///
/// - a watchdog process (the planrun binary started again with
///   `watchdogArgument`, `watchdogExecutable` in the configuration), over a
///   pipe: `+PGID` when a subtask starts, `-PGID` once planrun is done with
///   its group. When the pipe closes (planrun exited, even by SIGKILL) the
///   watchdog sends SIGTERM to every group still recorded and SIGKILL to
///   those left after `watchdogGrace`. It only signals recorded groups:
///   planrun removes a group only after its leader is reaped and the rest
///   of the group is gone or killed, so a recorded number is never a
///   process planrun did not start (a group id cannot be reused while any
///   member lives). The watchdog reads its pipe every
///   `watchdogReadInterval` rather than on every line, so that a build of
///   many short subtasks does not wake it twice per subtask; the lines
///   wait in the pipe meanwhile (a write never waits for it unless a whole
///   pipe buffer of lines came in one interval).
/// - the `processes` file in the state folder: the build's run id, written
///   once before any subtask starts, and the file removed when the build
///   ends in order. The next build finds it when the build died with its
///   watchdog (both killed at once) and kills, before it starts anything,
///   every group with a live member whose environment names that run
///   (`PLANRUN_RUN_ID`), which also guards against a number reused by an
///   unrelated process. (Lines of the older form `RUN_ID PGID` are read
///   alike: only the run id counts.)
///
/// The build starts the watchdog before it decides anything (`start`), so
/// that the watchdog has loaded and reads its pipe by the time the first
/// subtask runs, even on a loaded machine where starting a process takes
/// a good part of a second. Each subtask costs two small pipe writes.
package final class OrphanGuard: Sendable {
    /// The hidden first argument that makes the planrun binary a watchdog.
    package static let watchdogArgument = "__planrun-watchdog"
    /// Time the watchdog leaves between SIGTERM and SIGKILL: short, so
    /// that every process of a dead build is gone within a second.
    package static let watchdogGrace: Duration = .milliseconds(500)
    /// How long the watchdog leaves between two reads of its pipe: it
    /// notices planrun's end at most this much later.
    package static let watchdogReadInterval: Duration = .milliseconds(50)
    /// The file of runs that may have left processes, in the state folder.
    package static let fileName = "processes"

    private let runID: String
    private let recordPath: String?
    private let watchdogExecutable: String?

    private struct Channels {
        var started = false
        var watchdog: Int32 = -1
        var record: Int32 = -1
        var watchdogPID: pid_t = 0
    }
    private let channels = Mutex(Channels())

    /// `stateDirectory`: where the `processes` file goes (nil: none).
    /// `watchdogExecutable`: the planrun binary to start as the watchdog
    /// (nil: no watchdog, as in tests that run inside another process).
    package init(runID: String, stateDirectory: String?, watchdogExecutable: String?) {
        self.runID = runID
        recordPath = stateDirectory.map { ($0 as NSString).appendingPathComponent(Self.fileName) }
        self.watchdogExecutable = watchdogExecutable
    }

    /// Starts the watchdog and opens the record now rather than with the
    /// first subtask.
    package func start() {
        channels.withLock { c in if !c.started { start(&c) } }
    }

    /// The subtask with process group `pgid` started.
    func added(_ pgid: pid_t) {
        channels.withLock { c in
            if !c.started { start(&c) }
            if c.watchdog >= 0 { Self.writeLine(c.watchdog, "+\(pgid)\n") }
        }
    }

    /// planrun is done with process group `pgid`: its leader is reaped and
    /// the rest of it is gone or killed.
    func removed(_ pgid: pid_t) {
        channels.withLock { c in
            if c.watchdog >= 0 { Self.writeLine(c.watchdog, "-\(pgid)\n") }
        }
    }

    /// The build ended in order: every group is removed. Closes the pipe
    /// (the watchdog exits) and removes the `processes` file.
    package func finish() {
        let pid = channels.withLock { c -> pid_t in
            if c.watchdog >= 0 {
                Self.writeLine(c.watchdog, "bye\n")
                close(c.watchdog)
                c.watchdog = -1
            }
            if c.record >= 0 {
                close(c.record); c.record = -1
                if let recordPath { unlink(recordPath) }
            }
            defer { c.watchdogPID = 0 }
            return c.watchdogPID
        }
        // Reaped when it exits, so that no zombie stays behind in a long-lived
        // process (tests run many builds).
        if pid > 0 { Self.reapLater(pid) }
    }

    private func start(_ c: inout Channels) {
        c.started = true
        if let recordPath {
            c.record = open(recordPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o644)
            if c.record >= 0 { Self.writeLine(c.record, "\(runID)\n") }
        }
        if let watchdogExecutable, let (pid, fd) = Self.spawnWatchdog(watchdogExecutable, runID: runID) {
            c.watchdog = fd
            c.watchdogPID = pid
        }
    }

    private static func writeLine(_ fd: Int32, _ line: String) {
        var line = line
        line.withUTF8 { bytes in
            while write(fd, bytes.baseAddress, bytes.count) < 0 && errno == EINTR {}
        }
    }

    /// Starts `executable watchdogArgument GRACE_MS RUN_ID` with the read end of a
    /// new pipe as standard input, /dev/null as output, in its own process
    /// group (a terminal's Ctrl-C reaches planrun, which then ends in
    /// order); returns its pid and the pipe's write end.
    private static func spawnWatchdog(_ executable: String, runID: String) -> (pid_t, Int32)? {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return nil }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        // Room for the lines of a watchdog read interval at any spawn rate
        // (where the system allows it; the default holds thousands).
        _ = fcntl(fds[1], pipeSizeCommand, 1 << 20)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], STDIN_FILENO)
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0)
        ProcessSpawner.closeDescriptors(from: 3, in: &actions)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        ProcessSpawner.setChildAttributes(&attributes)
        let grace = String(watchdogGrace.inMilliseconds)
        let argv: [UnsafeMutablePointer<CChar>?] = [executable, watchdogArgument, grace, runID].map { $0.withCString { strdup($0) } } + [nil]
        defer { for arg in argv { free(arg) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        close(fds[0])
        guard rc == 0 else {
            close(fds[1])
            return nil
        }
        return (pid, fds[1])
    }

    /// `F_SETPIPE_SZ` (Linux; the Swift `Glibc` module does not declare it).
    private static let pipeSizeCommand: Int32 = 1031

    /// Waits for `pid` on a thread of its own (the watchdog exits soon
    /// after its pipe closes).
    private static func reapLater(_ pid: pid_t) {
        let thread = Thread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        thread.name = "planrun-watchdog-reaper"
        thread.start()
    }

    // MARK: The watchdog process

    /// The watchdog's main: reads `+PGID` and `-PGID` lines from standard
    /// input (what came in each `watchdogReadInterval`) until it closes,
    /// then stops every group still recorded
    /// (SIGTERM, and SIGKILL to those left after `grace`) and exits. When
    /// planrun died (no `bye` line), it also stops the groups of run
    /// `runID` it was not told about (planrun killed between a spawn and
    /// its `+PGID` line): see `ProcessGroupProbe.groups(ofRuns:)`.
    package static func runWatchdog(grace: Duration, runID: String?) -> Never {
        // A terminal's signals are for planrun, which ends in order.
        signal(SIGINT, SIG_IGN)
        signal(SIGHUP, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        var groups = Set<pid_t>()
        var orderly = false
        var buffer = [UInt8](repeating: 0, count: 4096)
        var line: [UInt8] = []
        reading: while true {
            let n = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break reading }
            for byte in buffer[0..<n] {
                if byte != UInt8(ascii: "\n") { line.append(byte); continue }
                if line.elementsEqual("bye".utf8) { orderly = true }
                if let first = line.first, let pgid = pid_t(String(decoding: line.dropFirst(), as: UTF8.self)), pgid > 1 {
                    if first == UInt8(ascii: "+") { groups.insert(pgid) }
                    if first == UInt8(ascii: "-") { groups.remove(pgid) }
                }
                line.removeAll(keepingCapacity: true)
            }
            // Lines come in bursts of two per subtask: one read per
            // interval instead of a wake-up per line.
            usleep(useconds_t(watchdogReadInterval.inMilliseconds * 1000))
        }
        if !orderly, let runID { groups.formUnion(ProcessGroupProbe.groups(ofRuns: [runID])) }
        stopGroups(Array(groups), grace: grace)
        exit(0)
    }

    /// SIGTERM to each group, then SIGKILL to those with a live member
    /// after `grace`.
    static func stopGroups(_ groups: [pid_t], grace: Duration) {
        guard !groups.isEmpty else { return }
        for pgid in groups { _ = kill(-pgid, SIGTERM) }
        let deadline = ContinuousClock.now + grace
        var left = groups
        while true {
            left = left.filter { ProcessGroupProbe.hasLiveMember($0) }
            if left.isEmpty { return }
            if ContinuousClock.now >= deadline { break }
            usleep(10_000)
        }
        for pgid in left { _ = kill(-pgid, SIGKILL) }
    }

    // MARK: The next build

    /// Kills what builds that did not end in order left running, then
    /// removes the `processes` file. Called under the build lock, before
    /// anything runs. The runs are those named in the `processes` file and
    /// `staleRuns` (runs the state has `in_progress`); a group is theirs
    /// when a live member has `PLANRUN_RUN_ID` of one of them in its
    /// environment (`ProcessGroupProbe.groups(ofRuns:)`), which guards
    /// against a recorded number reused by an unrelated process. Returns
    /// the groups it killed.
    @discardableResult
    package static func killLeftovers(stateDirectory: String, staleRuns: [String] = []) -> [pid_t] {
        let path = (stateDirectory as NSString).appendingPathComponent(fileName)
        var runs = Set(staleRuns)
        let bytes = ProcessGroupProbe.readFile(path, limit: 64 << 20, flags: O_NOFOLLOW)
        for line in bytes?.split(separator: UInt8(ascii: "\n")) ?? [] {
            if let runID = line.split(separator: UInt8(ascii: " ")).first { runs.insert(String(decoding: runID, as: UTF8.self)) }
        }
        guard !runs.isEmpty else { return [] }
        let leftovers = Array(ProcessGroupProbe.groups(ofRuns: runs)).sorted()
        for pgid in leftovers { _ = kill(-pgid, SIGKILL) }
        // SIGKILL takes effect at once, except for a process inside a
        // system call that cannot be interrupted: wait for those (at most
        // a second), so none writes while the build runs.
        let deadline = ContinuousClock.now + .seconds(1)
        var left = leftovers
        while !left.isEmpty, ContinuousClock.now < deadline {
            left = left.filter { ProcessGroupProbe.hasLiveMember($0) }
            if !left.isEmpty { usleep(10_000) }
        }
        if bytes != nil { unlink(path) }
        return leftovers
    }
}

/// Which processes are in a process group, without counting zombies
/// (`kill(-pgid, 0)` succeeds while a member waits to be reaped, for ever
/// in a container whose first process reaps nothing). Linux reads
/// `/proc`; elsewhere `kill(-pgid, 0)` is the answer.
package enum ProcessGroupProbe {
    /// Whether group `pgid` has a member that is not a zombie.
    package static func hasLiveMember(_ pgid: pid_t) -> Bool {
        guard kill(-pgid, 0) == 0 else { return false }
        #if os(Linux)
        return !(liveMembers(of: [pgid])[pgid] ?? []).isEmpty || !canList
        #else
        return true
        #endif
    }

    /// Whether `liveMembers` can list processes (Linux's `/proc`).
    package static let canList = access("/proc/self/stat", R_OK) == 0

    /// The members (not zombies) of each group in `groups`, from `/proc`.
    package static func liveMembers(of groups: Set<pid_t>) -> [pid_t: [pid_t]] {
        var out: [pid_t: [pid_t]] = [:]
        guard let dir = opendir("/proc") else { return out }
        defer { closedir(dir) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        while let entry = readdir(dir) {
            let pid = withUnsafeBytes(of: entry.pointee.d_name) { raw -> pid_t in
                var value: pid_t = 0
                for byte in raw {
                    if byte == 0 { break }
                    guard byte >= 0x30 && byte <= 0x39 else { return 0 }
                    value = value &* 10 &+ pid_t(byte - 0x30)
                }
                return value
            }
            guard pid > 0 else { continue }
            let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            close(fd)
            guard n > 0 else { continue }
            // "PID (COMM) STATE PPID PGRP ...": COMM may hold any byte, so
            // the fields start after the last ')'.
            let stat = buffer[0..<n]
            guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { continue }
            let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "), maxSplits: 4)
            guard fields.count >= 3, let state = fields[0].first,
                  let pgrp = pid_t(String(decoding: fields[2], as: UTF8.self)) else { continue }
            if state == UInt8(ascii: "Z") || state == UInt8(ascii: "X") { continue }
            if groups.contains(pgrp) { out[pgrp, default: []].append(pid) }
        }
        return out
    }

    /// The process groups of subtasks of `runs`: those of live processes
    /// with `PLANRUN_RUN_ID=RUN` (RUN in `runs`) in their environment,
    /// except groups that lead a session (a daemon a subtask started with
    /// `setsid` left planrun's reach on purpose; a subtask's group is in
    /// the session planrun ran in). Empty where `/proc` cannot be read.
    package static func groups(ofRuns runs: Set<String>) -> Set<pid_t> {
        let markers = runs.map { Array("PLANRUN_RUN_ID=\($0)".utf8) }
        var out = Set<pid_t>()
        guard !markers.isEmpty, let dir = opendir("/proc") else { return out }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = pid_t(name), pid > 1, pid != getpid(),
                  let stat = readFile("/proc/\(pid)/stat", limit: 1024),
                  let close = stat.lastIndex(of: UInt8(ascii: ")")) else { continue }
            // "PID (COMM) STATE PPID PGRP SESSION ..."
            let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "), maxSplits: 5)
            guard fields.count >= 4, let state = fields[0].first,
                  let pgrp = pid_t(String(decoding: fields[2], as: UTF8.self)),
                  let session = pid_t(String(decoding: fields[3], as: UTF8.self)),
                  state != UInt8(ascii: "Z"), state != UInt8(ascii: "X"), pgrp != session, pgrp > 1,
                  !out.contains(pgrp),
                  let environment = readFile("/proc/\(pid)/environ", limit: 4 << 20) else { continue }
            for entry in environment.split(separator: 0) where markers.contains(where: { entry.elementsEqual($0) }) {
                out.insert(pgrp)
                break
            }
        }
        return out
    }

    /// At most `limit` bytes of the file at `path` (files in `/proc` have
    /// no size: read to the end); nil if it cannot be opened.
    static func readFile(_ path: String, limit: Int, flags: Int32 = 0) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | flags)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while out.count < limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, limit - out.count)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }
}

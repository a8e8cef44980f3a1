#if canImport(Glibc)
import Glibc
#endif
import Collections
import Foundation
import Synchronization

package struct ChildExit: Sendable {
    package var termination: ChildTermination
    package var stdout: [UInt8]
    package var timedOut: Bool
}

/// Watches running children on one thread: `poll` over each child's two
/// pipes, so output is drained as it comes (into the attempt's `LogSink`),
/// without a thread or a task per child. A child is done when it has exited
/// and both pipes are closed (a background grandchild holding them keeps it
/// running, as in ninja and make); then its waiter resumes. Any event on a
/// child drains both its pipes, and once both are closed it is reaped at
/// once (`waitpid(WNOHANG)`), as ninja does after EOF; only a child that
/// closed its output and still runs gets a pidfd to watch for its exit.
///
/// Timeouts and cancellation: `terminate` (or a passed deadline) sends
/// SIGTERM to the child's process group and SIGKILL after the grace period
/// if it is still not done. Without a pidfd (old kernels) exits are found
/// by `waitpid(WNOHANG)` every 10 ms.
///
/// The thread is created on first use and lives as long as the process.
/// All shared state is behind one `Mutex`; only the monitor thread reads
/// and closes the children's descriptors.
package final class ProcessMonitor: TaskExecutor {
    package static let shared: ProcessMonitor = {
        let monitor = ProcessMonitor()
        let thread = Thread { monitor.loop() }
        thread.name = "planrun-process-monitor"
        thread.start()
        return monitor
    }()

    private struct Child {
        var pid: pid_t
        var pidfd: Int32
        var stdoutFD: Int32
        var stderrFD: Int32
        var log: LogSink
        var termination: ChildTermination?
        var stdout: [UInt8] = []
        var deadline: ContinuousClock.Instant?
        var grace: Duration
        var killAt: ContinuousClock.Instant?
        var terminating = false
        var timedOut = false
        var waiter: CheckedContinuation<ChildExit, Never>?
        var finished: ChildExit?
        /// No pidfd could be opened: its exit is polled (`exitPollAt`).
        var noPidfd = false
        /// When a pidfd is opened for it if it still runs with its output
        /// open (an attempt of a few milliseconds never needs one); without
        /// pidfds, when `waitpid` looks at it next.
        var exitPollAt: ContinuousClock.Instant
        /// When its exit was seen: its pipes are waited for until
        /// `pipeWait` after it.
        var exitedAt: ContinuousClock.Instant?
        /// Its output stayed open `pipeWait` after it exited (a background
        /// process holds it): no longer waited for.
        var pipesAbandoned = false
        /// Its process group is gone (no live member), or still there
        /// `pipeWait` after SIGKILL.
        var groupDone = false
        /// SIGKILL was sent to its group: its members are waited for until then.
        var giveUpAt: ContinuousClock.Instant?
        /// When the remaining members of its group are looked for next.
        var probeAt: ContinuousClock.Instant?
        /// `probe` found no live member in its group (zombies at most).
        var probedEmpty = false
        /// It left processes behind (the note is in its output).
        var leftBehind = false
        /// Told when it starts and when its group is done.
        var orphanGuard: OrphanGuard?
        /// The loop's round in which its pipes were last drained.
        var drainedGeneration = -1

        var pipesOpen: Bool { stdoutFD >= 0 || stderrFD >= 0 }
        var isDone: Bool { termination != nil && (!pipesOpen || pipesAbandoned) && groupDone }
        var exit: ChildExit { ChildExit(termination: termination ?? .exited(-1), stdout: stdout, timedOut: timedOut) }
    }

    private enum Role { case stdout, stderr, exit }

    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let children = Mutex<[pid_t: Child]>([:])

    /// Jobs of tasks that prefer this thread (`withTaskExecutorPreference`:
    /// the executor's loop and its children when it runs processes), and
    /// whether the thread is about to block in `poll` (then a new job or
    /// child must wake it).
    private struct Jobs {
        var queue: Deque<UnownedJob> = []
        var polling = false
    }
    private let jobs = Mutex(Jobs())

    private init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) != 0 { fds = [-1, -1] }
        for fd in fds where fd >= 0 {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    /// How long a child's output pipes are waited for after it exited.
    static let pipeWait: Duration = .seconds(1)
    /// A child still running after this long gets a pidfd, so that its
    /// exit is seen while a background process keeps its output open.
    static let pidfdDelay: Duration = .milliseconds(100)
    /// How often the remaining members of a group being stopped are looked for.
    static let probeInterval: Duration = .milliseconds(50)
    /// The line added to the output of a subtask that left processes running.
    static let leftBehindNote = "planrun: the subtask left background processes behind; those in its process group were stopped\n"

    /// Starts watching a spawned child. `timeout` starts now. `orphanGuard`
    /// learns its process group now and when it is done.
    func add(_ spawned: ProcessSpawner.Spawned, log: LogSink, timeout: Duration?, grace: Duration,
             orphanGuard: OrphanGuard? = nil) {
        orphanGuard?.added(spawned.pid)
        let now = ContinuousClock.now
        let child = Child(pid: spawned.pid, pidfd: spawned.pidfd, stdoutFD: spawned.stdout, stderrFD: spawned.stderr,
                          log: log, deadline: timeout.map { now + $0 }, grace: grace,
                          exitPollAt: now + Self.pidfdDelay, orphanGuard: orphanGuard)
        children.withLock { $0[spawned.pid] = child }
        wakeIfPolling()
    }

    /// Runs a job on the monitor's thread, between two rounds of `poll`:
    /// a child's exit, the executor's loop handling it and the next spawn
    /// then happen on one thread with one wake-up, as in ninja's loop.
    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.queue.append(job) }
        wakeIfPolling()
    }

    /// Wakes the thread if it is (about to be) blocked in `poll`; when it
    /// is not, it looks at its jobs and children before polling again.
    private func wakeIfPolling() {
        let polling = jobs.withLock { j -> Bool in
            defer { j.polling = false }
            return j.polling
        }
        if polling { wake() }
    }

    /// How long queued jobs may run before the thread looks at its children
    /// (without blocking) again.
    static let jobsBeforeLook: Duration = .microseconds(500)

    /// Runs the queued jobs until none is left (jobs may queue more), or
    /// until `deadline` has passed after a batch; true when it stopped
    /// there with jobs left (a job that yields, such as the executor
    /// deciding a long run of cached subtasks, queues itself again).
    /// `batch` is the caller's (empty) buffer, swapped with the queue so
    /// that neither is reallocated.
    private func runJobs(until deadline: ContinuousClock.Instant, batch: inout Deque<UnownedJob>) -> Bool {
        let me = asUnownedTaskExecutor()
        while true {
            jobs.withLock { j in swap(&j.queue, &batch) }
            if batch.isEmpty { return false }
            for job in batch { job.runSynchronously(on: me) }
            batch.removeAll(keepingCapacity: true)
            if ContinuousClock.now >= deadline {
                return jobs.withLock { !$0.queue.isEmpty }
            }
        }
    }

    /// Waits until child `pid` (from `add`) is done.
    func wait(_ pid: pid_t) async -> ChildExit {
        await withCheckedContinuation { continuation in
            // In place: a copy of the `Child` would retain its log and output.
            let finished = children.withLock { all -> ChildExit? in
                guard let slot = all.index(forKey: pid) else { return ChildExit(termination: .exited(-1), stdout: [], timedOut: false) }
                if let finished = all.values[slot].finished {
                    all.remove(at: slot)
                    return finished
                }
                all.values[slot].waiter = continuation
                return nil
            }
            if let finished { continuation.resume(returning: finished) }
        }
    }

    /// Stops child `pid`: SIGTERM to its group now, SIGKILL after its grace
    /// period if it is not done by then.
    func terminate(_ pid: pid_t) {
        let send = children.withLock { all -> Bool in
            guard var child = all[pid], child.finished == nil, !child.terminating else { return false }
            child.terminating = true
            child.killAt = ContinuousClock.now + child.grace
            all[pid] = child
            return true
        }
        if send {
            _ = kill(-pid, SIGTERM)
            wake()
        }
    }

    /// What one entry of the `poll` array watches (entry 0 is the wake pipe).
    private struct Watch {
        var pid: pid_t
        var role: Role
    }

    /// The loop's buffers, kept across rounds so that a round allocates
    /// nothing: the `poll` array, what each entry watches, and the children
    /// to signal or resume once the lock is released.
    private struct Round {
        var fds: [pollfd] = []
        var watches: [Watch] = []
        var done: [pid_t] = []
        var kills: [(pid_t, Int32)] = []
        /// Groups with members left, looked for in `/proc` once the lock is released.
        var probes: [pid_t] = []
        var resumes: [(CheckedContinuation<ChildExit, Never>, ChildExit)] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        /// Bumped every round: a child drained in this round is not drained again.
        var generation = 0
    }

    private func loop() {
        Self.unblockChildSignal()
        var round = Round()
        var batch: Deque<UnownedJob> = []
        var lastLook = ContinuousClock.now
        while true {
            // Jobs left after the time bound wait for one look (poll with
            // no wait) at the children, so their exits are seen meanwhile.
            let busy = runJobs(until: lastLook + Self.jobsBeforeLook, batch: &batch)
            // From here a new job or child wakes the thread; one queued
            // before this point runs first.
            let idle = busy ? false : jobs.withLock { j -> Bool in
                j.polling = j.queue.isEmpty
                return j.polling
            }
            if !idle && !busy { continue }

            // What to watch, and until when.
            round.fds.removeAll(keepingCapacity: true)
            round.watches.removeAll(keepingCapacity: true)
            round.fds.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
            round.watches.append(Watch(pid: 0, role: .exit))
            var timeout: Int32 = -1
            let now = ContinuousClock.now
            children.withLock { all in
                // Fields are read in place: a `Child` copy would retain its
                // log, output and waiter.
                var slot = all.startIndex
                while slot != all.endIndex {
                    defer { all.formIndex(after: &slot) }
                    guard all.values[slot].finished == nil else { continue }
                    let pid = all.values[slot].pid
                    let stdoutFD = all.values[slot].stdoutFD, stderrFD = all.values[slot].stderrFD
                    if stdoutFD >= 0 {
                        round.fds.append(pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0))
                        round.watches.append(Watch(pid: pid, role: .stdout))
                    }
                    if stderrFD >= 0 {
                        round.fds.append(pollfd(fd: stderrFD, events: Int16(POLLIN), revents: 0))
                        round.watches.append(Watch(pid: pid, role: .stderr))
                    }
                    // Its exit is watched through a pidfd once its output
                    // is closed or it has run `pidfdDelay`; else polled.
                    if all.values[slot].termination == nil {
                        let pidfd = all.values[slot].pidfd
                        if pidfd >= 0 {
                            round.fds.append(pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0))
                            round.watches.append(Watch(pid: pid, role: .exit))
                        } else if stdoutFD < 0, stderrFD < 0 {
                            timeout = Self.earlier(timeout, 10)
                        } else {
                            timeout = Self.earlier(timeout, Self.milliseconds(until: all.values[slot].exitPollAt, from: now))
                        }
                        if !all.values[slot].terminating, let deadline = all.values[slot].deadline {
                            timeout = Self.earlier(timeout, Self.milliseconds(until: deadline, from: now))
                        }
                    } else if all.values[slot].pipesOpen, !all.values[slot].pipesAbandoned,
                              let exitedAt = all.values[slot].exitedAt {
                        timeout = Self.earlier(timeout, Self.milliseconds(until: exitedAt + Self.pipeWait, from: now))
                    }
                    if let probeAt = all.values[slot].probeAt, all.values[slot].termination != nil,
                       !all.values[slot].pipesOpen || all.values[slot].pipesAbandoned {
                        timeout = Self.earlier(timeout, Self.milliseconds(until: probeAt, from: now))
                    }
                    if let killAt = all.values[slot].killAt {
                        timeout = Self.earlier(timeout, Self.milliseconds(until: killAt, from: now))
                    }
                }
            }

            let ready = round.fds.withUnsafeMutableBufferPointer { fds in
                poll(fds.baseAddress, nfds_t(fds.count), busy ? 0 : timeout)
            }
            if ready < 0 && errno != EINTR { usleep(1000) }
            jobs.withLock { $0.polling = false }
            lastLook = ContinuousClock.now
            if ready > 0, round.fds[0].revents != 0 {
                while read(wakeRead, &round.buffer, round.buffer.count) > 0 {}
            }

            // Output and exits, applied in place. An event on either pipe
            // of a child drains both (its exit closes them one after the
            // other), so a child that ended is usually reaped in this round.
            round.generation &+= 1
            let later = ContinuousClock.now
            children.withLock { all in
                if ready > 0 {
                    for index in 1..<round.fds.count where round.fds[index].revents != 0 {
                        let watch = round.watches[index]
                        guard let slot = all.index(forKey: watch.pid) else { continue }
                        // An exit (pidfd) is reaped below, with every child.
                        if watch.role == .exit { continue }
                        Self.drainPipes(of: &all.values[slot], generation: round.generation, buffer: &round.buffer)
                    }
                }
                // Reap, enforce deadlines, and collect who is done.
                // (A walk by index: iterating `all.values.indices` would
                // keep a second reference and copy the storage on write.)
                var slot = all.startIndex
                while slot != all.endIndex {
                    if all.values[slot].finished == nil {
                        Self.update(&all.values[slot], at: later, kills: &round.kills, probes: &round.probes,
                                    buffer: &round.buffer)
                        if all.values[slot].isDone { round.done.append(all.values[slot].pid) }
                    }
                    all.formIndex(after: &slot)
                }
                for pid in round.done {
                    guard let slot = all.index(forKey: pid) else { continue }
                    all.values[slot].orphanGuard?.removed(pid)
                    let exit = all.values[slot].exit
                    if let waiter = all.values[slot].waiter {
                        round.resumes.append((waiter, exit))
                        all.remove(at: slot)
                    } else {
                        all.values[slot].finished = exit
                    }
                }
            }
            round.done.removeAll(keepingCapacity: true)
            for (pid, signal) in round.kills { _ = kill(-pid, signal) }
            round.kills.removeAll(keepingCapacity: true)
            for (waiter, exit) in round.resumes { waiter.resume(returning: exit) }
            round.resumes.removeAll(keepingCapacity: true)
            if !round.probes.isEmpty { probe(&round) }
        }
    }

    /// Looks in `/proc` (one pass, without holding the lock) for live
    /// members of the groups in `round.probes`: a group with none (zombies
    /// only) is done in the next round; one with some, whose main process
    /// exited on its own, left them behind: they get SIGTERM now and
    /// SIGKILL after the grace period.
    private func probe(_ round: inout Round) {
        let live = ProcessGroupProbe.liveMembers(of: Set(round.probes))
        let now = ContinuousClock.now
        children.withLock { all in
            for pid in round.probes {
                guard let slot = all.index(forKey: pid), all.values[slot].finished == nil else { continue }
                if ProcessGroupProbe.canList && live[pid] == nil {
                    all.values[slot].probedEmpty = true
                    all.values[slot].probeAt = now
                } else if !all.values[slot].terminating {
                    all.values[slot].leftBehind = true
                    all.values[slot].terminating = true
                    all.values[slot].killAt = now + all.values[slot].grace
                    round.kills.append((pid, SIGTERM))
                }
            }
        }
        round.probes.removeAll(keepingCapacity: true)
        for (pid, signal) in round.kills { _ = kill(-pid, signal) }
        round.kills.removeAll(keepingCapacity: true)
    }

    /// Reads both pipes of `child` (once per round), keeping standard
    /// output up to the result limit, and closes each at EOF.
    private static func drainPipes(of child: inout Child, generation: Int, buffer: inout [UInt8]) {
        guard child.drainedGeneration != generation else { return }
        child.drainedGeneration = generation
        let limit = AttemptOutcome.resultLimit + 1
        if child.stdoutFD >= 0, drain(child.stdoutFD, into: &buffer, log: child.log, keep: &child.stdout, limit: limit) {
            close(child.stdoutFD)
            child.stdoutFD = -1
        }
        var none: [UInt8] = []
        if child.stderrFD >= 0, drain(child.stderrFD, into: &buffer, log: child.log, keep: &none, limit: 0) {
            close(child.stderrFD)
            child.stderrFD = -1
        }
    }

    /// Moves `child` on (it is done when its main process has exited, its
    /// output is closed or given up on, and its group is gone or killed):
    /// - reaps it once its output is closed or its pidfd fired (opening a
    ///   pidfd for one that closed its output, or has run `pidfdDelay`);
    /// - sends its timeout's SIGTERM, and its grace period's SIGKILL;
    /// - gives up on its output `pipeWait` after it exited (a process that
    ///   left its group and holds the pipes is not waited for);
    /// - then looks for what is left of its group: nothing (one
    ///   `kill(-pgid, 0)`, the common case), or members, which `probe`
    ///   sorts into zombies only and live processes (SIGTERM, and SIGKILL
    ///   after the grace period).
    /// Signals go into `kills`, sent after the lock is released. The group
    /// is signalled only while it has members, so its number cannot have
    /// been reused.
    private static func update(_ child: inout Child, at now: ContinuousClock.Instant, kills: inout [(pid_t, Int32)],
                               probes: inout [pid_t], buffer: inout [UInt8]) {
        let pid = child.pid
        if child.termination == nil {
            if !child.pipesOpen || child.pidfd >= 0 || (child.noPidfd && child.exitPollAt <= now) {
                var status: Int32 = 0
                let r = waitpid(pid, &status, WNOHANG)
                if r == pid {
                    child.termination = termination(status)
                } else if r < 0 && errno == ECHILD {
                    child.termination = .exited(-1)
                } else if child.noPidfd {
                    child.exitPollAt = now + (child.pipesOpen ? pidfdDelay : .milliseconds(10))
                }
                if child.termination != nil { child.exitedAt = now }
            }
            if child.termination == nil, child.pidfd < 0, !child.noPidfd, !child.pipesOpen || child.exitPollAt <= now {
                // Still running: watch its exit.
                child.pidfd = ProcessSpawner.openPidfd(pid)
                if child.pidfd < 0 {
                    child.noPidfd = true
                    child.exitPollAt = now + .milliseconds(10)
                }
            }
            if child.termination != nil, child.pidfd >= 0 {
                close(child.pidfd)
                child.pidfd = -1
            }
        }
        if child.termination == nil, !child.terminating, let deadline = child.deadline, deadline <= now {
            child.timedOut = true
            child.terminating = true
            child.killAt = now + child.grace
            kills.append((pid, SIGTERM))
        }
        if let exitedAt = child.exitedAt, child.pipesOpen, !child.pipesAbandoned, exitedAt + pipeWait <= now {
            child.pipesAbandoned = true
            child.leftBehind = true
        }
        if child.termination != nil, !child.pipesOpen || child.pipesAbandoned, !child.groupDone,
           child.probeAt.map({ $0 <= now }) ?? true {
            // After SIGKILL, a process inside a system call that cannot be
            // interrupted may take a while to go: waited for at most `pipeWait`.
            if child.probedEmpty || kill(-pid, 0) != 0 || child.giveUpAt.map({ $0 <= now }) ?? false {
                child.groupDone = true
                child.probeAt = nil
            } else {
                // Members left (maybe only zombies): `probe` looks.
                probes.append(pid)
                child.probeAt = now + probeInterval
            }
        }
        if let killAt = child.killAt, killAt <= now {
            child.killAt = nil
            if !child.groupDone {
                kills.append((pid, SIGKILL))
                child.giveUpAt = now + pipeWait
                child.probeAt = now + .milliseconds(2)
            }
        }
        if child.isDone {
            if child.pipesOpen {
                // Given up on: what is there is read, the rest is dropped.
                drainPipes(of: &child, generation: -2, buffer: &buffer)
                if child.stdoutFD >= 0 { close(child.stdoutFD); child.stdoutFD = -1 }
                if child.stderrFD >= 0 { close(child.stderrFD); child.stderrFD = -1 }
            }
            if child.leftBehind {
                Array(leftBehindNote.utf8).withUnsafeBytes { child.log.append($0) }
            }
            if child.pidfd >= 0 {
                close(child.pidfd)
                child.pidfd = -1
            }
        }
    }

    /// Unblocks SIGCHLD on this thread, which spawns the children (their
    /// parent). The thread starts with the signal mask of the thread that
    /// made it (a libdispatch worker: SIGCHLD blocked). While the parent
    /// thread blocks SIGCHLD, the kernel cannot drop a child's exit signal
    /// as ignored when it is sent, and hands it to a thread that does not
    /// block it (the main thread, asleep in `sigsuspend`), which wakes up
    /// only to discard it. Unblocked here, it is dropped at once (SIGCHLD is
    /// ignored by default: no handler runs, `poll` is not interrupted), except
    /// while this thread is inside `posix_spawn`, which blocks every signal
    /// for the spawn. This spares the main thread a wake-up per child.
    private static func unblockChildSignal() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGCHLD)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// `poll`'s timeout for `instant`: 0 once it has passed, else the
    /// milliseconds left, rounded up.
    private static func milliseconds(until instant: ContinuousClock.Instant, from now: ContinuousClock.Instant) -> Int32 {
        instant <= now ? 0 : Int32(clamping: (instant - now).inMilliseconds + 1)
    }

    /// Reads what is in non-blocking pipe `fd` into `log`, and into `kept`
    /// while it is shorter than `limit`; true at EOF or on an error (the
    /// caller closes it).
    private static func drain(_ fd: Int32, into buffer: inout [UInt8], log: LogSink?,
                              keep kept: inout [UInt8], limit: Int) -> Bool {
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                buffer.withUnsafeBytes { raw in
                    let chunk = UnsafeRawBufferPointer(rebasing: raw[0..<n])
                    log?.append(chunk)
                    if kept.count < limit { kept.append(contentsOf: chunk.prefix(limit - kept.count)) }
                }
                // Read on: EAGAIN (more may come) or EOF (the writer is
                // gone) ends it, so an exit right after output is seen now.
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && errno == EAGAIN {
                return false
            } else {
                return true
            }
        }
    }

    private static func termination(_ status: Int32) -> ChildTermination {
        let signal = status & 0x7f
        if signal == 0 { return .exited((status >> 8) & 0xff) }
        return .signaled(signal)
    }

    private static func earlier(_ a: Int32, _ b: Int32) -> Int32 { a < 0 ? b : min(a, b) }
}

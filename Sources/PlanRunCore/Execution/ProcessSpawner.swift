#if canImport(Glibc)
import Glibc
#endif
import Foundation


/// How a child process ended.
package enum ChildTermination: Sendable, Equatable {
    case exited(Int32)
    case signaled(Int32)
}

/// Starts child processes with `posix_spawn`, as ninja's SubprocessSet does.
///
/// Why not swift-subprocess: on this libc it takes its fork/exec fallback,
/// a full `fork` of the planrun process (page tables, then copy-on-write
/// faults in the parent), and it hops through three threads per child (a
/// spawn worker, a pipe reader, an exit monitor). `posix_spawn`
/// uses `CLONE_VFORK` (no copy of the address space) and a single
/// `ProcessMonitor` thread polls every child's pipes and exit.
///
/// Each child gets its own process group (`POSIX_SPAWN_SETPGROUP`, 0), all
/// signals back to their default action (planrun ignores SIGPIPE and catches
/// SIGINT/SIGTERM/SIGHUP), an empty signal mask, standard input from
/// `standardInput` or /dev/null, standard output and error into two pipes,
/// and no other inherited descriptor (`addclosefrom_np`).
package enum ProcessSpawner {
    package struct Spawned: Sendable {
        package var pid: pid_t
        /// Always -1 from `spawn`: the monitor opens a pidfd only for a
        /// child that closed its output but has not exited.
        package var pidfd: Int32
        /// Read ends (non-blocking) of the child's standard output and error.
        package var stdout: Int32
        package var stderr: Int32
    }

    package enum Failure: Error, Sendable, Equatable {
        /// `posix_spawn` failed with this errno (exec or chdir failure included).
        case spawn(Int32)
        case pipe(Int32)
    }

    /// glibc functions the Swift `Glibc` module does not declare (they need
    /// `_GNU_SOURCE`), looked up once by name. C function pointers are
    /// immutable and callable from any thread.
    private struct LibC: @unchecked Sendable {
        typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
        typealias AddClosefrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        typealias PidfdOpen = @convention(c) (pid_t, UInt32) -> Int32
        typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
        let addChdir: AddChdir?
        let addClosefrom: AddClosefrom?
        let pidfdOpen: PidfdOpen?
        let pipe2: Pipe2?

        init() {
            func symbol<F>(_ name: String, as type: F.Type) -> F? {
                // RTLD_DEFAULT is a null handle on glibc.
                guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
                return unsafeBitCast(address, to: type)
            }
            addChdir = symbol("posix_spawn_file_actions_addchdir_np", as: AddChdir.self)
            addClosefrom = symbol("posix_spawn_file_actions_addclosefrom_np", as: AddClosefrom.self)
            pidfdOpen = symbol("pidfd_open", as: PidfdOpen.self)
            pipe2 = symbol("pipe2", as: Pipe2.self)
        }
    }
    private static let libc = LibC()

    /// `/dev/null`, open once (close-on-exec) and given to children as
    /// standard input with a `dup2`, instead of an `open` by path in every
    /// child while the spawning thread waits for its exec; -1 if it cannot
    /// be opened (then each child opens it).
    private static let devNull: Int32 = open("/dev/null", O_RDONLY | O_CLOEXEC)

    /// What every child planrun starts gets: all signals at their default
    /// action, none blocked (the parent blocks some on its threads), and a
    /// process group of its own, so that stopping it reaches what it started.
    static func setChildAttributes(_ attributes: inout posix_spawnattr_t) {
        var defaults = sigset_t()
        sigfillset(&defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
    }

    /// Adds to `actions` the closing of every descriptor from `lowest` on
    /// (where the libc can; planrun's own descriptors are close-on-exec).
    static func closeDescriptors(from lowest: Int32, in actions: inout posix_spawn_file_actions_t) {
        if let addClosefrom = libc.addClosefrom { _ = addClosefrom(&actions, lowest) }
    }

    /// A pidfd for `pid` (close-on-exec), or -1 when the kernel has none.
    static func openPidfd(_ pid: pid_t) -> Int32 {
        guard let pidfdOpen = libc.pidfdOpen else { return -1 }
        let fd = pidfdOpen(pid, 0)
        if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return fd
    }

    /// A pipe whose two ends are close-on-exec.
    private static func makePipe() -> (read: Int32, write: Int32)? {
        var fds: [Int32] = [-1, -1]
        if let pipe2 = libc.pipe2 {
            guard pipe2(&fds, O_CLOEXEC) == 0 else { return nil }
        } else {
            guard pipe(&fds) == 0 else { return nil }
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        }
        return (fds[0], fds[1])
    }

    /// Starts `path` with `arguments` (argv, program name first) and
    /// `environment` (`KEY=VALUE` entries) in `workingDirectory`.
    package static func spawn(
        path: String, arguments: [String], environment: [String], workingDirectory: String,
        standardInput: Int32?
    ) -> Result<Spawned, Failure> {
        let envp = CStringBlock(environment)
        return spawn(path: path, arguments: arguments, envp: envp, workingDirectory: workingDirectory,
                     standardInput: standardInput)
    }

    /// As above, with the environment as a dictionary: its `KEY=VALUE`
    /// entries are written straight into one C buffer (no `String` per
    /// entry). Keys that are empty or contain `=` are skipped.
    package static func spawn(
        path: String, arguments: [String], environment: [String: String], workingDirectory: String,
        standardInput: Int32?
    ) -> Result<Spawned, Failure> {
        let envp = CStringBlock(environment: environment)
        return spawn(path: path, arguments: arguments, envp: envp, workingDirectory: workingDirectory,
                     standardInput: standardInput)
    }

    /// As above, with a prebuilt environment and this child's own variables
    /// (which replace entries of the same name): only `overrides` are
    /// converted to C strings.
    package static func spawn(
        path: String, arguments: [String], environment: SpawnEnvironment, overrides: [String: String],
        workingDirectory: String, standardInput: Int32?
    ) -> Result<Spawned, Failure> {
        environment.withEnvp(overrides: overrides) { envp in
            spawn(path: path, arguments: arguments, envp: envp, workingDirectory: workingDirectory,
                  standardInput: standardInput)
        }
    }

    private static func spawn(
        path: String, arguments: [String], envp: CStringBlock, workingDirectory: String,
        standardInput: Int32?
    ) -> Result<Spawned, Failure> {
        let result = spawn(path: path, arguments: arguments, envp: UnsafePointer(envp.pointers),
                           workingDirectory: workingDirectory, standardInput: standardInput)
        withExtendedLifetime(envp) {}
        return result
    }

    private static func spawn(
        path: String, arguments: [String], envp: UnsafePointer<UnsafeMutablePointer<CChar>?>,
        workingDirectory: String, standardInput: Int32?
    ) -> Result<Spawned, Failure> {
        guard let out = makePipe() else { return .failure(.pipe(errno)) }
        guard let err = makePipe() else {
            let code = errno
            close(out.read); close(out.write)
            return .failure(.pipe(code))
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let addChdir = libc.addChdir {
            _ = addChdir(&actions, workingDirectory)
        }
        if let standardInput {
            posix_spawn_file_actions_adddup2(&actions, standardInput, STDIN_FILENO)
        } else if devNull >= 0 {
            posix_spawn_file_actions_adddup2(&actions, devNull, STDIN_FILENO)
        } else {
            posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, out.write, STDOUT_FILENO)
        posix_spawn_file_actions_adddup2(&actions, err.write, STDERR_FILENO)
        if let addClosefrom = libc.addClosefrom {
            _ = addClosefrom(&actions, 3)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        setChildAttributes(&attributes)

        let argv = CStringBlock(arguments)
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv.pointers, envp)
        withExtendedLifetime(argv) {}
        close(out.write)
        close(err.write)
        guard rc == 0 else {
            close(out.read); close(err.read)
            return .failure(.spawn(rc))
        }
        // A new pipe's read end has no other status flag to keep.
        _ = fcntl(out.read, F_SETFL, O_NONBLOCK)
        _ = fcntl(err.read, F_SETFL, O_NONBLOCK)
        return .success(Spawned(pid: pid, pidfd: -1, stdout: out.read, stderr: err.read))
    }

    /// A null-terminated array of C strings in one allocation (the strings'
    /// bytes) plus the pointer array: two allocations per spawn instead of
    /// one `strdup` per argument and environment entry.
    private final class CStringBlock {
        private let bytes: UnsafeMutablePointer<CChar>
        let pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

        convenience init(_ strings: [String]) {
            self.init(count: strings.count, size: strings.reduce(0) { $0 + $1.utf8.count + 1 }) { put in
                for s in strings { put(s, nil) }
            }
        }

        convenience init(environment: [String: String]) {
            var count = 0, size = 0
            for (key, value) in environment where Self.isValidKey(key) {
                count += 1
                size += key.utf8.count + value.utf8.count + 2
            }
            self.init(count: count, size: size) { put in
                for (key, value) in environment where Self.isValidKey(key) { put(key, value) }
            }
        }

        private static func isValidKey(_ key: String) -> Bool {
            var key = key
            return key.withUTF8 { utf8 in
                guard let base = utf8.baseAddress, utf8.count > 0 else { return false }
                return memchr(base, Int32(UInt8(ascii: "=")), utf8.count) == nil
            }
        }

        /// `fill` calls `put(a, b)` once per entry: `a`, or `a=b` when `b` is given.
        private init(count: Int, size: Int, fill: ((String, String?) -> Void) -> Void) {
            bytes = .allocate(capacity: max(size, 1))
            pointers = .allocate(capacity: count + 1)
            var offset = 0, index = 0
            fill { a, b in
                guard index < count else { return }
                pointers[index] = bytes + offset
                index += 1
                offset = writeCEntry(a, b, to: bytes, at: offset)
            }
            pointers[index] = nil
        }

        deinit {
            bytes.deallocate()
            pointers.deallocate()
        }
    }

    /// The first executable `name` in `path` (a `PATH` value); nil if none.
    package static func resolve(_ name: String, path: String?) -> String? {
        for dir in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + name
            var st = stat()
            if access(candidate, X_OK) == 0, stat(candidate, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR {
                return candidate
            }
        }
        return nil
    }
}

/// What a child left when it ended: its termination, standard output (at
/// most `AttemptOutcome.resultLimit + 1` bytes kept) and whether its
/// timeout fired.

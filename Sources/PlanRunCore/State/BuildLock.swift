#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// "One build of a plan at a time": a POSIX record lock on
/// `build.lock` in the state folder, held for the whole build. The kernel
/// drops it when the process dies, even by SIGKILL, so a stale lock cannot
/// outlive its build; `F_GETLK` tells another process who holds it (the
/// pid named in the error, and the process `planrun cancel` signals).
///
/// POSIX locks belong to the process and vanish when any descriptor of the
/// file is closed, so planrun opens this file only here.
package final class BuildLock: Sendable {
    private let fd: Int32
    package let path: String

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// Why the lock could not be taken.
    package enum Failure: Error, Sendable, CustomStringConvertible {
        /// Another live process holds it.
        case held(pid: Int32)
        case io(path: String, reason: String)
        /// An entry of the state folder is a link or of the wrong kind.
        case untrusted(StateFolder.Refusal)

        package var description: String {
            switch self {
            case .held(let pid): "another build of this plan is running (pid \(pid))"
            case .io(let path, let reason): "cannot lock \(path): \(reason)"
            case .untrusted(let refusal): refusal.description
            }
        }
    }

    private static func lockPath(_ directory: String) -> String {
        (directory as NSString).appendingPathComponent("build.lock")
    }

    /// Takes the lock without waiting, after checking the state folder's
    /// entries (`StateFolder.check`): every build takes this lock before it
    /// touches the state folder.
    package static func acquire(directory: String) throws(Failure) -> BuildLock {
        let path = lockPath(directory)
        do { try StateFolder.check(directory) } catch { throw .untrusted(error) }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .io(path: directory, reason: "\(error.localizedDescription)")
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o644)
        guard fd >= 0 else { throw .io(path: path, reason: String(cString: strerror(errno))) }
        var fl = flock()
        fl.l_type = Int16(F_WRLCK)
        fl.l_whence = Int16(SEEK_SET)
        fl.l_start = 0
        fl.l_len = 0
        if fcntl(fd, F_SETLK, &fl) != 0 {
            let code = errno
            close(fd)
            if code == EAGAIN || code == EACCES {
                throw .held(pid: holder(directory: directory) ?? 0)
            }
            throw .io(path: path, reason: String(cString: strerror(code)))
        }
        // Informational only: the pid of the build, for humans reading the file.
        let text = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        return BuildLock(fd: fd, path: path)
    }

    /// The pid of the process holding the lock, or nil when nobody does.
    /// Never creates or changes anything.
    package static func holder(directory: String) -> Int32? {
        let fd = open(lockPath(directory), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var fl = flock()
        fl.l_type = Int16(F_WRLCK)
        fl.l_whence = Int16(SEEK_SET)
        fl.l_start = 0
        fl.l_len = 0
        guard fcntl(fd, F_GETLK, &fl) == 0 else { return nil }
        if fl.l_type == Int16(F_UNLCK) { return nil }
        return fl.l_pid
    }
}

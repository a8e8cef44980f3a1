#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A run as a JUnit XML report (`planrun build --report FILE`), the format
/// the test reporters of Jenkins, GitLab and GitHub read:
///
///     <testsuites name="PLAN" tests= failures= errors= skipped= time=>
///       <testsuite name="PLAN" tests= failures= errors= skipped= time= timestamp=>
///         <testcase classname="PLAN" name="ID" time=>...</testcase>
///
/// One test case per selected subtask, in plan order. A failed subtask gets
/// `<failure message="ERROR">` with its log (all attempts; the last
/// `maxOutputBytes` of it) in the body; a blocked or cancelled one gets
/// `<skipped message="blocked: ...">`; a cached one passes with the property
/// `planrun.status = cached` and its reason in `<system-out>`; a subtask
/// that ran and succeeded has its captured output in `<system-out>`.
///
/// Invariant: the text is well-formed XML 1.0 whatever the subtasks
/// printed. Invalid UTF-8 and characters XML 1.0 forbids (most control
/// characters) become U+FFFD, and terminal colour sequences are dropped.
package struct JUnitReport: Sendable {
    package var summary: RunSummary
    /// The run's log folder (`logs/RUN_ID` in the state folder). A failed
    /// subtask's `ID.log` there is its failure body; nil or no file = the
    /// output captured in its report.
    package var logDirectory: String?
    /// At most this much of a log goes into the report (the end of it).
    package var maxOutputBytes: Int

    package init(summary: RunSummary, logDirectory: String? = nil, maxOutputBytes: Int = 1 << 20) {
        self.summary = summary
        self.logDirectory = logDirectory
        self.maxOutputBytes = max(1, maxOutputBytes)
    }

    /// A problem writing the report file.
    package struct WriteError: Error, Sendable, CustomStringConvertible {
        package var path: String
        package var reason: String
        package var description: String { "cannot write the report `\(path)`: \(reason)" }
    }

    // MARK: Rendering

    /// The whole document.
    package func xml() -> String {
        let s = summary
        let failures = s.count(.failed)
        let skipped = s.reports.count { Self.isSkipped($0.status) }
        let time = Self.seconds(s.durationSeconds)
        let plan = Self.escape(s.plan)
        let counts = "tests=\"\(s.total)\" failures=\"\(failures)\" errors=\"0\" skipped=\"\(skipped)\" time=\"\(time)\""
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<testsuites name=\"\(plan)\" \(counts)>\n"
        out += "  <testsuite name=\"\(plan)\" \(counts) timestamp=\"\(Self.timestamp(s.startedAt))\">\n"
        out += "    <properties>\n"
        out += Self.property("planrun.run_id", s.runID, indent: 6)
        out += Self.property("planrun.run_status", s.status.rawValue, indent: 6)
        if let reason = s.reason { out += Self.property("planrun.reason", reason, indent: 6) }
        out += "    </properties>\n"
        for report in s.reports { out += testCase(report) }
        out += "  </testsuite>\n"
        out += "</testsuites>\n"
        return out
    }

    private func testCase(_ r: SubtaskReport) -> String {
        let head = "    <testcase classname=\"\(Self.escape(summary.plan))\" name=\"\(Self.escape(r.id))\" time=\"\(Self.seconds(r.durationSeconds))\""
        var body = ""
        switch r.status {
        case .done:
            let output = Self.sanitized(r.output)
            if !output.isEmpty { body += "      <system-out>\(Self.escape(output, attribute: false))</system-out>\n" }
        case .cached:
            body += "      <properties>\n"
            body += Self.property("planrun.status", "cached", indent: 8)
            body += "      </properties>\n"
            let why = r.reason.map { $0 == .cached ? "cached" : "cached (\($0))" } ?? "cached"
            body += "      <system-out>\(Self.escape(why, attribute: false))</system-out>\n"
        case .failed:
            let message = r.error ?? "failed"
            body += "      <failure message=\"\(Self.escape(message))\" type=\"failed\">"
            body += Self.escape(failureOutput(r), attribute: false) + "</failure>\n"
        case .blocked, .cancelled, .pending, .running:
            var message = r.status.rawValue
            if let error = r.error, error != message { message += ": \(error)" }
            body += "      <skipped message=\"\(Self.escape(message))\"/>\n"
        }
        return body.isEmpty ? head + "/>\n" : head + ">\n" + body + "    </testcase>\n"
    }

    /// The failed subtask's log (its end, when long), else its captured output.
    private func failureOutput(_ r: SubtaskReport) -> String {
        if let logDirectory {
            let path = (logDirectory as NSString).appendingPathComponent(SubtaskFiles.relative(r.id)) + ".log"
            if let (bytes, omitted) = Self.tail(of: path, max: maxOutputBytes), !bytes.isEmpty {
                let note = omitted > 0 ? "[... \(omitted) bytes omitted; full log: \(path)]\n" : ""
                return note + Self.sanitized(bytes)
            }
        }
        return Self.sanitized(r.output)
    }

    private static func isSkipped(_ status: SubtaskStatus) -> Bool {
        switch status {
        case .blocked, .cancelled, .pending, .running: true
        case .done, .cached, .failed: false
        }
    }

    private static func property(_ name: String, _ value: String, indent: Int) -> String {
        String(repeating: " ", count: indent) + "<property name=\"\(escape(name))\" value=\"\(escape(value))\"/>\n"
    }

    /// Seconds with millisecond precision, as JUnit's `time` attributes.
    static func seconds(_ value: Double) -> String { String(format: "%.3f", max(0, value)) }

    /// ISO 8601 in UTC: `2025-01-31T12:00:00Z`.
    static func timestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss'Z'"
        return formatter.string(from: date)
    }

    /// The last `max` bytes of a file and how many bytes came before them;
    /// nil when it cannot be read.
    static func tail(of path: String, max: Int) -> (bytes: [UInt8], omitted: UInt64)? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        do {
            let size = try handle.seekToEnd()
            let start = size > UInt64(max) ? size - UInt64(max) : 0
            try handle.seek(toOffset: start)
            let data = try handle.readToEnd() ?? Data()
            return ([UInt8](data), start)
        } catch {
            return nil
        }
    }

    // MARK: Escaping

    /// Text safe for an XML 1.0 attribute value (`attribute`) or character
    /// data: markup characters become entities, and characters XML 1.0
    /// forbids become U+FFFD. Tab, carriage return and (in attributes)
    /// newline become character references, so a parser's end-of-line and
    /// attribute-value normalization keeps them.
    package static func escape(_ text: String, attribute: Bool = true) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t": out += "&#9;"
            case "\r": out += "&#13;"
            case "\n": if attribute { out += "&#10;" } else { out.unicodeScalars.append(scalar) }
            default:
                out.unicodeScalars.append(isAllowedInXML(scalar) ? scalar : "\u{FFFD}")
            }
        }
        return out
    }

    /// Captured bytes as text for a report: invalid UTF-8 and characters
    /// XML 1.0 forbids become U+FFFD; ANSI escape sequences (colours,
    /// cursor movement) are removed.
    package static func sanitized(_ bytes: [UInt8]) -> String {
        var out = String.UnicodeScalarView()
        var scalars = String(decoding: bytes, as: UTF8.self).unicodeScalars.makeIterator()
        var pending = scalars.next()
        while let scalar = pending {
            pending = scalars.next()
            guard scalar == "\u{1B}" else {
                out.append(isAllowedInXML(scalar) ? scalar : "\u{FFFD}")
                continue
            }
            switch pending {
            case "["?:
                // CSI: parameters and intermediates (0x20-0x3F), then one final byte (0x40-0x7E).
                pending = scalars.next()
                while let next = pending, (0x20...0x3F).contains(next.value) { pending = scalars.next() }
                if let final = pending, (0x40...0x7E).contains(final.value) { pending = scalars.next() }
            case "]"?:
                // OSC: up to BEL or ESC \.
                pending = scalars.next()
                while let next = pending, next != "\u{07}", next != "\u{1B}" { pending = scalars.next() }
                if pending == "\u{07}" { pending = scalars.next() }
                else if pending == "\u{1B}" {
                    pending = scalars.next()
                    if pending == "\\" { pending = scalars.next() }
                }
            case let next? where (0x40...0x5F).contains(next.value):
                pending = scalars.next() // a two-character escape
            default:
                out.append("\u{FFFD}")
            }
        }
        return String(out)
    }

    /// XML 1.0 `Char`: tab, newline, carriage return, U+0020-U+D7FF,
    /// U+E000-U+FFFD, U+10000-U+10FFFF. (U+007F-U+009F are allowed but
    /// discouraged; they are replaced too, as terminals treat them as controls.)
    static func isAllowedInXML(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09, 0x0A, 0x0D: true
        case 0x20...0x7E, 0xA0...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: true
        default: false
        }
    }

    // MARK: Writing

    /// Writes the report to `path` atomically: a temporary file in the same
    /// folder (`.NAME.PID.N.tmp`), then `rename`, so a reader never sees half
    /// a report. Creates missing parent folders. Temporary files of the
    /// same report left by a killed planrun (their process is gone) are
    /// removed first, so a kill leaves no litter for long.
    package func write(to path: String) throws(WriteError) {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw WriteError(path: path, reason: "cannot create the folder `\(directory)`")
        }
        JUnitReport.removeLeftoverTemporaries(besides: path)
        let temporary = (directory as NSString).appendingPathComponent(
            ".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw WriteError(path: path, reason: String(cString: strerror(errno))) }
        var bytes = Array(xml().utf8)
        var failure: String?
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = String(cString: strerror(errno))
                    return
                }
                offset += n
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        if close(fd) != 0, failure == nil { failure = String(cString: strerror(errno)) }
        if failure == nil, rename(temporary, path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temporary)
            throw WriteError(path: path, reason: failure)
        }
    }

    /// Removes `.NAME.PID.N.tmp` beside `path` when process PID no longer
    /// exists: what a planrun killed while writing this report left. Only
    /// regular files are removed; a live writer's file is left alone.
    static func removeLeftoverTemporaries(besides path: String) {
        let directory = (path as NSString).deletingLastPathComponent
        let prefix = "." + (path as NSString).lastPathComponent + "."
        let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0, let dir = fdopendir(fd) else {
            if fd >= 0 { close(fd) }
            return
        }
        defer { closedir(dir) }
        var doomed: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            guard name.hasPrefix(prefix), name.hasSuffix(".tmp") else { continue }
            let middle = name.dropFirst(prefix.count).dropLast(4).split(separator: ".", omittingEmptySubsequences: false)
            guard middle.count == 2, let pid = Int32(middle[0]), pid > 0, UInt32(middle[1]) != nil else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { doomed.append(name) }
        }
        for name in doomed {
            var st = stat()
            if fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) == 0, st.st_mode & S_IFMT == S_IFREG {
                unlinkat(dirfd(dir), name, 0)
            }
        }
    }
}

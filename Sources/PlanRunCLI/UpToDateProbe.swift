#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import PlanRunCore

/// The up-to-date stamp's question for one `build` invocation (see
/// `UpToDateStamp`): the plan file, targets, `--var` values and state
/// folder it names, and the answer when the stamp holds.
struct UpToDateProbe {
    let invocation: UpToDateStamp.Invocation
    let stateDirectory: String

    /// `path` and `targets` as `PlanArguments.resolved` gives them;
    /// `stateDir`: `--state-dir`, absolute (nil: `.planrun` beside the plan).
    init(path: String, targets: [String], stateDir: String?, variables: [String]) {
        let location = PlanLoader.location(of: path)
        invocation = UpToDateStamp.Invocation(
            planFile: location.file, targets: targets, environment: ProcessInfo.processInfo.environment,
            variables: variables)
        stateDirectory = BuildSession.stateDirectory(planDirectory: location.directory, configured: stateDir)
    }

    /// Prints the up-to-date summary and returns true when nothing the last
    /// all-cached build of this invocation looked at changed; false (having
    /// printed nothing) otherwise.
    func answer(started: ContinuousClock.Instant) -> Bool {
        guard let count = UpToDateStamp.check(invocation, stateDirectory: stateDirectory) else { return false }
        BuildRun.writeProgress(STDOUT_FILENO,
                               TextReporter.upToDateText(total: count, seconds: (ContinuousClock.now - started).inSeconds))
        return true
    }
}

extension UpToDateProbe {
    /// The probe for a whole command line (without the program name) when
    /// it is a `build` whose only options cannot change what the stamp
    /// certifies: `planrun build [PLAN] [TARGET...]` with at most one
    /// `-f`/`--file` and one `-j`/`--jobs`, in the forms ArgumentParser
    /// accepts for them. nil for anything else (any other option, `--`, a
    /// malformed `-j`), which then goes to ArgumentParser and `BuildCommand`.
    ///
    /// Why a hand-written reader next to ArgumentParser: building the
    /// `build` command's argument sets (reflection over a dozen option
    /// groups and a protocol-conformance lookup for each) costs more CPU
    /// than the whole stamp check, and a no-op rebuild is mostly that.
    /// Nothing is decided here that ArgumentParser would decide otherwise:
    /// every form read here means the same to it, and the probe only reads
    /// (a stamp that does not hold sends the same command line on to
    /// ArgumentParser, which parses and runs it as usual).
    init?(commandLine arguments: [String]) {
        guard arguments.first == "build" else { return nil }
        var file: String?
        var jobs: String?
        var positional: [String] = []
        var index = 1
        /// The value of an option given as `NAME VALUE` or `--long=VALUE`;
        /// nil when it is missing or looks like an option (ArgumentParser
        /// would then report an error: let it).
        func value(of argument: String, long: String) -> String? {
            if argument.hasPrefix(long + "=") { return String(argument.dropFirst(long.count + 1)) }
            index += 1
            guard index < arguments.count, !arguments[index].hasPrefix("-") else { return nil }
            return arguments[index]
        }
        while index < arguments.count {
            let argument = arguments[index]
            if !argument.hasPrefix("-") {
                positional.append(argument)
            } else if file == nil, argument == "-f" || argument == "--file" || argument.hasPrefix("--file=") {
                guard let path = value(of: argument, long: "--file"), !path.isEmpty else { return nil }
                file = path
            } else if jobs == nil, argument == "-j" || argument == "--jobs" || argument.hasPrefix("--jobs=") {
                guard let count = value(of: argument, long: "--jobs") else { return nil }
                jobs = count
            } else if jobs == nil, argument.hasPrefix("-j") {
                jobs = String(argument.dropFirst(2))
            } else {
                return nil
            }
            index += 1
        }
        // `-j` must be what `JobsOption` accepts (digits, at least 1).
        if let jobs, jobs.isEmpty || !jobs.utf8.allSatisfy({ (0x30...0x39).contains($0) }) || Int(jobs).map({ $0 < 1 }) ?? true {
            return nil
        }
        let (path, targets) = PlanArguments.resolve(file: file, arguments: positional)
        self.init(path: path, targets: targets, stateDir: nil, variables: [])
    }
}

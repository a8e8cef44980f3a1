import Foundation
import Testing
@testable import PlanRunCLI
import PlanRunCore

/// `UpToDateProbe(commandLine:)`, the reader that lets a no-op `build`
/// answer from the up-to-date stamp before ArgumentParser runs: every
/// command line it takes must mean the same to ArgumentParser and
/// `BuildCommand` (same plan, targets and state folder, and nothing the
/// stamp cannot answer), and anything else is left to them.
@Suite struct UpToDateProbeTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var arguments: [String]
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let taken: [Case] = [
        ["build"], ["build", "plan.yaml"], ["build", "sub/x.yml", "a", "b:c"], ["build", "lua"], ["build", "help"],
        ["build", "-j", "2"], ["build", "-j2", "plan.yaml"], ["build", "plan.yaml", "--jobs", "16"],
        ["build", "--jobs=3", "t"], ["build", "-f", "other.yaml"], ["build", "--file", "p.yml", "t"],
        ["build", "--file=p.yaml", "-j", "1", "x", "y"], ["build", "a", "-f", "p.yaml", "b"],
    ].map(Case.init)

    static let left: [Case] = [
        ["status"], ["plan"], ["build", "--json"], ["build", "-v"], ["build", "--force"], ["build", "-B"],
        ["build", "--only", "a"], ["build", "-n"], ["build", "--var", "cc=clang"], ["build", "--state-dir", "s"],
        ["build", "--report", "r.xml"], ["build", "-k"], ["build", "--"], ["build", "-"], ["build", "-j", "0"],
        ["build", "-j0"], ["build", "-j", "x"], ["build", "-j", "-1"], ["build", "-j"], ["build", "--jobs="],
        ["build", "-j", "1", "-j", "2"], ["build", "-f", "a.yaml", "-f", "b.yaml"], ["build", "-f"],
        ["build", "--file="], ["build", "-j=2"], ["build", "-h"], ["build", "--help"], ["build", "--color", "never"],
        ["build", "-j", "99999999999999999999999"], ["--version"], [],
    ].map(Case.init)

    @Test(arguments: taken) func takenFormsMeanTheSameToArgumentParser(_ c: Case) throws {
        let probe = try #require(UpToDateProbe(commandLine: c.arguments))
        let parsed = try PlanRunCommand.parseAsRoot(c.arguments)
        let build = try #require(parsed as? BuildCommand)
        let (path, targets) = build.planArguments.resolved
        let location = PlanLoader.location(of: path)
        #expect(probe.invocation.planFile == location.file)
        #expect(probe.invocation.targets == UpToDateStamp.Invocation(planFile: "", targets: targets, environment: [:]).targets)
        #expect(probe.invocation.variables == build.options.variables.vars)
        #expect(probe.stateDirectory == build.options.stateFolder.directory(planDirectory: location.directory))
        // What makes `BuildCommand` itself skip the stamp is never given.
        #expect(!build.force && !build.only && !build.dryRun && !build.options.json && build.options.ci.report == nil)
    }

    @Test(arguments: left) func otherFormsGoToArgumentParser(_ c: Case) {
        #expect(UpToDateProbe(commandLine: c.arguments) == nil)
    }
}

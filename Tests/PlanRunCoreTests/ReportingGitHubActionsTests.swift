import Foundation
import Testing
@testable import PlanRunCore

@Suite struct ReportingGitHubActionsTests {
    struct EscapeCase: Sendable, CustomTestStringConvertible {
        var input: String
        var data: String
        var property: String
        var testDescription: String { input.debugDescription }
    }

    static let escapeCases: [EscapeCase] = [
        .init(input: "plain text", data: "plain text", property: "plain text"),
        .init(input: "100%", data: "100%25", property: "100%25"),
        .init(input: "a\r\nb", data: "a%0D%0Ab", property: "a%0D%0Ab"),
        .init(input: "planrun: a, b", data: "planrun: a, b", property: "planrun%3A a%2C b"),
        .init(input: "%0A", data: "%250A", property: "%250A"),
        .init(input: "::error::x", data: "::error::x", property: "%3A%3Aerror%3A%3Ax"),
    ]

    @Test(arguments: escapeCases)
    func escaping(_ c: EscapeCase) {
        #expect(GitHubActions.escapeData(c.input) == c.data)
        #expect(GitHubActions.escapeProperty(c.input) == c.property)
    }

    @Test func commandLines() {
        #expect(GitHubActions.command("endgroup", message: "") == "::endgroup::\n")
        #expect(GitHubActions.command("error", [("file", "a,b.yaml"), ("line", "3")], message: "bad\nthing")
            == "::error file=a%2Cb.yaml,line=3::bad%0Athing\n")
    }

    @Test func diagnosticAnnotations() {
        let diagnostics = [
            Diagnostic(.error, at: SourceLocation(file: "/work/repo/ci/plan.yaml", line: 4, column: 7),
                       "unknown key `dependson` in subtask `b`; did you mean `depends_on`?"),
            Diagnostic(.warning, at: SourceLocation(file: "plan.yaml", line: 9, column: 1), "odd", notes: ["see here"]),
            Diagnostic(.error, at: nil, "no such file: plan.yaml"),
        ]
        let text = GitHubActions.annotations(for: diagnostics) {
            GitHubActions.workspacePath($0, workspace: "/work/repo", currentDirectory: "/work/repo/ci")
        }
        #expect(text == """
            ::error file=ci/plan.yaml,line=4,col=7::unknown key `dependson` in subtask `b`; did you mean `depends_on`?
            ::warning file=ci/plan.yaml,line=9,col=1::odd%0Anote: see here
            ::error::no such file: plan.yaml

            """)
    }

    struct PathCase: Sendable, CustomTestStringConvertible {
        var path: String
        var workspace: String?
        var cwd: String
        var expected: String
        var testDescription: String { "\(path) in \(cwd), workspace \(workspace ?? "none")" }
    }

    static let pathCases: [PathCase] = [
        .init(path: "plan.yaml", workspace: nil, cwd: "/w/sub", expected: "plan.yaml"),
        .init(path: "plan.yaml", workspace: "/w", cwd: "/w", expected: "plan.yaml"),
        .init(path: "./plan.yaml", workspace: "/w", cwd: "/w/sub", expected: "sub/plan.yaml"),
        .init(path: "/w/a/b/plan.yaml", workspace: "/w/", cwd: "/", expected: "a/b/plan.yaml"),
        .init(path: "../other/plan.yaml", workspace: "/w", cwd: "/w/sub", expected: "other/plan.yaml"),
        .init(path: "/elsewhere/plan.yaml", workspace: "/w", cwd: "/w", expected: "/elsewhere/plan.yaml"),
        .init(path: "/wx/plan.yaml", workspace: "/w", cwd: "/w", expected: "/wx/plan.yaml"),
    ]

    @Test(arguments: pathCases)
    func workspacePaths(_ c: PathCase) {
        #expect(GitHubActions.workspacePath(c.path, workspace: c.workspace, currentDirectory: c.cwd) == c.expected)
    }

    static func plan() -> Plan {
        func subtask(_ id: String, line: Int) -> Subtask {
            Subtask(id: id, run: "true", locations: SubtaskLocations(item: SourceLocation(file: "ci/plan.yaml", line: line, column: 5)))
        }
        return Plan(file: "ci/plan.yaml", directory: "/w/ci", name: "ci",
                    subtasks: [subtask("ok", line: 4), subtask("bad", line: 7), subtask("after", line: 12)])
    }

    /// Records what the wrapped reporter receives and what is written, in one stream.
    final class Stream {
        var text = ""
    }

    @Test func groupsOutputAndAnnotatesFailures() {
        let stream = Stream()
        let inner = RecordingReporter()
        let reporter = GitHubActionsReporter(wrapping: inner, plan: Self.plan(), planFile: "ci/plan.yaml") { stream.text += $0 }
        let progress = RunProgress(total: 3)
        var ok = SubtaskReport(id: "ok", agent: "shell", status: .done, output: Array("hello\n".utf8))
        ok.attempts = 1
        let bad = SubtaskReport(id: "bad", agent: "shell", status: .failed, error: "exit status 3",
                                output: Array("line 1\nline 2\n".utf8))
        let quiet = SubtaskReport(id: "after", agent: "shell", status: .done)
        reporter.report(.started(id: "ok"), progress: progress)
        reporter.report(.finished(ok), progress: progress)
        reporter.report(.finished(bad), progress: progress)
        reporter.report(.finished(quiet), progress: progress)

        #expect(stream.text == """
            ::group::ok (done)
            hello
            ::endgroup::
            ::group::bad (failed)
            line 1
            line 2
            ::endgroup::
            ::error title=planrun%3A bad failed,file=ci/plan.yaml,line=7::subtask `bad` failed: exit status 3%0Aline 1%0Aline 2

            """)
        // The wrapped reporter gets every event, with the output taken out (it is in the group).
        #expect(inner.events.count == 4)
        for event in inner.events {
            if case .finished(let report) = event { #expect(report.output.isEmpty) }
        }
    }

    @Test func failureWithoutRunningIsAnnotatedToo() {
        let stream = Stream()
        let reporter = GitHubActionsReporter(wrapping: RecordingReporter(), plan: Self.plan(), planFile: "p.yaml") { stream.text += $0 }
        let failed = SubtaskReport(id: "after", agent: "shell", status: .failed, error: "input pattern `x` matches nothing")
        reporter.report(.skipped(failed), progress: RunProgress(total: 3))
        reporter.report(.skipped(SubtaskReport(id: "ok", agent: "shell", status: .blocked, error: "dependency `after` failed")),
                        progress: RunProgress(total: 3))
        #expect(stream.text == "::error title=planrun%3A after failed,file=p.yaml,line=12::subtask `after` failed: input pattern `x` matches nothing\n")
    }

    @Test func annotationKeepsTheLastLinesOfLongOutput() {
        let reporter = GitHubActionsReporter(wrapping: RecordingReporter(), plan: Self.plan(), planFile: "p.yaml") { _ in }
        reporter.annotationLines = 3
        let output = (1...10).map { "out \($0)" }.joined(separator: "\r\n") + "\r\n"
        let report = SubtaskReport(id: "bad", agent: "shell", status: .failed, error: "exit status 1")
        #expect(reporter.annotation(for: report, output: Array(output.utf8))
            == "::error title=planrun%3A bad failed,file=p.yaml,line=7::subtask `bad` failed: exit status 1%0Aout 8%0Aout 9%0Aout 10\n")
    }

    /// With a real TextReporter inside: its line comes first, then the group.
    @Test func textReporterLineThenGroup() {
        let stream = Stream()
        let text = TextReporter(isTerminal: false) { stream.text += $0 }
        let reporter = GitHubActionsReporter(wrapping: text, plan: Self.plan(), planFile: "p.yaml") { stream.text += $0 }
        let start = Date()
        let ok = SubtaskReport(id: "ok", agent: "shell", status: .done, attempts: 1, startedAt: start,
                               completedAt: start.addingTimeInterval(1.5), output: Array("hi".utf8))
        reporter.report(.finished(ok), progress: RunProgress(total: 3, finished: 1))
        #expect(stream.text == "[1/3] done ok (1.50s)\n::group::ok (done)\nhi\n::endgroup::\n")
    }
}

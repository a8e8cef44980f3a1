import Foundation
import Testing
@testable import PlanRunCore

/// The up-to-date stamp (`UpToDateStamp`): the shortcut may only ever say
/// "nothing to do" when a full build would decide every subtask `cached`.
/// Each case builds a real plan twice (real processes, real SQLite), writes
/// the stamp, changes one thing, and compares the stamp's answer with what
/// the per-subtask path decides.
@Suite struct CachingStampTests {
    static let planText = """
        version: 1
        name: stamp
        subtasks:
          - id: gen
            run: mkdir -p out && cat src/*.txt > out/all.txt
            inputs: [src/*.txt]
            outputs: [out/all.txt]
            env_inputs: [STAMP_MODE]
          - id: tree
            run: mkdir -p out/tree && cp out/all.txt out/tree/a.txt && echo x > out/tree/b.txt
            outputs: [out/tree]
            depends_on: [gen]
          - id: deep
            run: mkdir -p out && find data -type f | sort > out/list.txt
            inputs: [data]
            outputs: [out/list.txt]

        """

    static let environment = ["STAMP_MODE": "a", "UNRELATED": "1"]

    /// A plan folder with inputs, built twice: the second build decides
    /// every subtask `cached` and writes the stamp.
    static func prepared() async throws -> (CachingTempDir, UpToDateStamp.Invocation) {
        let dir = CachingTempDir()
        dir.write("plan.yaml", planText)
        dir.write("src/a.txt", "alpha\n")
        dir.write("src/b.txt", "beta\n")
        dir.write("data/one.txt", "1\n")
        dir.write("data/sub/two.txt", "2\n")
        let invocation = UpToDateStamp.Invocation(planFile: dir.url("plan.yaml"), targets: [], environment: environment)
        let first = try await build(dir, invocation)
        #expect(first.wroteStamp == false)
        #expect(first.summary.reports.allSatisfy { $0.status == .done })
        let second = try await build(dir, invocation, stampNow: FileDigester.now() + 10_000_000_000)
        #expect(second.summary.reports.allSatisfy { $0.status == .cached && $0.reason == .cached })
        #expect(second.wroteStamp)
        #expect(UpToDateStamp.check(invocation, stateDirectory: dir.url(".planrun")) == 3)
        // Later changes must land in another timestamp tick than the files
        // the stamp recorded (the racy window, skipped above, guards that
        // in real builds).
        try await Task.sleep(for: .milliseconds(30))
        return (dir, invocation)
    }

    /// A build as `planrun build` runs it: the stamp removed under the
    /// lock, the content cache wrapped for stamping. `stampNow` moves the
    /// racy window's clock (files just written are otherwise too recent).
    static func build(_ dir: CachingTempDir, _ invocation: UpToDateStamp.Invocation, stampNow: Int64? = nil)
        async throws -> (summary: RunSummary, wroteStamp: Bool, stamping: StampingBuildCache?) {
        let plan = try PlanLoader.load(path: dir.url("plan.yaml"))
        var stamping: StampingBuildCache?
        let summary = try await BuildSession.run(
            plan: plan,
            configuration: RunConfiguration(jobs: 2, environment: invocation.environment, killGrace: .milliseconds(200)),
            makeCache: { directory in
                try UpToDateStamp.remove(stateDirectory: directory)
                let log = StatLog()
                let local = try ContentCache.open(plan: plan, stateDirectory: directory, callerEnvironment: invocation.environment,
                                                  statLog: log)
                let cache = StampingBuildCache(wrapping: local, log: log, plan: plan, stateDirectory: directory,
                                               invocation: invocation)
                stamping = cache
                return cache
            },
            canceller: RunCanceller(), reporter: RecordingReporter())
        var wrote = FileManager.default.fileExists(atPath: UpToDateStamp.path(stateDirectory: dir.url(".planrun")))
        if let stampNow, !wrote { wrote = stamping?.writeStampIfUpToDate(now: stampNow) ?? false }
        return (summary, wrote, stamping)
    }

    /// Whether the per-subtask path (a read-only preview) finds every
    /// subtask `cached`.
    static func fullCheckSaysCached(_ dir: CachingTempDir, environment: [String: String]) async throws -> Bool {
        let plan = try PlanLoader.load(path: dir.url("plan.yaml"))
        let cache = try ContentCache.open(plan: plan, stateDirectory: dir.url(".planrun"),
                                          callerEnvironment: environment, readOnly: true)
        let graph = TaskGraph(plan: plan)
        let decisions = await cache.preview(graph: graph, selected: [Bool](repeating: true, count: graph.count))
        return decisions.count == graph.count && decisions.values.allSatisfy {
            if case .success(.upToDate(let outcome)) = $0 { return outcome.reason == .cached }
            return false
        }
    }

    enum Change: String, CaseIterable, CustomTestStringConvertible {
        case nothing, unrelatedEnvironment, envInput, inputSameSize, inputAppended, inputTouched, inputChmod,
             inputReplacedSameContent, globFileAdded, globFileRemoved, folderInputFileAdded, outputRemoved,
             outputEdited, folderOutputFileEdited, folderOutputFileAdded, planEdited, stateRemoved

        var testDescription: String { rawValue }

        /// Changes that must make a build do work (so the stamp must not hold).
        var matters: Bool? {
            switch self {
            case .nothing, .unrelatedEnvironment: false
            case .inputTouched, .inputChmod, .inputReplacedSameContent: nil // content same: either answer is safe
            default: true
            }
        }

        func apply(_ dir: CachingTempDir, _ environment: inout [String: String]) {
            switch self {
            case .nothing: break
            case .unrelatedEnvironment: environment["UNRELATED"] = "2"
            case .envInput: environment["STAMP_MODE"] = "b"
            case .inputSameSize: dir.write("src/a.txt", "ALPHA\n")
            case .inputAppended: dir.write("src/a.txt", "alpha and more\n")
            case .inputTouched: dir.age("src/a.txt", seconds: 50)
            case .inputChmod: chmod(dir.url("src/a.txt"), 0o755)
            case .inputReplacedSameContent:
                dir.write("src/a.tmp", "alpha\n")
                rename(dir.url("src/a.tmp"), dir.url("src/a.txt"))
            case .globFileAdded: dir.write("src/c.txt", "gamma\n")
            case .globFileRemoved: dir.remove("src/b.txt")
            case .folderInputFileAdded: dir.write("data/sub/three.txt", "3\n")
            case .outputRemoved: dir.remove("out/list.txt")
            case .outputEdited: dir.write("out/all.txt", "edited\n")
            case .folderOutputFileEdited: dir.write("out/tree/b.txt", "y\n")
            case .folderOutputFileAdded: dir.write("out/tree/c.txt", "new\n")
            case .planEdited:
                dir.write("plan.yaml", CachingStampTests.planText.replacingOccurrences(of: "echo x", with: "echo z"))
            case .stateRemoved:
                for name in ["state.db", "state.db-wal", "state.db-shm"] { dir.remove(".planrun/" + name) }
            }
        }
    }

    @Test(arguments: Change.allCases)
    func stampHoldsOnlyWhenABuildWouldRunNothing(_ change: Change) async throws {
        let (dir, invocation) = try await Self.prepared()
        var environment = invocation.environment
        change.apply(dir, &environment)
        let now = UpToDateStamp.Invocation(planFile: invocation.planFile, targets: [], environment: environment)
        let stampSays = UpToDateStamp.check(now, stateDirectory: dir.url(".planrun")) != nil
        let fullSays = try await Self.fullCheckSaysCached(dir, environment: environment)
        // The safety property: the stamp never claims more than the full check.
        if stampSays { #expect(fullSays, "the stamp held although a build would do work") }
        switch change.matters {
        case true?: #expect(!fullSays, "the change should make the build do work")
        case false?:
            #expect(fullSays)
            #expect(stampSays, "the stamp should survive a change that does not matter")
        case nil: break
        }
        // And a real build agrees with the full check.
        let rebuilt = try await Self.build(dir, now)
        #expect(rebuilt.summary.reports.allSatisfy { $0.status == .cached && $0.reason == .cached } == fullSays)
    }

    @Test func otherTargetsOrABuildThatRanDoNotUseTheStamp() async throws {
        let (dir, invocation) = try await Self.prepared()
        let state = dir.url(".planrun")
        let targeted = UpToDateStamp.Invocation(planFile: invocation.planFile, targets: ["gen"], environment: invocation.environment)
        #expect(UpToDateStamp.check(targeted, stateDirectory: state) == nil)
        let elsewhere = UpToDateStamp.Invocation(planFile: dir.url("other.yaml"), targets: [], environment: invocation.environment)
        #expect(UpToDateStamp.check(elsewhere, stateDirectory: state) == nil)

        // A build that runs something removes the stamp and writes none.
        dir.write("src/a.txt", "changed\n")
        let ran = try await Self.build(dir, invocation, stampNow: FileDigester.now() + 10_000_000_000)
        #expect(ran.summary.reports.contains { $0.status == .done })
        #expect(!ran.wroteStamp)
        #expect(UpToDateStamp.check(invocation, stateDirectory: state) == nil)
    }

    @Test func recentFilesKeepTheStampFromBeingWritten() async throws {
        let dir = CachingTempDir()
        dir.write("plan.yaml", Self.planText)
        dir.write("src/a.txt", "alpha\n")
        dir.write("data/one.txt", "1\n")
        let invocation = UpToDateStamp.Invocation(planFile: dir.url("plan.yaml"), targets: [], environment: Self.environment)
        _ = try await Self.build(dir, invocation)
        // A moment after an output was written: inside the racy window.
        let justAfter = try #require(FileStat.of(dir.url("out/all.txt"))).ctimeNs + 500_000_000
        let second = try await Self.build(dir, invocation)
        #expect(second.summary.reports.allSatisfy { $0.status == .cached })
        let stamping = try #require(second.stamping)
        try UpToDateStamp.remove(stateDirectory: dir.url(".planrun"))
        #expect(!stamping.writeStampIfUpToDate(now: justAfter))
        #expect(UpToDateStamp.check(invocation, stateDirectory: dir.url(".planrun")) == nil)
        // Once the window has passed, the same observations make a stamp.
        #expect(stamping.writeStampIfUpToDate(now: FileDigester.now() + 3_000_000_000))
        #expect(UpToDateStamp.check(invocation, stateDirectory: dir.url(".planrun")) == 3)
    }

    @Test func planWithUncachedSubtaskNeverGetsAStamp() async throws {
        let dir = CachingTempDir()
        dir.write("plan.yaml", """
            version: 1
            name: uncached
            subtasks:
              - id: always
                run: echo hi
                cache: false

            """)
        let invocation = UpToDateStamp.Invocation(planFile: dir.url("plan.yaml"), targets: [], environment: [:])
        _ = try await Self.build(dir, invocation)
        let second = try await Self.build(dir, invocation, stampNow: FileDigester.now() + 10_000_000_000)
        #expect(second.summary.reports.allSatisfy { $0.status == .done })
        #expect(!second.wroteStamp)
    }

    @Test func damagedStampIsIgnored() async throws {
        let (dir, invocation) = try await Self.prepared()
        let path = UpToDateStamp.path(stateDirectory: dir.url(".planrun"))
        var bytes = try #require(FileManager.default.contents(atPath: path))
        bytes = bytes.prefix(bytes.count - 7)
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(UpToDateStamp.check(invocation, stateDirectory: dir.url(".planrun")) == nil)
        try Data("PLANRUN-UPTODATE-1\ngarbage".utf8).write(to: URL(fileURLWithPath: path))
        #expect(UpToDateStamp.check(invocation, stateDirectory: dir.url(".planrun")) == nil)
        try Data().write(to: URL(fileURLWithPath: path))
        #expect(UpToDateStamp.check(invocation, stateDirectory: dir.url(".planrun")) == nil)
    }
}

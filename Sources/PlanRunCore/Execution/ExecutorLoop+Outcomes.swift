import Foundation

/// How subtasks end (an attempt recorded or retried, a failed cache check,
/// a failed dependency, a run that stopped) and how the run itself ends.
extension ExecutorLoop {
    /// Records an attempt; returns the next attempt when it is retried.
    /// `slotPassed`: `node`'s slot was already given to another subtask.
    mutating func record(_ node: Int, attempt: Int, outcome: AttemptOutcome, slotPassed: Bool) async -> Launch? {
        requests.attemptEnded(node)
        let subtask = plan.subtasks[node]
        var status = outcome.status, error = outcome.error
        var resultDigest: String?
        if status == .succeeded {
            do {
                let recorded = try await executor.cache.record(subtask, key: cacheKeys[node], result: outcome.result)
                resultDigest = recorded.resultDigest
                if let entry = recorded.history { recorder.historySaved(entry, for: subtask.id) }
            } catch let recordError {
                status = .failed
                if case CacheError.depfile = recordError {
                    error = "\(recordError)"
                } else {
                    error = "cannot record the result: \(recordError)"
                }
            }
        }
        recorder.attemptFinished(subtask.id, attempt: attempt, status: status, outcome: outcome, error: error,
                                 resultDigest: resultDigest, cacheKey: cacheKeys[node]?.digest)
        reports[node].output = outcome.output
        reports[node].attempts = attempt

        // A failed or timed-out attempt is retried while attempts remain.
        if status == .failed || status == .timedOut, outcome.retryable, attempt <= plan.retries(for: subtask),
           !cancelled, !Task.isCancelled {
            let delay = executor.configuration.retryDelay(backoff: plan.retryBackoff(for: subtask), afterAttempt: attempt)
            reports[node].attempts = attempt + 1
            recorder.attemptStarted(subtask.id, attempt: attempt + 1,
                                    at: Date().addingTimeInterval(delay.inSeconds), reason: nil)
            reporter.report(.retrying(id: subtask.id, attempt: attempt, error: error ?? "failed", delay: delay),
                            progress: progress)
            return Launch(node: node, request: requests.request(for: node, attempt: attempt + 1, reports: reports),
                          delay: delay)
        }

        if !slotPassed { endRunning(node) }
        finished += 1
        reports[node].completedAt = outcome.completedAt
        reports[node].error = error
        switch status {
        case .succeeded:
            reports[node].status = .done
            reports[node].result = outcome.result
            digests[node] = resultDigest
        case .cancelled:
            reports[node].status = .cancelled
        case .failed, .timedOut:
            reports[node].status = .failed
            failedCount += 1
        }
        recorder.subtaskFinished(reports[node], resultDigest: resultDigest, cacheKey: cacheKeys[node]?.digest, reason: nil)
        reporter.report(.finished(reports[node]), progress: progress)
        switch reports[node].status {
        case .done:
            // Ahead of any backlog: they are on the path this attempt was on.
            let released = scheduler.release(node)
            if !released.isEmpty { undecided.prepend(released) }
        case .failed:
            blockDependents(of: node)
        default:
            break
        }
        return nil
    }

    /// A subtask failed without running (the cache could not decide):
    /// reported like a failure, and its dependents are blocked.
    mutating func fail(_ node: Int, _ message: String) {
        let now = Date()
        reports[node].status = .failed
        reports[node].error = message
        reports[node].startedAt = reports[node].startedAt ?? now
        reports[node].completedAt = now
        finished += 1
        failedCount += 1
        recorder.subtaskFinished(reports[node], resultDigest: nil, cacheKey: nil, reason: nil)
        reporter.report(.skipped(reports[node]), progress: progress)
        blockDependents(of: node)
    }

    /// Blocks every (transitive) dependent of a failed subtask; without
    /// `--keep-going` the first failure also stops new work (`stopping`).
    mutating func blockDependents(of node: Int) {
        let failedID = plan.subtasks[node].id
        if firstFailure == nil { firstFailure = failedID }
        var blocked: [Int] = []
        var work = graph.dependents[node]
        let now = Date()
        while let dependent = work.popLast() {
            guard selected[dependent], reports[dependent].status == .pending else { continue }
            reports[dependent].status = .blocked
            reports[dependent].error = "dependency `\(failedID)` failed"
            reports[dependent].completedAt = now
            finished += 1
            blocked.append(dependent)
            work.append(contentsOf: graph.dependents[dependent])
        }
        recorder.subtasksEnded(blocked.map { reports[$0] }, at: now)
        for dependent in blocked { reporter.report(.skipped(reports[dependent]), progress: progress) }
    }

    /// Labels what never started, lets the cache finish its writes, records
    /// the run's end and returns the summary.
    mutating func finishRun() async -> RunSummary {
        let now = Date()
        let error = cancelled
            ? "not started: the run was cancelled"
            : recorder.failure.map { "not started: \($0)" }
            ?? "not started: the build stopped after \(firstFailure.map { "`\($0)`" } ?? "a subtask") failed (use --keep-going to continue independent work)"
        var leftovers: [Int] = []
        for node in 0..<graph.count where selected[node] && reports[node].status == .pending {
            reports[node].status = cancelled ? .cancelled : .blocked
            reports[node].error = error
            reports[node].completedAt = now
            finished += 1
            leftovers.append(node)
            reporter.report(.skipped(reports[node]), progress: progress)
        }
        recorder.subtasksEnded(leftovers.map { reports[$0] }, at: now)
        // Uploads finish and the stat cache is written before the run's end
        // is: a cache write that fails fails the run.
        do { try await executor.cache.finishBuild() } catch {
            recorder.noteFailure(error is CacheError ? "\(error)" : "cannot write the cache: \(error)")
        }
        // A background commit that failed is known before the end is written.
        recorder.commitNow()

        let chosen = reports.indices.filter { selected[$0] }.map { reports[$0] }
        func verdict() -> (RunStatus, String?) {
            if cancelled { return (.cancelled, cancelReason) }
            if let failure = recorder.failure { return (.failed, failure) }
            return (chosen.contains { !$0.status.isSuccess } ? .failed : .completed, nil)
        }
        var (status, reason) = verdict()
        let completedAt = Date()
        recorder.runFinished(status: status, reason: reason, at: completedAt)
        // When the end could not be recorded, the next build finds the run
        // unfinished and closes it; this one says why it failed.
        (status, reason) = verdict()
        let summary = RunSummary(plan: plan.name, runID: executor.runID, status: status, reason: reason,
                                 reports: chosen, startedAt: startedAt, completedAt: completedAt)
        reporter.report(.runFinished(summary), progress: progress)
        reporter.flush()
        return summary
    }
}

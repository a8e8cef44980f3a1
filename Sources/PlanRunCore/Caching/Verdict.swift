/// What to do with a cacheable subtask whose key is known: a pure function
/// of the key, the force, the subtask's last successful state and whether
/// its outputs are as that state left them. The caller does the I/O before
/// (reading history, checking outputs) and after (restoring, running).
package enum Verdict: Sendable, Hashable {
    /// Skip it (`cached`): its key equals the last success's and its
    /// outputs are intact.
    case skip
    /// Restore it from the store when `ac/KEY` is there; otherwise run it
    /// for `otherwise`.
    case restore(otherwise: RunReason)
    /// Run it, for this reason.
    case run(RunReason)

    /// The verdict for `key`. `last`: the subtask's last successful state
    /// (nil: it never succeeded). `outputsIntact`: whether the outputs
    /// `last` records are as it left them (needed only when `last` has
    /// this key). `previous`: `last`'s key with its components (needed only
    /// when `last` has another key; nil when they were not recorded).
    package static func of(
        key: ActionKey, forced: Bool, last: HistoryEntry?, outputsIntact: Bool?, previous: CacheKey?, dependsOn: [String]
    ) -> Verdict {
        if forced { return .run(.forced) }
        guard let last else { return .restore(otherwise: .neverRan) }
        if last.key == key.digest {
            return outputsIntact == true ? .skip : .restore(otherwise: .outputsMissing)
        }
        guard let previous else { return .restore(otherwise: .definitionChanged) }
        return .restore(otherwise: key.cacheKey.reason(comparedTo: previous, dependsOn: dependsOn) ?? .definitionChanged)
    }
}

/// Why a subtask would run or be skipped (llbuild's `Rule::RunReason`,
/// ninja's `-d explain`). The dry run, `explain` and the run log show it.
package enum RunReason: Sendable, Hashable, CustomStringConvertible {
    /// Skipped: the key equals the last successful run's and outputs are intact.
    case cached
    /// Skipped: outputs and result restored from the cache store.
    case restored
    case neverRan
    case inputChanged(path: String)
    /// A file the subtask's depfile listed last time changed or is gone.
    case discoveredInputChanged(path: String)
    case commandChanged
    case environmentChanged
    case dependencyChanged(id: String)
    case outputsMissing
    case forced
    case cacheDisabled
    /// Any other key component changed (agent definition, `with`, patterns...).
    case definitionChanged
    /// The key could not be computed (an input pattern matching nothing, an
    /// unreadable file); the message says why. A build would fail it.
    case cannotCheck(String)

    /// True when the subtask would not run.
    package var skips: Bool {
        switch self {
        case .cached, .restored: true
        default: false
        }
    }

    package var description: String {
        switch self {
        case .cached: "cached"
        case .restored: "restored from cache"
        case .neverRan: "never ran"
        case .inputChanged(let path): "input \(path) changed"
        case .discoveredInputChanged(let path): "discovered input \(path) changed"
        case .commandChanged: "command changed"
        case .environmentChanged: "environment changed"
        case .dependencyChanged(let id): "dependency \(id) changed"
        case .outputsMissing: "outputs missing"
        case .forced: "forced"
        case .cacheDisabled: "cache disabled"
        case .definitionChanged: "definition changed"
        case .cannotCheck(let message): message
        }
    }
}

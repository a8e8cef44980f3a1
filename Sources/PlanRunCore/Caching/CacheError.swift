/// Problems met while computing keys, hashing files or using the cache
/// store. All message text lives in `description` (lowercase, no trailing
/// period, names in backticks).
package enum CacheError: Error, Sendable, Hashable, CustomStringConvertible {
    case missingFile(path: String)
    case isDirectory(path: String)
    case notAFile(path: String)
    case unreadable(path: String, reason: String)
    /// An input pattern (not marked optional with a leading `-`) matched
    /// nothing. `location`: the pattern's place in the plan; `suggestion`:
    /// the existing path closest to a plain path (`MissingInput`).
    case inputNotFound(subtask: String, pattern: String, location: SourceLocation? = nil, suggestion: String? = nil)
    case invalidPattern(pattern: String, reason: String)
    /// A subtask reported success but a declared output does not exist.
    case outputMissing(subtask: String, path: String)
    /// A path that would leave the plan's folder.
    case pathEscapes(path: String)
    case storeWrite(reason: String)
    case stateRead(reason: String)
    case stateWrite(reason: String)
    /// A subtask's depfile is missing, unreadable or does not parse, or a
    /// file it lists cannot be hashed: the attempt fails.
    case depfile(path: String, reason: String)

    package var description: String {
        switch self {
        case .missingFile(let path): "no such file: `\(path)`"
        case .isDirectory(let path): "`\(path)` is a folder where a file was expected"
        case .notAFile(let path): "`\(path)` is not a regular file"
        case .unreadable(let path, let reason): "cannot read `\(path)`: \(reason)"
        case .inputNotFound(let subtask, let pattern, let location, let suggestion):
            (location.map { "\($0): " } ?? "") + "input `\(pattern)` of subtask `\(subtask)` matches no file; "
                + (suggestion.map { "did you mean `\($0)`?" }
                    ?? "mark it optional with a leading `-` (`-\(pattern)`) if it may be absent")
        case .invalidPattern(let pattern, let reason): "invalid input pattern `\(pattern)`: \(reason)"
        case .outputMissing(let subtask, let path):
            "subtask `\(subtask)` succeeded but did not create its declared output `\(path)`"
        case .pathEscapes(let path): "refusing path `\(path)`: it leaves the plan's folder"
        case .storeWrite(let reason): "cannot write the cache store: \(reason)"
        case .stateRead(let reason): "cannot read the state database: \(reason)"
        case .stateWrite(let reason): "cannot write the state database: \(reason)"
        case .depfile(let path, let reason): "depfile \(path): \(reason)"
        }
    }
}

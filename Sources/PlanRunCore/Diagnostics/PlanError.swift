/// Every semantic problem a plan (or its files) can have. All message text
/// lives in `description`; a `Diagnostic` adds the location.
/// Style: lowercase, no trailing period, names in backticks.
package enum PlanError: Error, Sendable, Hashable, CustomStringConvertible {
    // Files
    case fileNotFound(path: String)
    case isDirectory(path: String)
    case unreadable(path: String, reason: String)
    case notUTF8
    case emptyFile
    // YAML
    case yamlSyntax(String)
    case duplicateKey(key: String, firstLine: Int)
    case aliasNotQuoted(text: String)
    case unknownAlias(name: String)
    case aliasExpansionLimit(limit: Int)
    case nestingTooDeep(limit: Int)
    case multipleDocuments
    case invalidMergeKey
    case complexKey
    case unsupportedTag(tag: String)
    case tagMismatch(tag: String, expected: String, found: String)
    case integerOutOfRange(text: String)
    case numberNotFinite(key: String, text: String)
    case keysDifferOnlyInNormalization(key: String, first: String, firstLine: Int)
    // Shape
    case wrongType(key: String, expected: String, found: String)
    case wrongEntryType(key: String, expected: String, found: String)
    case notAMapping(found: String)
    case unknownKey(key: String, context: String, suggestion: String?)
    case missingKey(key: String, context: String)
    case unsupportedVersion(found: String)
    case invalidValue(key: String, value: String, expected: String)
    case invalidDuration(key: String, value: String)
    case emptySubtasks
    // Semantics
    case invalidID(id: String)
    case duplicateID(id: String, firstLine: Int)
    case unknownDependency(subtask: String, dependency: String, suggestion: String?)
    case selfDependency(id: String)
    case duplicateDependency(subtask: String, dependency: String)
    case unknownAgent(name: String, suggestion: String?)
    case missingRun(subtask: String)
    case missingCommand(agent: String)
    case outputEscapes(path: String)
    /// An output or input inside the state folder (`.planrun`), whose files
    /// belong to planrun (state is not an output). `key`: `outputs` or `inputs`.
    case insideStateFolder(key: String, path: String)
    case duplicateOutput(path: String, first: String, second: String)
    case cycle(path: [String])
    case unknownTarget(name: String, suggestion: String?)
    case inputNotFound(subtask: String, path: String, suggestion: String?)
    // Includes
    case includeNotFound(path: String)
    case includeOutside(path: String)
    /// The plan files from the top-level one to the one included again,
    /// relative to the top-level plan's folder.
    case includeCycle(chain: [String])
    case undeclaredIncludeVariable(name: String, plan: String, suggestion: String?)
    // Expressions, variables, foreach and matrix (§8)
    case expressionNotAllowed
    case expressionNotQuoted(text: String)
    case unterminatedExpression
    case emptyExpression
    case unknownName(name: String, suggestion: String?)
    case nameNotAvailable(name: String, needs: String)
    case onlyVariablesHere(name: String)
    case variableUsedBeforeDefinition(name: String)
    case invalidName(key: String, name: String)
    case undeclaredVariable(name: String, suggestion: String?)
    case unknownVariableNamespace(name: String, namespace: String, suggestion: String?)
    case foreachAndMatrix
    case excludeWithoutMatrix
    case notAListVariable(name: String)
    case globMatchesNothing(pattern: String)
    case invalidGlob(pattern: String, reason: String)
    case emptyInstanceKey(group: String)
    case controlCharacterInInstanceKey(id: String)
    case duplicateInstance(id: String)
    case unknownMatrixKey(key: String, suggestion: String?)

    package var description: String {
        switch self {
        case .fileNotFound(let path): "no such file: \(path)"
        case .isDirectory(let path): "\(path) is a directory, not a plan file"
        case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
        case .notUTF8: "the file is not valid UTF-8 text"
        case .emptyFile: "the plan file is empty; expected a mapping with `version` and `subtasks`"
        case .yamlSyntax(let message): "invalid YAML: \(message)"
        case .duplicateKey(let key, let firstLine): "duplicate key `\(key)` (first defined on line \(firstLine))"
        case .aliasNotQuoted(let text):
            "`\(text)` is read as a YAML alias; quote the pattern: \"\(text)\""
        case .unknownAlias(let name): "unknown YAML alias `*\(name)`"
        case .aliasExpansionLimit(let limit): "YAML aliases expand to more than \(limit) nodes; refusing to expand further"
        case .nestingTooDeep(let limit): "YAML nesting is deeper than \(limit) levels"
        case .multipleDocuments: "the file holds more than one YAML document; a plan is one document"
        case .invalidMergeKey: "the merge key `<<` needs a mapping or a list of mappings"
        case .complexKey: "mapping keys must be plain text, not lists or mappings"
        case .unsupportedTag(let tag):
            "unsupported YAML tag `\(tag)`; only `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!seq` and `!!map` are accepted"
        case .tagMismatch(let tag, let expected, let found): "the tag `\(tag)` needs \(expected), not \(found)"
        case .integerOutOfRange(let text):
            "integer `\(text)` does not fit in 64 bits (-9223372036854775808 to 9223372036854775807)"
        case .numberNotFinite(let key, let text):
            "number `\(text)` in `\(key)` is infinite or not a number, which JSON cannot hold"
        case .keysDifferOnlyInNormalization(let key, let first, let firstLine):
            "key `\(key)` differs from key `\(first)` (line \(firstLine)) only in Unicode normalization; "
                + "planrun keeps keys exact and cannot pass both on; rename one"
        case .wrongType(let key, let expected, let found): "`\(key)` must be \(expected), not \(found)"
        case .wrongEntryType(let key, let expected, let found):
            "every entry of `\(key)` must be \(expected), not \(found)"
        case .notAMapping(let found):
            "a plan must be a mapping with keys such as `version` and `subtasks`, not \(found)"
        case .unknownKey(let key, let context, let suggestion):
            "unknown key `\(key)` in \(context)" + Self.didYouMean(suggestion)
        case .missingKey(let key, let context): "missing required key `\(key)` in \(context)"
        case .unsupportedVersion(let found): "unsupported plan version \(found); only version 1 is accepted"
        case .invalidValue(let key, let value, let expected): "invalid value `\(value)` for `\(key)`; expected \(expected)"
        case .invalidDuration(let key, let value):
            "invalid duration `\(value)` for `\(key)`; use forms like 500ms, 10s, 5m, 2h or 1m30s"
        case .emptySubtasks: "`subtasks` must list at least one subtask"
        case .invalidID(let id): "invalid subtask id `\(id)`; use letters, digits, `_`, `.` and `-`"
        case .duplicateID(let id, let firstLine): "duplicate subtask id `\(id)` (first defined on line \(firstLine))"
        case .unknownDependency(let subtask, let dependency, let suggestion):
            "subtask `\(subtask)` depends on unknown subtask `\(dependency)`" + Self.didYouMean(suggestion)
        case .selfDependency(let id): "subtask `\(id)` depends on itself"
        case .duplicateDependency(let subtask, let dependency):
            "subtask `\(subtask)` lists dependency `\(dependency)` more than once"
        case .unknownAgent(let name, let suggestion):
            "agent `\(name)` is not defined" + Self.didYouMean(suggestion)
        case .missingRun(let subtask): "subtask `\(subtask)` uses a shell agent but has no `run`"
        case .missingCommand(let agent): "agent `\(agent)` of kind `command` needs a non-empty `command`"
        case .outputEscapes(let path): "output `\(path)` leaves the plan's folder; use a relative path inside it"
        case .insideStateFolder(let key, let path):
            "\(key == "inputs" ? "input" : "output") `\(path)` is inside the state folder `.planrun`, which belongs to planrun; use a path outside it"
        case .duplicateOutput(let path, let first, let second):
            "output `\(path)` of subtask `\(second)` is already declared by subtask `\(first)`"
        case .cycle(let path): "cycle: " + path.joined(separator: " -> ")
        case .unknownTarget(let name, let suggestion):
            "no subtask named `\(name)`" + Self.didYouMean(suggestion)
        case .includeNotFound(let path): "included plan `\(path)` does not exist"
        case .includeOutside(let path):
            "included plan `\(path)` is outside the top-level plan's folder; include paths must stay inside it"
        case .includeCycle(let chain): "include cycle: " + chain.joined(separator: " -> ")
        case .undeclaredIncludeVariable(let name, let plan, let suggestion):
            "variable `\(name)` is not declared by `\(plan)`" + Self.didYouMean(suggestion)
        case .inputNotFound(let subtask, let path, let suggestion):
            "input `\(path)` of subtask `\(subtask)` does not exist and is no subtask's output"
                + (suggestion.map { "; did you mean `\($0)`?" }
                    ?? "; mark it optional with a leading `-` (`-\(path)`) if it may be absent")
        case .expressionNotAllowed: "expressions are not allowed here; write `$${{` for a literal `${{`"
        case .expressionNotQuoted(let text):
            "`${{` inside `[...]` or `{...}` is read as YAML syntax; quote the string: \"\(text)\""
        case .unterminatedExpression: "unterminated expression: `${{` without a closing `}}`"
        case .emptyExpression: "empty expression `${{ }}`"
        case .unknownName(let name, let suggestion): "unknown name `\(name)`" + Self.didYouMean(suggestion)
        case .nameNotAvailable(let name, let needs): "`\(name)` is defined only in a subtask with `\(needs)`"
        case .onlyVariablesHere(let name): "`\(name)` cannot be used here; only `vars.*` can"
        case .variableUsedBeforeDefinition(let name):
            "`vars.\(name)` is used before it is defined; a variable may use only variables defined above it"
        case .invalidName(let key, let name):
            "invalid name `\(name)` in `\(key)`; use letters, digits, `_` and `-`"
        case .unknownVariableNamespace(let name, let namespace, let suggestion):
            "--var \(name): the plan includes no plan as `\(namespace)`" + Self.didYouMean(suggestion)
        case .undeclaredVariable(let name, let suggestion):
            "--var \(name): the plan declares no variable `\(name)`" + Self.didYouMean(suggestion)
        case .foreachAndMatrix: "a subtask has at most one of `foreach` and `matrix`"
        case .excludeWithoutMatrix: "`exclude` needs `matrix`"
        case .notAListVariable(let name):
            "`foreach` needs a list; `vars.\(name)` is not a list variable"
        case .globMatchesNothing(let pattern):
            "`foreach` glob `\(pattern)` matches no file; mark it optional with a leading `-` (`-\(pattern)`) if it may match nothing"
        case .invalidGlob(let pattern, let reason): "invalid glob `\(pattern)`: \(reason)"
        case .emptyInstanceKey(let group): "group `\(group)` has an instance with an empty key"
        case .controlCharacterInInstanceKey(let id): "instance id `\(id.debugDescription.dropFirst().dropLast())` contains a control character"
        case .duplicateInstance(let id): "instance `\(id)` appears more than once"
        case .unknownMatrixKey(let key, let suggestion):
            "`exclude` names `\(key)`, which is not a key of `matrix`" + Self.didYouMean(suggestion)
        }
    }

    private static func didYouMean(_ suggestion: String?) -> String {
        suggestion.map { "; did you mean `\($0)`?" } ?? ""
    }
}

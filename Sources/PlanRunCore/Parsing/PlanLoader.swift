import Foundation

/// Reads a plan file into a validated `Plan`: file checks,
/// then `YAMLReader` (text -> nodes), `PlanBuilder` (nodes -> model, types
/// and keys) and `PlanValidator` (references, outputs, cycles). Every problem
/// found is collected and thrown together, sorted by location.
package enum PlanLoader {
    /// Loads and validates the plan at `path` with the `--var` values in
    /// `variables`. Throws every problem found, in source order, as
    /// `PlanDiagnostics` (`isUsageError` when a `--var` names no declared
    /// variable).
    package static func load(path: String, variables: VariableOverrides = VariableOverrides()) throws(PlanDiagnostics) -> Plan {
        var bytes: [UInt8]
        switch readFile(path) {
        case .success(let b): bytes = b
        case .failure(let error): throw PlanDiagnostics([Diagnostic(error, at: nil)])
        }
        return try load(releasing: &bytes, file: path, directory: location(of: path).directory, variables: variables)
    }

    /// The plan file at `path` (relative to the current folder or absolute)
    /// as an absolute, standardized path, and the folder it is in: the
    /// plan's folder, where its subtasks run and `.planrun` goes.
    package static func location(of path: String) -> (file: String, directory: String) {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        return (url.path, url.deletingLastPathComponent().standardizedFileURL.path)
    }

    /// `path` with every link resolved; nil when it does not exist.
    package static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Loads and validates plan text. `file` is used in locations; `directory`
    /// is the plan's folder (absolute).
    package static func load(
        bytes: [UInt8], file: String, directory: String, variables: VariableOverrides = VariableOverrides()
    ) throws(PlanDiagnostics) -> Plan {
        var bytes = bytes
        return try load(releasing: &bytes, file: file, directory: directory, variables: variables)
    }

    /// As `load(bytes:file:directory:)`; empties `bytes` once the document is
    /// read, so that a big file's text is not kept while the model is built.
    static func load(
        releasing bytes: inout [UInt8], file: String, directory: String, variables: VariableOverrides
    ) throws(PlanDiagnostics) -> Plan {
        var collector = DiagnosticCollector()
        let draft = try draft(releasing: &bytes, file: file, directory: directory, variables: variables, collector: &collector)
        var usage = draft.undeclaredVariables
        if !draft.includes.isEmpty {
            let plan = PlanIncludes.combine(top: draft, variables: variables, collector: &collector, usage: &usage)
            try throwUsage(usage)
            try collector.throwIfErrors()
            return plan
        }
        for entry in variables.entries where entry.name.contains("/") {
            usage.append(Diagnostic(.undeclaredVariable(name: entry.name, suggestion: nil), at: nil))
        }
        try throwUsage(usage)
        PlanValidator.validate(draft.plan, draft: draft, collector: &collector)
        try collector.throwIfErrors()
        return draft.plan
    }

    /// One plan file's model, not yet validated and with its `includes`
    /// unresolved. Problems go to `collector`; those after which there is
    /// no model (not UTF-8, not YAML, not a mapping) are thrown, with the
    /// problems collected so far.
    /// `variables` applies to this file's `vars`; the `--var` names it does
    /// not declare are in `undeclaredVariables` (`NS/NAME` ones are left
    /// to `PlanIncludes`).
    static func draft(
        releasing bytes: inout [UInt8], file: String, directory: String, variables: VariableOverrides,
        collector: inout DiagnosticCollector
    ) throws(PlanDiagnostics) -> PlanDraft {
        let start = SourceLocation(file: file, line: 1, column: 1)
        if let offset = firstInvalidUTF8Offset(bytes) {
            let (line, column) = position(ofOffset: offset, in: bytes)
            collector.error(.notUTF8, at: SourceLocation(file: file, line: line, column: column))
            throw PlanDiagnostics(collector.sorted)
        }
        let outcome = bytes.withUnsafeBufferPointer { buffer in
            YAMLReader.read(buffer, file: file, diagnostics: &collector)
        }
        bytes = []
        let document: YAMLDocument
        switch outcome {
        case .failed:
            if !collector.hasErrors { collector.error(.yamlSyntax("cannot read the document"), at: start) }
            throw PlanDiagnostics(collector.sorted)
        case .empty:
            collector.error(.emptyFile, at: start)
            throw PlanDiagnostics(collector.sorted)
        case .document(let d):
            document = d
        }
        guard let root = document.root else {
            collector.error(.emptyFile, at: start)
            throw PlanDiagnostics(collector.sorted)
        }
        if let scalar = document.scalar(root), scalar.isNull {
            collector.error(.emptyFile, at: start)
            throw PlanDiagnostics(collector.sorted)
        }
        guard let pairs = document.pairs(root) else {
            collector.error(.notAMapping(found: document.kindDescription(root)), at: document.location(root))
            throw PlanDiagnostics(collector.sorted)
        }
        let defaultName = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        var builder = PlanBuilder(
            document: document, directory: directory, defaultName: defaultName, collector: collector, overrides: variables)
        let draft = builder.build(root: root, pairs: pairs)
        collector = builder.collector
        return draft
    }

    /// `--var` problems are command-line errors (exit 64), reported before
    /// any problem of the plan.
    private static func throwUsage(_ diagnostics: [Diagnostic]) throws(PlanDiagnostics) {
        guard !diagnostics.isEmpty else { return }
        var usage = PlanDiagnostics(diagnostics)
        usage.isUsageError = true
        throw usage
    }

    // MARK: Files

    static func readFile(_ path: String) -> Result<[UInt8], PlanError> {
        var info = stat()
        if stat(path, &info) != 0 {
            let code = errno
            if code == ENOENT || code == ENOTDIR { return .failure(.fileNotFound(path: path)) }
            return .failure(.unreadable(path: path, reason: String(cString: strerror(code))))
        }
        if (info.st_mode & S_IFMT) == S_IFDIR { return .failure(.isDirectory(path: path)) }
        let fd = open(path, O_RDONLY)
        if fd < 0 { return .failure(.unreadable(path: path, reason: String(cString: strerror(errno)))) }
        defer { close(fd) }
        // Read straight into the array's storage, sized by `stat` (one
        // spare byte shows whether the file has grown since); a file that
        // has grown is read on in chunks.
        var capacity = Int(max(0, info.st_size)) + 1
        var bytes: [UInt8] = []
        while true {
            var failure: Int32 = 0
            var ended = false
            bytes.reserveCapacity(capacity)
            let start = bytes.count
            bytes.append(contentsOf: repeatElement(0, count: capacity - start))
            let filled = bytes.withUnsafeMutableBytes { buffer -> Int in
                var at = start
                while at < buffer.count {
                    let n = read(fd, buffer.baseAddress! + at, buffer.count - at)
                    if n < 0 {
                        if errno == EINTR { continue }
                        failure = errno
                        break
                    }
                    if n == 0 {
                        ended = true
                        break
                    }
                    at += n
                }
                return at
            }
            if failure != 0 { return .failure(.unreadable(path: path, reason: String(cString: strerror(failure)))) }
            bytes.removeSubrange(filled...)
            if ended { return .success(bytes) }
            capacity = bytes.count + (1 << 16)
        }
    }

    /// nil when `bytes` is valid UTF-8; else the offset of the first bad byte.
    static func firstInvalidUTF8Offset(_ bytes: [UInt8]) -> Int? {
        // `UTF8Span` validates in place; `String(validating:)` would copy
        // the whole file into a String only to drop it.
        if (try? UTF8Span(validating: bytes.span)) != nil { return nil }
        // Slow path, only for invalid files: find where decoding fails.
        var iterator = bytes.makeIterator()
        var decoder = Unicode.UTF8()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += UTF8.width(scalar)
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    static func position<Bytes: Collection<UInt8>>(ofOffset offset: Int, in bytes: Bytes) -> (Int, Int)
        where Bytes.Index == Int {
        var line = 1, column = 1
        for byte in bytes[..<min(offset, bytes.count)] {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return (line, column)
    }
}

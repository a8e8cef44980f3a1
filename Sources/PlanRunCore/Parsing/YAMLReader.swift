import CYAML

/// Reads one YAML document into `YAMLNode`s from libyaml's event stream.
///
/// Not a general YAML library: it builds exactly what a plan needs, fast.
/// Scalars become Strings straight from libyaml's byte buffers, positions are
/// libyaml's marks plus one. Aliases share their anchor's storage, and their
/// expanded size is counted (no copy is made) so that a "billion laughs" file
/// fails after a few events. Merge keys (`<<`) are applied; explicit keys win
/// over merged ones, and earlier merged mappings win over later ones.
/// Duplicate keys are reported (the first one is kept) and reading goes on;
/// every other problem stops the read.
package enum YAMLReader {
    /// The result of reading a file.
    package enum Outcome: Sendable {
        /// The document's root node.
        case document(YAMLNode)
        /// No document at all (empty file, or only comments).
        case empty
        /// A problem was reported that stops reading.
        case failed
    }

    /// Deepest nesting of sequences and mappings accepted.
    package static let maxDepth = 256
    /// Nodes that aliases may add, at least; large files get `bytes.count`.
    package static let minimumAliasBudget = 100_000

    /// Reads `bytes` (UTF-8) and appends its problems to `diagnostics`.
    package static func read(
        _ bytes: UnsafeBufferPointer<UInt8>, file: String, diagnostics: inout DiagnosticCollector
    ) -> Outcome {
        var builder = Builder(file: file, source: bytes, aliasBudget: max(minimumAliasBudget, bytes.count))
        let outcome = builder.run()
        for d in builder.diagnostics.diagnostics { diagnostics.append(d) }
        return outcome
    }

    /// Convenience for tests and small inputs.
    package static func read(_ text: String, file: String, diagnostics: inout DiagnosticCollector) -> Outcome {
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBufferPointer { read(UnsafeBufferPointer($0), file: file, diagnostics: &diagnostics) }
    }
}

/// A collection being built: the open sequences and mappings form a stack.
private struct Frame {
    var isMapping: Bool
    var line: Int
    var column: Int
    var anchor: String?
    /// Nodes in this subtree, aliases counted at their expanded size.
    var size = 1
    var items: [YAMLNode] = []
    var pairs: [YAMLPair] = []
    var pendingKey: YAMLNode?
    /// Key text -> index in `pairs`; built once a mapping has many keys, so
    /// duplicate checks stay linear for big mappings and allocation-free for
    /// the small ones that make up most of a plan.
    var keyIndex: [String: Int]?
    /// Pairs brought in by `<<`, earlier ones first.
    var merged: [YAMLPair] = []
    /// Where the merged pairs go among the explicit ones.
    var mergePosition: Int?

    init(isMapping: Bool, line: Int, column: Int, anchor: String?) {
        self.isMapping = isMapping
        self.line = line
        self.column = column
        self.anchor = anchor
    }
}

/// A thrown stop: the diagnostic is already recorded.
private struct StopReading: Error {}

private struct Builder {
    let file: String
    let source: UnsafeBufferPointer<UInt8>
    let aliasBudget: Int
    var diagnostics = DiagnosticCollector()
    var stack: [Frame] = []
    var anchors: [String: (node: YAMLNode, size: Int)] = [:]
    var expanded = 0
    var root: YAMLNode?
    var documents = 0

    /// Mappings up to this many keys are checked for duplicates by a scan.
    static let smallMapping = 8

    init(file: String, source: UnsafeBufferPointer<UInt8>, aliasBudget: Int) {
        self.file = file
        self.source = source
        self.aliasBudget = aliasBudget
    }

    mutating func run() -> YAMLReader.Outcome {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) != 0 else {
            diagnostics.error(.yamlSyntax("cannot initialize the YAML parser"), at: nil)
            return .failed
        }
        defer { yaml_parser_delete(&parser) }
        if let base = source.baseAddress {
            yaml_parser_set_input_string(&parser, base, source.count)
        } else {
            return .empty
        }
        var event = yaml_event_t()
        do {
            while true {
                guard yaml_parser_parse(&parser, &event) != 0 else {
                    reportParserError(parser)
                    return .failed
                }
                defer { yaml_event_delete(&event) }
                if event.type == YAML_STREAM_END_EVENT { break }
                try handle(&event)
            }
        } catch {
            return .failed
        }
        if let root { return .document(root) }
        return .empty
    }

    func mark(_ m: yaml_mark_t) -> (line: Int, column: Int) {
        (m.line + 1, m.column + 1)
    }

    func location(_ m: yaml_mark_t) -> SourceLocation {
        SourceLocation(file: file, line: m.line + 1, column: m.column + 1)
    }

    mutating func stop(_ error: PlanError, at m: yaml_mark_t) -> StopReading {
        diagnostics.error(error, at: location(m))
        return StopReading()
    }

    mutating func handle(_ event: inout yaml_event_t) throws(StopReading) {
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
            if documents > 1 { throw stop(.multipleDocuments, at: event.start_mark) }
        case YAML_SCALAR_EVENT:
            let data = event.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: data.value, count: data.length), as: UTF8.self)
            var plain = data.style == YAML_PLAIN_SCALAR_STYLE
            if plain, let tag = data.tag {
                // `!!str 1` and `! 1` are strings; other tags are ignored.
                let t = String(cString: tag)
                if t == "tag:yaml.org,2002:str" || t == "!" { plain = false }
            }
            let (line, column) = mark(event.start_mark)
            let node = YAMLNode(.scalar(YAMLScalar(text: text, isPlain: plain)), line: line, column: column)
            try add(node, size: 1, anchor: data.anchor.map { String(cString: $0) })
        case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
            let isMapping = event.type == YAML_MAPPING_START_EVENT
            if stack.count >= YAMLReader.maxDepth {
                throw stop(.nestingTooDeep(limit: YAMLReader.maxDepth), at: event.start_mark)
            }
            let anchor = isMapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor
            let (line, column) = mark(event.start_mark)
            stack.append(Frame(isMapping: isMapping, line: line, column: column, anchor: anchor.map { String(cString: $0) }))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard var frame = stack.popLast() else { return }
            let node: YAMLNode
            if frame.isMapping {
                if let position = frame.mergePosition { applyMerges(&frame, at: position) }
                node = YAMLNode(.mapping(frame.pairs), line: frame.line, column: frame.column)
            } else {
                node = YAMLNode(.sequence(frame.items), line: frame.line, column: frame.column)
            }
            try add(node, size: frame.size, anchor: frame.anchor)
        case YAML_ALIAS_EVENT:
            let name = String(cString: event.data.alias.anchor)
            guard let (node, size) = anchors[name] else {
                // `inputs: [*foo]` with no anchor `foo` is most likely a glob.
                if let close = Suggestion.closest(to: name, in: anchors.keys.sorted()), !close.isEmpty {
                    throw stop(.unknownAlias(name: name), at: event.start_mark)
                }
                throw stop(.aliasNotQuoted(text: tokenText(at: event.start_mark.index)), at: event.start_mark)
            }
            expanded += size
            if expanded > aliasBudget {
                throw stop(.aliasExpansionLimit(limit: aliasBudget), at: event.start_mark)
            }
            // The alias sits where it is used, not where its anchor is.
            var placed = node
            (placed.line, placed.column) = mark(event.start_mark)
            try add(placed, size: size, anchor: nil)
        default:
            break
        }
    }

    /// Puts a finished node into the open collection (or makes it the root).
    mutating func add(_ node: YAMLNode, size: Int, anchor: String?) throws(StopReading) {
        if let anchor { anchors[anchor] = (node, size) }
        let top = stack.count - 1
        guard top >= 0 else {
            root = node
            return
        }
        stack[top].size += size
        if !stack[top].isMapping {
            // One allocation for the short lists that make up most of a plan.
            if stack[top].items.isEmpty { stack[top].items.reserveCapacity(4) }
            stack[top].items.append(node)
            return
        }
        guard let key = stack[top].pendingKey else {
            stack[top].pendingKey = node
            return
        }
        stack[top].pendingKey = nil
        guard let keyScalar = key.scalar else {
            // Complex keys: kept as they are; the plan loader rejects them.
            stack[top].pairs.append(YAMLPair(key: key, value: node))
            return
        }
        let text = keyScalar.text
        if let first = firstIndex(ofKey: text, in: stack[top]) {
            let firstLine = stack[top].pairs[first].key.line
            diagnostics.error(.duplicateKey(key: text, firstLine: firstLine), at: key.location(in: file))
            return
        }
        if keyScalar.isPlain, text == "<<" {
            try merge(node, into: top)
        }
        let index = stack[top].pairs.count
        if index == 0 { stack[top].pairs.reserveCapacity(Builder.smallMapping) }
        stack[top].pairs.append(YAMLPair(key: key, value: node))
        if stack[top].keyIndex != nil {
            stack[top].keyIndex![text] = index
        } else if index + 1 > Builder.smallMapping {
            var keyIndex: [String: Int] = [:]
            keyIndex.reserveCapacity(index * 2 + 2)
            for (i, pair) in stack[top].pairs.enumerated() {
                if let k = pair.keyText, keyIndex[k] == nil { keyIndex[k] = i }
            }
            stack[top].keyIndex = keyIndex
        }
    }

    func firstIndex(ofKey text: String, in frame: Frame) -> Int? {
        if let keyIndex = frame.keyIndex { return keyIndex[text] }
        for (i, pair) in frame.pairs.enumerated() where pair.keyText == text { return i }
        return nil
    }

    /// Records the pairs a `<<` value brings in; the `<<` pair itself stays
    /// in `pairs` until the mapping ends (so duplicate checks see it).
    mutating func merge(_ value: YAMLNode, into top: Int) throws(StopReading) {
        var sources: [[YAMLPair]] = []
        switch value.content {
        case .mapping(let pairs):
            sources = [pairs]
        case .sequence(let items):
            for item in items {
                guard let pairs = item.mapping else {
                    diagnostics.error(.invalidMergeKey, at: item.location(in: file))
                    throw StopReading()
                }
                sources.append(pairs)
            }
        case .scalar:
            diagnostics.error(.invalidMergeKey, at: value.location(in: file))
            throw StopReading()
        }
        if stack[top].mergePosition == nil { stack[top].mergePosition = stack[top].pairs.count }
        for pairs in sources { stack[top].merged.append(contentsOf: pairs) }
    }

    /// Replaces the `<<` pair with the merged pairs that no explicit key
    /// overrides (the first of equal merged keys wins).
    func applyMerges(_ frame: inout Frame, at position: Int) {
        var taken = Set<String>()
        for pair in frame.pairs { if let k = pair.keyText { taken.insert(k) } }
        var result: [YAMLPair] = []
        result.reserveCapacity(frame.pairs.count + frame.merged.count)
        result.append(contentsOf: frame.pairs[..<position])
        for pair in frame.merged {
            guard let k = pair.keyText else { continue }
            if taken.insert(k).inserted { result.append(pair) }
        }
        for pair in frame.pairs[position...] where !(pair.key.scalar?.isPlain == true && pair.keyText == "<<") {
            result.append(pair)
        }
        frame.pairs = result
    }

    // MARK: Errors from libyaml

    mutating func reportParserError(_ parser: yaml_parser_t) {
        let problem = parser.problem.map { String(cString: $0) } ?? "unknown problem"
        let context = parser.context.map { String(cString: $0) }
        switch parser.error {
        case YAML_MEMORY_ERROR:
            diagnostics.error(.yamlSyntax("out of memory"), at: nil)
        case YAML_READER_ERROR:
            let (line, column) = position(ofOffset: parser.problem_offset)
            diagnostics.error(.yamlSyntax(problem), at: SourceLocation(file: file, line: line, column: column))
        default:
            if context == "while scanning an alias" {
                // An unquoted glob such as `*.c` or `**/*.swift`.
                let text = tokenText(at: parser.context_mark.index)
                diagnostics.error(.aliasNotQuoted(text: text), at: location(parser.context_mark))
                return
            }
            let index = parser.problem_mark.index
            if index < source.count, source[index] == UInt8(ascii: "\t") {
                diagnostics.error(
                    .yamlSyntax("found a tab character where a token was expected; indent with spaces, not tabs"),
                    at: location(parser.problem_mark))
                return
            }
            let message = context.map { "\(problem) \($0)" } ?? problem
            diagnostics.error(.yamlSyntax(message), at: location(parser.problem_mark))
        }
    }

    /// The plain token starting at `index` (an alias or glob), for messages.
    func tokenText(at index: Int) -> String {
        var end = index
        while end < source.count {
            switch source[end] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"),
                UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"):
                return String(decoding: UnsafeBufferPointer(rebasing: source[index..<end]), as: UTF8.self)
            default:
                end += 1
            }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: source[min(index, end)..<end]), as: UTF8.self)
    }

    /// 1-based line and column (in characters) of a byte offset.
    func position(ofOffset offset: Int) -> (Int, Int) {
        var line = 1, column = 1
        for i in 0..<min(offset, source.count) {
            let byte = source[i]
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

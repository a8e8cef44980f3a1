import CYAML

/// Reads one YAML document into a `YAMLDocument` from libyaml's event stream.
///
/// Not a general YAML library: it builds exactly what a plan needs, fast.
/// Nodes go into flat arrays (no allocation per node), scalar bytes are
/// copied straight from libyaml's buffers, positions are libyaml's marks plus
/// one. An alias shares its anchor's children, and its expanded size is
/// counted (nothing is copied) so that a "billion laughs" file fails after a
/// few events; nesting is limited as if aliases were expanded, so that no
/// walk over the document goes deeper than `maxDepth`. Merge keys (`<<`)
/// are applied; explicit keys win over merged ones, and earlier merged
/// mappings win over later ones. Keys are compared by their bytes (no
/// Unicode normalization). Standard tags are checked against the value they
/// tag; other tags are refused. Duplicate keys are reported (the first one
/// is kept) and reading goes on; every other problem stops the read.
package enum YAMLReader {
    /// The result of reading a file.
    package enum Outcome: Sendable {
        /// The document; its `root` is set.
        case document(YAMLDocument)
        /// No document at all (empty file, or only comments).
        case empty
        /// A problem was reported that stops reading.
        case failed
    }

    /// Deepest nesting of sequences and mappings accepted, aliases expanded.
    package static let maxDepth = 256
    /// Nodes that aliases may add, at least; large files get `bytes.count`.
    package static let minimumAliasBudget = 100_000

    /// Reads `bytes` (UTF-8) and appends its problems to `diagnostics`.
    package static func read(
        _ bytes: UnsafeBufferPointer<UInt8>, file: String, diagnostics: inout DiagnosticCollector
    ) -> Outcome {
        var builder = YAMLTreeBuilder(file: file, source: bytes, aliasBudget: max(minimumAliasBudget, bytes.count))
        let outcome = builder.run()
        for d in builder.diagnostics.diagnostics { diagnostics.append(d) }
        return outcome
    }

    /// Convenience for tests and small inputs.
    package static func read(_ text: String, file: String, diagnostics: inout DiagnosticCollector) -> Outcome {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { read($0, file: file, diagnostics: &diagnostics) }
    }
}

/// A collection being built: the open sequences and mappings form a stack.
/// Their finished children wait in `YAMLTreeBuilder.pending` from `start` on
/// (mappings: key, value, key, value...).
fileprivate struct Frame {
    var isMapping: Bool
    var line: Int32
    var column: Int32
    var anchor: [UInt8]?
    var start: Int
    /// While `ranged`, a sequence's items so far are the nodes `first`,
    /// `first + step`, ... (`count` of them; none waits in `pending`):
    /// consecutive records (`step` 1) or compact scalars (`step` -1).
    var ranged = true
    var first: Int32 = 0
    var step: Int32 = 1
    var count = 0
    /// Nodes in this subtree, aliases counted at their expanded size.
    var size = 1
    /// Levels of collections in this subtree, this one included, aliases
    /// expanded.
    var height = 1
    /// Key bytes -> line of first use; built once a mapping has many keys, so
    /// duplicate checks stay linear for big mappings and allocation-free for
    /// the small ones that make up most of a plan.
    var keyLines: [[UInt8]: Int]?
    /// Mappings brought in by `<<`, in order.
    var mergeSources: [Int32] = []
    /// Where the merged pairs go among the explicit ones (a pair index).
    var mergePosition: Int?

    init(isMapping: Bool, line: Int32, column: Int32, anchor: [UInt8]?, start: Int) {
        self.isMapping = isMapping
        self.line = line
        self.column = column
        self.anchor = anchor
        self.start = start
    }
}

/// A thrown stop: the diagnostic is already recorded.
struct YAMLStopReading: Error {}

struct YAMLTreeBuilder {
    let file: String
    let source: UnsafeBufferPointer<UInt8>
    let aliasBudget: Int
    var diagnostics = DiagnosticCollector()
    var document: YAMLDocument
    fileprivate var stack: [Frame] = []
    var pending: [Int32] = []
    /// Anchor name (bytes) -> node, expanded size and height.
    var anchors: [[UInt8]: (node: Int32, size: Int, height: Int)] = [:]
    var expanded = 0
    var documents = 0

    /// Mappings up to this many keys are checked for duplicates by a scan.
    static let smallMapping = 8

    init(file: String, source: UnsafeBufferPointer<UInt8>, aliasBudget: Int) {
        self.file = file
        self.source = source
        self.aliasBudget = aliasBudget
        document = YAMLDocument(file: file)
        // Room for a node per 2 bytes (the densest text: a flow list of
        // one-digit numbers, `1,2,3`) and for all of the text, so that the
        // arrays never grow (a growth copies and, for a moment, holds both
        // copies resident). Pages never written are never resident: typical
        // plans (a node per ~11 bytes) touch a fifth of it. Capped so that
        // a huge file asks for no more address space than about 1.5 GB up
        // front.
        document.records.reserveCapacity(min(source.count / 2, 1 << 26) + 16)
        document.compactEnd.reserveCapacity(min(source.count / 2, 1 << 26) + 16)
        document.compactColumn.reserveCapacity(min(source.count / 2, 1 << 26) + 16)
        document.children.reserveCapacity(source.count / 10 + 16)
        document.text.reserveCapacity(min(source.count, 1 << 28) + 16)
    }

    mutating func run() -> YAMLReader.Outcome {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) != 0 else {
            diagnostics.error(.yamlSyntax("cannot initialize the YAML parser"), at: nil)
            return .failed
        }
        defer { yaml_parser_delete(&parser) }
        guard let base = source.baseAddress else { return .empty }
        // Positions and offsets are stored as 32-bit numbers.
        guard source.count < Int(Int32.max) else {
            diagnostics.error(.yamlSyntax("the file is larger than 2 GB"), at: nil)
            return .failed
        }
        yaml_parser_set_input_string(&parser, base, source.count)
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
        return document.root == nil ? .empty : .document(document)
    }

    func location(_ m: yaml_mark_t) -> SourceLocation {
        SourceLocation(file: file, line: m.line + 1, column: m.column + 1)
    }

    mutating func stop(_ error: PlanError, at m: yaml_mark_t) -> YAMLStopReading {
        diagnostics.error(error, at: location(m))
        return YAMLStopReading()
    }

    mutating func newRecord(_ record: YAMLDocument.Record) -> Int32 {
        document.records.append(record)
        return Int32(truncatingIfNeeded: document.records.count - 1)
    }

    mutating func handle(_ event: inout yaml_event_t) throws(YAMLStopReading) {
        let line = Int32(truncatingIfNeeded: event.start_mark.line + 1)
        let column = Int32(truncatingIfNeeded: event.start_mark.column + 1)
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
            if documents > 1 { throw stop(.multipleDocuments, at: event.start_mark) }
        case YAML_SCALAR_EVENT:
            let data = event.data.scalar
            var plain = data.style == YAML_PLAIN_SCALAR_STYLE
            var resolvedTag = YAMLScalar.Tag.none
            let start = document.text.count
            if data.length > 0 {
                document.text.append(contentsOf: UnsafeBufferPointer(start: data.value, count: data.length))
            }
            if let tag = data.tag {
                switch try scalarTag(tag, at: event.start_mark, start: start, count: data.length) {
                case nil: plain = false
                case let t?: resolvedTag = t
                }
            }
            if plain, data.tag == nil, data.anchor == nil, let top = stack.indices.last, !stack[top].isMapping,
               stack[top].ranged, stack[top].count == 0 || stack[top].step == -1 {
                addCompact(line: line, column: column, start: start, into: top)
                return
            }
            let node = newRecord(YAMLDocument.Record(
                kind: .scalar, isPlain: plain, tag: resolvedTag, line: line, column: column,
                start: Int32(truncatingIfNeeded: start), count: Int32(truncatingIfNeeded: data.length)))
            try add(node, size: 1, height: 0, anchor: data.anchor.map { Self.bytes($0) })
        case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
            let isMapping = event.type == YAML_MAPPING_START_EVENT
            if stack.count >= YAMLReader.maxDepth {
                throw stop(.nestingTooDeep(limit: YAMLReader.maxDepth), at: event.start_mark)
            }
            let anchor = isMapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor
            if let tag = isMapping ? event.data.mapping_start.tag : event.data.sequence_start.tag {
                try checkCollectionTag(tag, isMapping: isMapping, at: event.start_mark)
            }
            stack.append(Frame(
                isMapping: isMapping, line: line, column: column, anchor: anchor.map { Self.bytes($0) },
                start: pending.count))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let frame = stack.popLast() else { return }
            if !frame.isMapping, frame.ranged {
                let node = newRecord(YAMLDocument.Record(
                    kind: .sequence, isPlain: false, consecutiveItems: true, line: frame.line, column: frame.column,
                    start: frame.first, count: Int32(truncatingIfNeeded: frame.count)))
                try add(node, size: frame.size, height: frame.height, anchor: frame.anchor)
                return
            }
            let childStart = document.children.count
            if frame.isMapping, let position = frame.mergePosition {
                appendMerged(frame, at: position)
            } else {
                document.children.append(contentsOf: pending[frame.start...])
            }
            pending.removeSubrange(frame.start...)
            let count = document.children.count - childStart
            let node = newRecord(YAMLDocument.Record(
                kind: frame.isMapping ? .mapping : .sequence, isPlain: false, line: frame.line, column: frame.column,
                start: Int32(truncatingIfNeeded: childStart),
                count: Int32(truncatingIfNeeded: frame.isMapping ? count / 2 : count)))
            try add(node, size: frame.size, height: frame.height, anchor: frame.anchor)
        case YAML_ALIAS_EVENT:
            let name = Self.bytes(event.data.alias.anchor)
            guard let (anchored, size, height) = anchors[name] else {
                // `inputs: [*foo]` with no anchor `foo` is most likely a glob.
                let text = String(decoding: name, as: UTF8.self)
                let known = anchors.keys.map { String(decoding: $0, as: UTF8.self) }.sorted()
                if Suggestion.closest(to: text, in: known) != nil {
                    throw stop(.unknownAlias(name: text), at: event.start_mark)
                }
                throw stop(.aliasNotQuoted(text: tokenText(at: event.start_mark.index)), at: event.start_mark)
            }
            // The anchored subtree, placed under the open collections, may
            // not nest deeper than a written one could.
            if stack.count + height > YAMLReader.maxDepth {
                throw stop(.nestingTooDeep(limit: YAMLReader.maxDepth), at: event.start_mark)
            }
            expanded += size
            if expanded > aliasBudget {
                throw stop(.aliasExpansionLimit(limit: aliasBudget), at: event.start_mark)
            }
            // The same content, placed where the alias is used.
            var record = document.record(anchored)
            record.line = line
            record.column = column
            try add(newRecord(record), size: size, height: height, anchor: nil)
        default:
            break
        }
    }

    /// Puts a finished node into the open collection (or makes it the root).
    mutating func add(_ node: Int32, size: Int, height: Int, anchor: [UInt8]?) throws(YAMLStopReading) {
        if let anchor { anchors[anchor] = (node, size, height) }
        let top = stack.count - 1
        guard top >= 0 else {
            document.root = YAMLNode(index: node)
            return
        }
        stack[top].size += size
        if height >= stack[top].height { stack[top].height = height + 1 }
        let frameStart = stack[top].start
        if !stack[top].isMapping {
            // Consecutive nodes are kept as a range until one is not.
            if stack[top].ranged {
                if stack[top].count == 0 { stack[top].first = node }
                if stack[top].step == 1, node == stack[top].first + Int32(truncatingIfNeeded: stack[top].count) {
                    stack[top].count += 1
                    return
                }
                let (first, step) = (stack[top].first, stack[top].step)
                for i in 0..<Int32(truncatingIfNeeded: stack[top].count) { pending.append(first + step * i) }
                stack[top].ranged = false
            }
            pending.append(node)
            return
        }
        // In a mapping, an odd number of waiting children means a key waits.
        guard stack[top].isMapping, (pending.count - frameStart) % 2 == 1 else {
            pending.append(node)
            return
        }
        let key = pending[pending.count - 1]
        guard document.record(key).kind == .scalar else {
            // Complex keys are kept; the plan loader rejects them.
            pending.append(node)
            return
        }
        let pairIndex = (pending.count - 1 - frameStart) / 2
        if let firstLine = firstLine(ofKey: key, frameStart: frameStart, pairs: pairIndex, frame: top) {
            let keyNode = YAMLNode(index: key)
            let text = document.scalar(keyNode)?.text ?? ""
            diagnostics.error(.duplicateKey(key: text, firstLine: firstLine), at: document.location(keyNode))
            pending.removeLast() // drop the repeated key, keep the first pair
            return
        }
        let keyRecord = document.record(key)
        if keyRecord.isPlain, keyRecord.count == 2, document.scalar(YAMLNode(index: key))?.text == "<<" {
            try merge(node, into: top, pairIndex: pairIndex)
        }
        pending.append(node)
    }

    /// Adds the scalar whose text was just appended from `start` on as a
    /// compact item of the sequence `stack[top]` (see `YAMLDocument.compactEnd`).
    mutating func addCompact(line: Int32, column: Int32, start: Int, into top: Int) {
        if stack[top].count == 0 {
            document.compactEnd.append(UInt32(truncatingIfNeeded: start))
            document.compactColumn.append(0)
            stack[top].first = -Int32(truncatingIfNeeded: document.compactEnd.count) - 1
            stack[top].step = -1
        }
        let entry = Int32(truncatingIfNeeded: document.compactEnd.count)
        document.compactEnd.append(UInt32(truncatingIfNeeded: document.text.count))
        if column < Int32(UInt16.max) {
            document.compactColumn.append(UInt16(truncatingIfNeeded: column))
        } else {
            document.compactColumn.append(.max)
            document.compactWideColumns[entry] = column
        }
        if document.compactLines.last?.line != line { document.compactLines.append((entry, line)) }
        stack[top].count += 1
        stack[top].size += 1
    }

    /// The line of an earlier key with the same bytes in the open mapping.
    mutating func firstLine(ofKey key: Int32, frameStart: Int, pairs: Int, frame top: Int) -> Int? {
        if pairs >= YAMLTreeBuilder.smallMapping {
            let text = document.scalarBytes(key) ?? []
            if stack[top].keyLines == nil {
                var lines: [[UInt8]: Int] = [:]
                lines.reserveCapacity(pairs * 2)
                for p in 0..<pairs {
                    let k = pending[frameStart + 2 * p]
                    if let t = document.scalarBytes(k), lines[t] == nil { lines[t] = document.line(YAMLNode(index: k)) }
                }
                stack[top].keyLines = lines
            }
            if let line = stack[top].keyLines![text] { return line }
            stack[top].keyLines![text] = document.line(YAMLNode(index: key))
            return nil
        }
        for p in 0..<pairs {
            let k = pending[frameStart + 2 * p]
            if document.sameText(k, key) { return document.line(YAMLNode(index: k)) }
        }
        return nil
    }

    /// Records the mappings a `<<` value brings in; the `<<` pair itself
    /// waits with the others until the mapping ends.
    mutating func merge(_ value: Int32, into top: Int, pairIndex: Int) throws(YAMLStopReading) {
        let node = YAMLNode(index: value)
        if document.pairs(node) != nil {
            stack[top].mergeSources.append(value)
        } else if let items = document.items(node) {
            for item in items {
                guard document.pairs(item) != nil else {
                    diagnostics.error(.invalidMergeKey, at: document.location(item))
                    throw YAMLStopReading()
                }
                stack[top].mergeSources.append(item.index)
            }
        } else {
            diagnostics.error(.invalidMergeKey, at: document.location(node))
            throw YAMLStopReading()
        }
        if stack[top].mergePosition == nil { stack[top].mergePosition = pairIndex }
    }

    /// Writes the mapping's children with the `<<` pairs replaced by the
    /// merged pairs that no explicit key overrides (the first of equal
    /// merged keys wins).
    fileprivate mutating func appendMerged(_ frame: Frame, at position: Int) {
        let explicit = Array(pending[frame.start...])
        var taken = Set<[UInt8]>()
        var isMergeKey = [Bool](repeating: false, count: explicit.count / 2)
        for p in 0..<explicit.count / 2 {
            let key = YAMLNode(index: explicit[2 * p])
            guard let s = document.scalar(key), let bytes = document.scalarBytes(key.index) else { continue }
            if s.isPlain, s.text == "<<" { isMergeKey[p] = true } else { taken.insert(bytes) }
        }
        var merged: [Int32] = []
        for source in frame.mergeSources {
            guard let pairs = document.pairs(YAMLNode(index: source)) else { continue }
            for pair in pairs {
                guard let k = document.scalarBytes(pair.key.index), taken.insert(k).inserted else { continue }
                merged.append(pair.key.index)
                merged.append(pair.value.index)
            }
        }
        // Appended only now: no slice of `children` is alive, so no copy.
        for p in 0..<position where !isMergeKey[p] {
            document.children.append(contentsOf: explicit[(2 * p)..<(2 * p + 2)])
        }
        document.children.append(contentsOf: merged)
        for p in position..<(explicit.count / 2) where !isMergeKey[p] {
            document.children.append(contentsOf: explicit[(2 * p)..<(2 * p + 2)])
        }
    }

    // MARK: Tags

    static func bytes(_ cString: UnsafePointer<UInt8>) -> [UInt8] {
        Array(UnsafeBufferPointer(start: cString, count: strlen(UnsafeRawPointer(cString).assumingMemoryBound(to: CChar.self))))
    }

    /// A tag as written in the short form where it has one (`!!int`).
    static func tagText(_ tag: String) -> String {
        tag.hasPrefix(standardTagPrefix) ? "!!" + tag.dropFirst(standardTagPrefix.count) : tag
    }

    static let standardTagPrefix = "tag:yaml.org,2002:"

    /// The tag of a scalar: nil for `!!str` and `!` (a string), else the tag
    /// whose type the text must have. Stops on a tag that is not a standard
    /// scalar tag, or a text that does not fit its tag.
    mutating func scalarTag(
        _ cTag: UnsafePointer<UInt8>, at mark: yaml_mark_t, start: Int, count: Int
    ) throws(YAMLStopReading) -> YAMLScalar.Tag? {
        let tag = String(cString: cTag)
        let result: YAMLScalar.Tag
        let expected: String
        switch tag {
        case "!", Self.standardTagPrefix + "str": return nil
        case Self.standardTagPrefix + "int": (result, expected) = (.int, "an integer")
        case Self.standardTagPrefix + "float": (result, expected) = (.float, "a number")
        case Self.standardTagPrefix + "bool": (result, expected) = (.bool, "`true` or `false`")
        case Self.standardTagPrefix + "null": (result, expected) = (.null, "null")
        case Self.standardTagPrefix + "seq":
            throw stop(.tagMismatch(tag: "!!seq", expected: "a list", found: "a scalar"), at: mark)
        case Self.standardTagPrefix + "map":
            throw stop(.tagMismatch(tag: "!!map", expected: "a mapping", found: "a scalar"), at: mark)
        default: throw stop(.unsupportedTag(tag: Self.tagText(tag)), at: mark)
        }
        let text = document.string(start: start, count: count)
        let fits = switch YAMLScalar(text: text, isPlain: false, tag: result).value {
        case .string: false
        default: true
        }
        if !fits {
            throw stop(.tagMismatch(tag: Self.tagText(tag), expected: expected, found: "`\(text)`"), at: mark)
        }
        return result
    }

    /// Stops unless a sequence's tag is `!!seq` or `!` and a mapping's is
    /// `!!map` or `!`.
    mutating func checkCollectionTag(_ cTag: UnsafePointer<UInt8>, isMapping: Bool, at mark: yaml_mark_t) throws(YAMLStopReading) {
        let tag = String(cString: cTag)
        let found = isMapping ? "a mapping" : "a list"
        switch tag {
        case "!": return
        case Self.standardTagPrefix + "seq":
            if isMapping { throw stop(.tagMismatch(tag: "!!seq", expected: "a list", found: found), at: mark) }
        case Self.standardTagPrefix + "map":
            if !isMapping { throw stop(.tagMismatch(tag: "!!map", expected: "a mapping", found: found), at: mark) }
        case Self.standardTagPrefix + "str":
            throw stop(.tagMismatch(tag: "!!str", expected: "a string", found: found), at: mark)
        case Self.standardTagPrefix + "int":
            throw stop(.tagMismatch(tag: "!!int", expected: "an integer", found: found), at: mark)
        case Self.standardTagPrefix + "float":
            throw stop(.tagMismatch(tag: "!!float", expected: "a number", found: found), at: mark)
        case Self.standardTagPrefix + "bool":
            throw stop(.tagMismatch(tag: "!!bool", expected: "`true` or `false`", found: found), at: mark)
        case Self.standardTagPrefix + "null":
            throw stop(.tagMismatch(tag: "!!null", expected: "null", found: found), at: mark)
        default:
            throw stop(.unsupportedTag(tag: Self.tagText(tag)), at: mark)
        }
    }
}

/// "Did you mean" suggestions by edit distance, as ninja's SpellcheckString.
package enum Suggestion {
    /// The closest candidate within a small edit distance, or nil.
    /// Ties go to the earliest candidate, so suggestions are deterministic.
    package static func closest(to word: String, in candidates: some Sequence<String>) -> String? {
        let maxDistance = max(1, min(3, word.count / 3 + 1))
        var best: (String, Int)?
        for candidate in candidates where candidate != word {
            let d = editDistance(word, candidate, limit: maxDistance)
            if d <= maxDistance, best == nil || d < best!.1 { best = (candidate, d) }
        }
        return best?.0
    }

    /// Levenshtein distance, stopping early past `limit`.
    package static func editDistance(_ a: String, _ b: String, limit: Int = .max) -> Int {
        let a = Array(a.lowercased().unicodeScalars), b = Array(b.lowercased().unicodeScalars)
        if abs(a.count - b.count) > limit { return limit + 1 }
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            var rowMin = current[0]
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                rowMin = min(rowMin, current[j])
            }
            if rowMin > limit { return limit + 1 }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

/// "Did you mean" suggestions by edit distance, as ninja's SpellcheckString.
///
/// The cost is bounded: a word is compared only with candidates whose length
/// is within the largest distance accepted, each comparison is a banded
/// Levenshtein that stops once every path is past that distance, and a
/// `Candidates` set shares one budget of comparison work among all its
/// searches, so that a plan with thousands of misspelled references
/// validates in time linear in its size (searches past the budget suggest
/// nothing).
package enum Suggestion {
    /// The closest candidate within a small edit distance, or nil.
    /// Ties go to the earliest candidate, so suggestions are deterministic.
    package static func closest(to word: String, in candidates: some Sequence<String>) -> String? {
        var set = Candidates(candidates)
        return set.closest(to: word)
    }

    /// The largest distance accepted for a word of `length` characters.
    static func maxDistance(forLength length: Int) -> Int { max(1, min(3, length / 3 + 1)) }

    /// Words to suggest, prepared once (lowercased, grouped by length) for
    /// many searches.
    package struct Candidates {
        /// The candidates in order, and lowercased as Unicode scalar values.
        private var words: [String] = []
        private var folded: [[UInt32]] = []
        /// Length -> indexes into `words`, in order.
        private var byLength: [Int: [Int]] = [:]
        /// Levenshtein cells left for all searches together.
        private var budget: Int

        /// Cells of comparison work allowed by default: thousands of
        /// ordinary searches, and little next to reading a plan that has
        /// enough misses to spend it.
        package static let defaultBudget = 20_000_000

        package init(_ candidates: some Sequence<String>, budget: Int = Candidates.defaultBudget) {
            self.budget = budget
            for word in candidates {
                let f = Suggestion.fold(word)
                byLength[f.count, default: []].append(words.count)
                words.append(word)
                folded.append(f)
            }
        }

        /// The closest candidate within a small edit distance, or nil (also
        /// once the budget is spent). Ties go to the earliest candidate.
        package mutating func closest(to word: String) -> String? {
            let w = Suggestion.fold(word)
            let limit = Suggestion.maxDistance(forLength: word.count)
            var best: (index: Int, distance: Int)?
            for length in max(0, w.count - limit)...(w.count + limit) {
                guard let indexes = byLength[length] else { continue }
                for i in indexes {
                    guard words[i] != word else { continue }
                    let cost = (w.count + 1) * (2 * limit + 1)
                    guard budget >= cost else { return best.map { words[$0.index] } }
                    budget -= cost
                    let bound = best.map { $0.index < i ? $0.distance - 1 : $0.distance } ?? limit
                    guard bound >= 0 else { continue }
                    let d = Suggestion.distance(w, folded[i], limit: bound)
                    if d <= bound, best == nil || d < best!.distance || (d == best!.distance && i < best!.index) {
                        best = (i, d)
                    }
                }
            }
            return best.map { words[$0.index] }
        }
    }

    static func fold(_ word: String) -> [UInt32] { word.lowercased().unicodeScalars.map(\.value) }

    /// Levenshtein distance (case-insensitive), stopping early past `limit`.
    package static func editDistance(_ a: String, _ b: String, limit: Int = .max) -> Int {
        distance(fold(a), fold(b), limit: limit)
    }

    /// Levenshtein distance of `a` and `b`, or `limit + 1` when it is larger
    /// than `limit`. Only the band of cells within `limit` of the diagonal is
    /// computed.
    static func distance(_ a: [UInt32], _ b: [UInt32], limit: Int) -> Int {
        if abs(a.count - b.count) > limit { return limit + 1 }
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        let over = limit == .max ? Int.max : limit + 1
        // Cells outside the band hold `over`: never on a path within `limit`.
        var previous = [Int](repeating: over, count: b.count + 1)
        var current = previous
        for j in 0...min(b.count, limit) { previous[j] = j }
        for i in 1...a.count {
            let low = max(1, i - limit), high = min(b.count, i >= Int.max - limit ? b.count : i + limit)
            current[low - 1] = low == 1 && i <= limit ? i : over
            var rowMin = current[low - 1]
            if low <= high {
                for j in low...high {
                    let cost = a[i - 1] == b[j - 1] ? 0 : 1
                    let value = min(previous[j] == over ? over : previous[j] + 1,
                                    current[j - 1] == over ? over : current[j - 1] + 1,
                                    previous[j - 1] == over ? over : previous[j - 1] + cost)
                    current[j] = min(value, over)
                    rowMin = min(rowMin, current[j])
                }
            }
            if high < b.count { current[high + 1] = over }
            if rowMin >= over { return over }
            swap(&previous, &current)
        }
        return min(previous[b.count], over)
    }
}

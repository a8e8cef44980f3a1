/// Which subtasks run even when up to date: `build --force` without
/// targets forces all, `build --force ID...` forces those. The one shape of
/// "force": a cache is made with it (`RunConfiguration.forced` gives `all`)
/// and applies it in every decision.
package struct Force: Sendable, Hashable {
    package var all: Bool
    package var ids: Set<String>

    package init(all: Bool = false, ids: Set<String> = []) {
        self.all = all
        self.ids = ids
    }

    package static let none = Force()

    /// Whether subtask `id` is forced.
    package func covers(_ id: String) -> Bool { all || ids.contains(id) }
}

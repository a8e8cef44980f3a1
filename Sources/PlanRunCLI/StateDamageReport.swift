import ArgumentParser
import Foundation
import PlanRunCore

/// What `build`, `plan`, `status` and the cache commands say about a
/// damaged state database, in the same words (they must agree, and say how
/// to recover): called when
/// the state failed them, it checks the database and, when it is damaged,
/// says so with the way out and exits 1.
enum StateDamageReport {
    static let hint = "note: `planrun clean --state` removes the state database (history is lost; outputs are kept)\n"

    /// Returns when the database in `directory` is sound (or absent): the
    /// caller then reports its own error.
    static func exitIfDamaged(_ directory: String) throws {
        guard let damage = StateStore.damage(directory: directory) else { return }
        let path = (directory as NSString).appendingPathComponent("state.db")
        printError("error: the state database `\(path)` is damaged (\(damage))\n")
        printError(hint)
        throw ExitCode(1)
    }
}

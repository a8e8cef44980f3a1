import Foundation
import Testing
@testable import PlanRunCore

/// Run ids: UTC time, then six hex digits, so they sort by start time.
@Suite struct ExecutionRunIDTests {
    @Test(arguments: [
        (1_795_718_168.0, "20261126-183608"),
        (946_684_799.9, "19991231-235959"),
        (0.0, "19700101-000000"),
    ])
    func formatsTheUTCTime(seconds: Double, prefix: String) throws {
        let id = BuildSession.makeRunID(now: Date(timeIntervalSince1970: seconds))
        #expect(id.hasPrefix(prefix + "-"))
        let suffix = id.dropFirst(prefix.count + 1)
        #expect(suffix.count == 6)
        #expect(suffix.allSatisfy { $0.isHexDigit && !$0.isUppercase })
    }

    @Test func idsOfOneSecondDiffer() {
        let now = Date()
        let ids = Set((0..<20).map { _ in BuildSession.makeRunID(now: now) })
        #expect(ids.count > 1)
    }
}

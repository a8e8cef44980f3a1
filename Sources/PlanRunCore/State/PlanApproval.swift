import Foundation

/// The approval gate: a plan with `approval: required` builds
/// only when the SHA-256 of its file's current bytes has been approved with
/// `planrun approve`. The approved digest is kept in `approval.json` in the
/// state folder: `{"digest": HEX, "plan": FILE, "approved_at": ISO8601}`,
/// written atomically (temporary file, then rename).
package enum PlanApproval {
    package enum Failure: Error, Sendable, Hashable, CustomStringConvertible {
        case notApproved
        /// An approval exists, for other content.
        case changedSinceApproval
        case io(String)

        package var description: String {
            switch self {
            case .notApproved: "plan is not approved: run `planrun approve`"
            case .changedSinceApproval: "plan is not approved: run `planrun approve` (it changed since it was approved)"
            case .io(let message): message
            }
        }
    }

    private struct Record: Codable {
        var digest: String
        var plan: String
        var approvedAt: String

        enum CodingKeys: String, CodingKey {
            case digest, plan
            case approvedAt = "approved_at"
        }
    }

    static func recordPath(_ stateDirectory: String) -> String {
        (stateDirectory as NSString).appendingPathComponent("approval.json")
    }

    /// SHA-256 of the plan file's bytes; for a plan with includes, SHA-256
    /// over that digest and each included file's path and digest, so that
    /// a change to an included plan needs a new approval too.
    package static func contentDigest(of plan: Plan) throws(Failure) -> String {
        do {
            let own = try FileDigester.sha256(ofFile: plan.file)
            let included = plan.includedFiles
            if included.isEmpty { return own }
            var text = own + "\n"
            for file in included { text += file + "\0" + (try FileDigester.sha256(ofFile: file)) + "\n" }
            return Digest.sha256Hex(Array(text.utf8))
        } catch { throw .io("\(error)") }
    }

    /// The approved digest, if any (an unreadable record counts as none).
    package static func approvedDigest(stateDirectory: String) -> String? {
        // Only a regular file of modest size is read (never a link or a FIFO).
        guard case .bytes(let bytes) = FileBytes.readRegular(recordPath(stateDirectory), limit: 1 << 20),
              let record = try? JSONDecoder().decode(Record.self, from: Data(bytes)),
              LocalCacheStore.isDigest(record.digest)
        else { return nil }
        return record.digest
    }

    /// Records the plan's current content as approved; returns its digest.
    @discardableResult
    package static func approve(_ plan: Plan, stateDirectory: String, now: Date = Date()) throws(Failure) -> String {
        let digest = try contentDigest(of: plan)
        let formatter = ISO8601DateFormatter()
        let record = Record(digest: digest, plan: plan.file, approvedAt: formatter.string(from: now))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
            let data = try encoder.encode(record) + Data("\n".utf8)
            try data.write(to: URL(fileURLWithPath: recordPath(stateDirectory)), options: .atomic)
        } catch {
            throw .io("cannot record the approval in \(stateDirectory): \(error.localizedDescription)")
        }
        return digest
    }

    /// Throws unless the plan needs no approval or its current content is approved.
    package static func check(_ plan: Plan, stateDirectory: String) throws(Failure) {
        guard plan.approval == .required else { return }
        guard let approved = approvedDigest(stateDirectory: stateDirectory) else { throw .notApproved }
        if try contentDigest(of: plan) != approved { throw .changedSinceApproval }
    }
}

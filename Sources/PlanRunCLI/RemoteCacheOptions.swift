import ArgumentParser
import Foundation
import PlanRunCore

extension RemoteCacheMode: ExpressibleByArgument {}

/// The shared remote cache for `build` and `retry` (`RemoteCacheStore`):
/// `--remote-cache URL` (else `PLANRUN_REMOTE_CACHE`) and
/// `--remote-cache-mode read|readwrite`.
struct RemoteCacheOptions: ParsableArguments {
    static let environmentVariable = "PLANRUN_REMOTE_CACHE"

    @Option(help: ArgumentHelp(
        "A remote cache speaking Bazel's HTTP cache protocol (GET/PUT on URL/ac/KEY and URL/cas/DIGEST), such as bazel-remote or nginx with WebDAV (default: $PLANRUN_REMOTE_CACHE).",
        valueName: "url"))
    var remoteCache: String?

    @Option(help: ArgumentHelp("`read` only looks up the remote cache (for untrusted jobs); `readwrite` also uploads what the build records.",
                               valueName: "mode"))
    var remoteCacheMode: RemoteCacheMode = .readWrite

    func validate() throws {
        if let url = remoteCache, RemoteCacheStore(url: url, mode: remoteCacheMode) == nil {
            throw ValidationError("`--remote-cache` must be an http or https URL (got `\(url)`)")
        }
    }

    /// The remote store to use, or nil; an unusable `PLANRUN_REMOTE_CACHE`
    /// is an error (printed, exit 64).
    func store(environment: [String: String]) throws -> RemoteCacheStore? {
        let fromEnvironment = environment[Self.environmentVariable].flatMap { $0.isEmpty ? nil : $0 }
        guard let url = remoteCache ?? fromEnvironment else { return nil }
        guard let store = RemoteCacheStore(url: url, mode: remoteCacheMode) else {
            printError("error: `\(Self.environmentVariable)` must be an http or https URL (got `\(url)`)\n")
            throw ExitCode.validationFailure
        }
        return store
    }
}

// The web-download fetcher: GET over AsyncHTTPClient, streaming the body, re-filtering every redirect as Glance does.
import Foundation
import ImportCore

/// Fetches http:// and https:// URIs (https verifying the server's certificate for the URI's host).
///
/// Each hop's host is resolved here and its addresses filtered before anything connects; the client is then
/// pinned to an approved address, so the address the filter judged is the one connected to.
public struct WebDownloader: WebDownloading {
    public var userAgent: String
    /// A PEM file of the CAs trusted for https, instead of the system's store.
    public var trustedCertificates: String?

    public init(userAgent: String = "StagingFS-web-download/1.0", trustedCertificates: String? = nil) {
        self.userAgent = userAgent
        self.trustedCertificates = trustedCertificates
    }

    /// Blocks the calling thread until the download ends; the sink runs on it too (the daemon's import workers
    /// call it). The exchange runs on NIO's event loops and this thread, never on Swift's cooperative pool, so what
    /// blocks the pool elsewhere in the process does not stall a download.
    public func download(_ uri: String, filter: ImportFilteringOptions, limits: DownloadLimits, sink: (Data) throws -> Void) throws(DownloadError) -> Int64 {
        var current = try filter.validated(uri)
        var redirects = 0
        let deadline = ContinuousClock.now + .seconds(limits.totalTimeout)
        while true {
            guard ContinuousClock.now < deadline else { throw .deadlineExceeded(uri: uri, seconds: limits.totalTimeout) }
            guard ["http", "https"].contains(current.scheme) else { throw .unsupportedScheme(uri: current.description, scheme: current.scheme) }
            let hop = HopFetch(
                uri: current, addresses: try AddressResolver.permittedAddresses(of: current, filter: filter),
                userAgent: userAgent, trustedCertificates: trustedCertificates, limits: limits)
            switch try hop.run(until: deadline, sink: sink) {
            case let .body(count):
                return count
            case let .redirect(location):
                redirects += 1
                guard redirects <= limits.maxRedirects else { throw .tooManyRedirects(uri: uri, limit: limits.maxRedirects) }
                // Glance's SafeRedirectHandler: the target passes the same filter as the URI the user gave.
                current = try filter.validated(current.resolving(location).description)
            }
        }
    }
}

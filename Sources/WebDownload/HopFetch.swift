// One hop of a web-download: a GET through a fresh HTTPClient pinned to an address the filter approved, its body
// streamed to the sink on the caller's thread. AsyncHTTPClient's delegate API: the exchange lives on NIO's event
// loops and this thread, never on Swift's cooperative pool.
import AsyncHTTPClient
import Foundation
import ImportCore
import NIOCore
import NIOHTTP1
import NIOSSL

struct HopFetch: Sendable {
    let uri: WebURI
    /// The host's addresses the filter permits: tried in turn until one connects.
    let addresses: [String]
    let userAgent: String
    let trustedCertificates: String?
    let limits: DownloadLimits

    /// Fetches the hop on this thread; `deadline` is the whole download's.
    func run(until deadline: ContinuousClock.Instant, sink: (Data) throws -> Void) throws(DownloadError) -> HopOutcome {
        var failure = DownloadError.connectionRefused(host: uri.host, port: uri.effectivePort)
        for address in addresses {
            // One client a hop (downloads are rare): it is shut down whatever the exchange's outcome.
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration(pinnedTo: address))
            let attempt = exchange(client, until: deadline, sink: sink)
            do { try client.syncShutdown() } catch {
                throw .connectionFailed(host: uri.host, port: uri.effectivePort, reason: "closing the client failed: \(error)")
            }
            switch attempt {
            case let .done(result): return try result.get()
            case let .notConnected(error): failure = error
            }
        }
        throw failure
    }

    private enum Attempt {
        case done(Result<HopOutcome, DownloadError>)
        /// No connection to this address: the next one may answer.
        case notConnected(DownloadError)
    }

    private func configuration(pinnedTo address: String) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        // The client never resolves the host: it connects to the approved address, and keeps the host name for the
        // Host header, the server name (SNI) and the certificate's verification. A literal address is its own resolution.
        if !uri.hostIsAddress { configuration.dnsOverride = [uri.host: address] }
        // WebDownloader follows redirects itself, filtering each target as Glance does.
        configuration.redirectConfiguration = .disallow
        configuration.httpVersion = .http1Only
        configuration.timeout = .init(connect: Self.amount(limits.connectTimeout), read: Self.amount(limits.stallTimeout))
        // A refused connection moves on to the next address at once, not after retries until the connect timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        var tls = TLSConfiguration.makeClientConfiguration()
        if let trustedCertificates { tls.trustRoots = .file(trustedCertificates) }
        configuration.tlsConfiguration = tls
        return configuration
    }

    private func exchange(_ client: HTTPClient, until deadline: ContinuousClock.Instant, sink: (Data) throws -> Void) -> Attempt {
        let failures = ClientFailure(uri: uri, limits: limits)
        let request: HTTPClient.Request
        do {
            request = try HTTPClient.Request(url: uri.description, method: .GET, headers: ["User-Agent": userAgent, "Accept": "*/*"])
        } catch {
            return .done(.failure(.connectionFailed(host: uri.host, port: uri.effectivePort, reason: "the request cannot be made: \(error)")))
        }
        let handoff = BodyHandoff()
        let task = client.execute(request: request, delegate: handoff)
        let expired = DownloadError.deadlineExceeded(uri: uri.description, seconds: limits.totalTimeout)
        // The answer's head, or why there is none.
        let head: HTTPResponseHead
        switch handoff.next(until: deadline) {
        case nil:
            handoff.abandon(task)
            return .done(.failure(expired))
        case let .head(received):
            head = received
        case let .end(error):
            let failure = failures.beforeAnswer(error ?? ChannelError.eof)
            switch failure {
            case .connectionRefused, .connectTimeout, .connectionFailed: return .notConnected(failure)
            default: return .done(.failure(failure))
            }
        case let .chunk(_, taken):  // a body before a head is not HTTP; NIO never does it
            taken.fail(BodyHandoff.Abandoned())
            handoff.abandon(task)
            return .done(.failure(.connectionFailed(host: uri.host, port: uri.effectivePort, reason: "a body arrived before the response head")))
        }
        do {
            return .done(.success(try read(head, task, handoff, failures, until: deadline, expired: expired, sink: sink)))
        } catch {
            return .done(.failure(error))
        }
    }

    private func read(
        _ head: HTTPResponseHead, _ task: HTTPClient.Task<Void>, _ handoff: BodyHandoff, _ failures: ClientFailure,
        until deadline: ContinuousClock.Instant, expired: DownloadError, sink: (Data) throws -> Void
    ) throws(DownloadError) -> HopOutcome {
        let code = Int(head.status.code)
        if [301, 302, 303, 307, 308].contains(code) {
            handoff.abandon(task)
            guard let location = head.headers.first(name: "Location"), !location.isEmpty else {
                throw .redirectWithoutLocation(uri: uri.description, code: code)
            }
            return .redirect(location)
        }
        guard (200..<300).contains(code) else {
            handoff.abandon(task)
            throw .httpStatus(uri: uri.description, code: code, reason: head.status.reasonPhrase)
        }
        let isChunked = head.headers.first(name: "Transfer-Encoding")?.lowercased().contains("chunked") == true
        let contentLength = isChunked ? nil : head.headers.first(name: "Content-Length").flatMap { Int64($0) }
        if let contentLength, contentLength > limits.maxBytes {
            handoff.abandon(task)
            throw .tooLarge(uri: uri.description, limit: limits.maxBytes)
        }
        var total: Int64 = 0
        while true {
            switch handoff.next(until: deadline) {
            case nil:
                handoff.abandon(task)
                throw expired
            case .head:
                continue  // informational heads are the client's; only the first final one counts
            case let .end(error):
                if let error { throw failures.insideBody(error, received: total, contentLength: contentLength) }
                return .body(total)
            case let .chunk(data, taken):
                total += Int64(data.count)
                // Counted before the sink sees the chunk: an unannounced body stops at the limit, not after it.
                guard total <= limits.maxBytes else {
                    taken.fail(BodyHandoff.Abandoned())
                    handoff.abandon(task)
                    throw .tooLarge(uri: uri.description, limit: limits.maxBytes)
                }
                do { try sink(data) } catch {
                    taken.fail(BodyHandoff.Abandoned())
                    handoff.abandon(task)
                    throw .sinkFailed(message: "\(error)")
                }
                taken.succeed()
            }
        }
    }

    private static func amount(_ seconds: Double) -> TimeAmount {
        .nanoseconds(Int64(min(seconds * 1e9, Double(Int64.max)).rounded(.up)))
    }
}

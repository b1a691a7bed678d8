// One hop of a web-download: a GET through a fresh HTTPClient pinned to an address the filter approved, its body
// streamed to the sink on the caller's thread.
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

    /// Fetches the hop on this thread's behalf; `deadline` is the whole download's.
    func run(until deadline: ContinuousClock.Instant, sink: (Data) throws -> Void) throws(DownloadError) -> HopOutcome {
        try BodyHandoff.run(until: deadline, expired: .deadlineExceeded(uri: uri.description, seconds: limits.totalTimeout), sink: sink) { handoff in
            await fetch(into: handoff)
        }
    }

    private func fetch(into handoff: BodyHandoff) async -> Result<HopOutcome, DownloadError> {
        var failure = DownloadError.connectionRefused(host: uri.host, port: uri.effectivePort)
        for address in addresses {
            let attempt: Attempt
            do {
                // One client a hop (downloads are rare): it is shut down whatever the exchange's outcome.
                attempt = try await HTTPClient.withHTTPClient(configuration: configuration(pinnedTo: address)) { client in
                    await exchange(client, handoff)
                }
            } catch {
                return .failure(.connectionFailed(host: uri.host, port: uri.effectivePort, reason: "closing the client failed: \(error)"))
            }
            switch attempt {
            case let .done(result): return result
            case let .notConnected(error): failure = error
            }
        }
        return .failure(failure)
    }

    private enum Attempt: Sendable {
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

    private func exchange(_ client: HTTPClient, _ handoff: BodyHandoff) async -> Attempt {
        let failures = ClientFailure(uri: uri, limits: limits)
        var request = HTTPClientRequest(url: uri.description)
        request.headers.add(name: "User-Agent", value: userAgent)
        request.headers.add(name: "Accept", value: "*/*")
        let response: HTTPClientResponse
        do {
            // The download's deadline is the caller's to keep: it cancels this task when it passes.
            response = try await client.execute(request, deadline: .distantFuture)
        } catch {
            let failure = failures.beforeAnswer(error)
            switch failure {
            case .connectionRefused, .connectTimeout, .connectionFailed: return .notConnected(failure)
            default: return .done(.failure(failure))
            }
        }
        do {
            return .done(.success(try await read(response, handoff, failures)))
        } catch {
            return .done(.failure(error))
        }
    }

    private func read(_ response: HTTPClientResponse, _ handoff: BodyHandoff, _ failures: ClientFailure) async throws(DownloadError) -> HopOutcome {
        let code = Int(response.status.code)
        if [301, 302, 303, 307, 308].contains(code) {
            guard let location = response.headers.first(name: "Location"), !location.isEmpty else {
                throw .redirectWithoutLocation(uri: uri.description, code: code)
            }
            return .redirect(location)
        }
        guard (200..<300).contains(code) else {
            throw .httpStatus(uri: uri.description, code: code, reason: response.status.reasonPhrase)
        }
        let isChunked = response.headers.first(name: "Transfer-Encoding")?.lowercased().contains("chunked") == true
        let contentLength = isChunked ? nil : response.headers.first(name: "Content-Length").flatMap { Int64($0) }
        if let contentLength, contentLength > limits.maxBytes { throw .tooLarge(uri: uri.description, limit: limits.maxBytes) }
        var total: Int64 = 0
        do {
            for try await buffer in response.body {
                total += Int64(buffer.readableBytes)
                // Counted before the sink sees the chunk: an unannounced body stops at the limit, not after it.
                if total > limits.maxBytes { throw DownloadError.tooLarge(uri: uri.description, limit: limits.maxBytes) }
                try await handoff.deliver(Data(buffer.readableBytesView))
            }
        } catch let error as DownloadError {
            throw error
        } catch is BodyHandoff.Abandoned {
            // The thread stopped taking chunks and says why itself; this outcome is not read.
            throw .sinkFailed(message: "the download was abandoned")
        } catch {
            throw failures.insideBody(error, received: total, contentLength: contentLength)
        }
        return .body(total)
    }

    private static func amount(_ seconds: Double) -> TimeAmount {
        .nanoseconds(Int64(min(seconds * 1e9, Double(Int64.max)).rounded(.up)))
    }
}

// The web-download fetcher: HTTP/1.1 GET over TCP, streaming the body, re-filtering every redirect as Glance does.
import Foundation
import HTTPUnix
import ImportCore
import SystemPackage

/// Fetches http:// and https:// URIs (https through the system's libssl, verifying the server's certificate).
public struct HTTPDownloader: WebDownloading {
    public var userAgent: String
    /// A PEM file of the CAs trusted for https, instead of the system's store.
    public var trustedCertificates: String?

    public init(userAgent: String = "StagingFS-web-download/1.0", trustedCertificates: String? = nil) {
        self.userAgent = userAgent
        self.trustedCertificates = trustedCertificates
    }

    public func download(_ uri: String, filter: ImportFilteringOptions, limits: DownloadLimits, sink: (Data) throws -> Void) throws(DownloadError) -> Int64 {
        var current = try filter.validated(uri)
        var redirects = 0
        let deadline = DownloadDeadline(seconds: limits.totalTimeout)
        while true {
            guard !deadline.hasExpired else { throw .deadlineExceeded(uri: uri, seconds: limits.totalTimeout) }
            switch try fetch(current, filter: filter, limits: limits, deadline: deadline, sink: sink) {
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

    private enum Outcome {
        case body(Int64)
        case redirect(String)
    }

    /// Thrown from inside the body callback so that the reader stops at once.
    private struct BodyTooLarge: Error { var limit: Int64 }
    private struct SinkFailure: Error { var message: String }

    private func fetch(_ uri: WebURI, filter: ImportFilteringOptions, limits: DownloadLimits, deadline: DownloadDeadline,
                       sink: (Data) throws -> Void) throws(DownloadError) -> Outcome {
        guard ["http", "https"].contains(uri.scheme) else { throw .unsupportedScheme(uri: uri.description, scheme: uri.scheme) }
        let socket = try TCPConnector.connect(to: uri, filter: filter, timeout: limits.connectTimeout)
        deadline.watch(socket)
        let stream: any ByteStream
        do {
            stream = uri.scheme == "https"
                ? try TLSStream(socket: socket, uri: uri, trustedCertificates: trustedCertificates, timeout: limits.stallTimeout)
                : SocketStream(socket)
        } catch {
            deadline.release()
            throw deadline.hasExpired ? .deadlineExceeded(uri: uri.description, seconds: deadline.seconds) : error
        }
        let connection = HTTPConnection(stream: stream, readTimeout: limits.stallTimeout)
        defer {
            deadline.release()
            connection.close()
        }

        let head: HTTPHead
        do {
            try connection.writeHead("GET \(uri.target) HTTP/1.1", headers: [
                ("Host", uri.authority), ("User-Agent", userAgent), ("Accept", "*/*"), ("Connection", "close"),
            ])
            guard let received = try connection.readHead() else {
                throw DownloadError.protocolError(uri: uri.description, reason: "the server closed the connection without answering")
            }
            head = received
        } catch {
            throw map(error, uri: uri, contentLength: nil, deadline: deadline)
        }
        guard head.startLine[0].hasPrefix("HTTP/1.") else {
            throw .protocolError(uri: uri.description, reason: "the status line starts with '\(head.startLine[0].prefix(20))'")
        }
        let code = head.statusCode
        if [301, 302, 303, 307, 308].contains(code) {
            guard let location = head.header("Location"), !location.isEmpty else {
                throw .redirectWithoutLocation(uri: uri.description, code: code)
            }
            return .redirect(location)
        }
        guard (200..<300).contains(code) else {
            throw .httpStatus(uri: uri.description, code: code, reason: head.startLine.count > 2 ? head.startLine[2] : "")
        }

        let isChunked = head.header("Transfer-Encoding")?.lowercased().contains("chunked") == true
        let contentLength = isChunked ? nil : head.header("Content-Length").flatMap { Int64($0) }
        if let contentLength, contentLength > limits.maxBytes { throw .tooLarge(uri: uri.description, limit: limits.maxBytes) }
        var total: Int64 = 0
        do {
            return .body(try connection.readBody(head, untilClose: true) { chunk in
                total += Int64(chunk.count)
                if total > limits.maxBytes { throw BodyTooLarge(limit: limits.maxBytes) }
                do { try sink(chunk) } catch { throw SinkFailure(message: "\(error)") }
            })
        } catch {
            throw map(error, uri: uri, contentLength: contentLength, deadline: deadline)
        }
    }

    private func map(_ error: any Error, uri: WebURI, contentLength: Int64?, deadline: DownloadDeadline) -> DownloadError {
        // The deadline shut the connection down: whatever the read saw, the reason is the deadline.
        if deadline.hasExpired { return .deadlineExceeded(uri: uri.description, seconds: deadline.seconds) }
        switch error {
        case let error as DownloadError: return error
        case let error as BodyTooLarge: return .tooLarge(uri: uri.description, limit: error.limit)
        case let error as SinkFailure: return .sinkFailed(message: error.message)
        case let error as HTTPError:
            switch error {
            case let .timedOut(seconds): return .stalled(uri: uri.description, seconds: seconds)
            case let .truncated(_, received):
                guard let contentLength else {
                    return .protocolError(uri: uri.description, reason: "the connection closed inside the chunked body")
                }
                return .truncated(uri: uri.description, received: received, expected: contentLength)
            case let .io(errno): return .connectionFailed(host: uri.host, port: uri.effectivePort, reason: "\(errno)")
            case .malformed, .tooLarge: return .protocolError(uri: uri.description, reason: "\(error)")
            }
        default: return .protocolError(uri: uri.description, reason: "\(error)")
        }
    }
}

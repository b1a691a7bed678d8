// What AsyncHTTPClient, NIO and NIOSSL report, said as the DownloadError the person who asked for the import reads.
import AsyncHTTPClient
import Glibc
import ImportCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Translates the errors of one hop's exchange with its server.
struct ClientFailure {
    let uri: WebURI
    let limits: DownloadLimits

    /// An error before the response head arrived: connecting, the TLS handshake, sending, waiting for the head.
    func beforeAnswer(_ error: any Error) -> DownloadError {
        let (host, port) = (uri.host, uri.effectivePort)
        switch error {
        case let error as HTTPClientError where error == .connectTimeout:
            return .connectTimeout(host: host, port: port, seconds: limits.connectTimeout)
        case let error as HTTPClientError where error == .readTimeout:
            return .stalled(uri: uri.description, seconds: limits.stallTimeout)
        case let error as HTTPClientError where error == .remoteConnectionClosed:
            return .protocolError(uri: uri.description, reason: "the server closed the connection without answering")
        case let error as NIOConnectionError:
            // Pinned to one address, the connection has one attempt: its failure is the reason.
            return error.connectionErrors.first.map { beforeAnswer($0.error) } ?? .connectionFailed(host: host, port: port, reason: "\(error)")
        case let error as IOError where error.errnoCode == ECONNREFUSED:
            return .connectionRefused(host: host, port: port)
        case let error as IOError where error.errnoCode == ETIMEDOUT:
            return .connectTimeout(host: host, port: port, seconds: limits.connectTimeout)
        case let error as NIOSSLExtraError where error == .failedToValidateHostname:
            return .tlsFailed(host: host, port: port, reason: "host name mismatch: the certificate is not issued for \(host) (\(error))")
        case let error as NIOSSLError:
            return .tlsFailed(host: host, port: port, reason: Self.reason(error))
        case is NIOSSLExtraError, is BoringSSLError:
            return .tlsFailed(host: host, port: port, reason: "\(error)")
        case is HTTPParserError:
            return .protocolError(uri: uri.description, reason: "\(error)")
        default:
            return .connectionFailed(host: host, port: port, reason: "\(error)")
        }
    }

    /// An error while the body streamed, after `received` of its bytes (of `contentLength` when announced).
    func insideBody(_ error: any Error, received: Int64, contentLength: Int64?) -> DownloadError {
        switch error {
        case let error as HTTPClientError where error == .readTimeout:
            return .stalled(uri: uri.description, seconds: limits.stallTimeout)
        case let error as HTTPClientError where error == .remoteConnectionClosed:
            return closedEarly(received: received, contentLength: contentLength)
        case let error as HTTPParserError where error == .invalidEOFState:
            return closedEarly(received: received, contentLength: contentLength)
        case let error as NIOSSLError where error == .uncleanShutdown:
            // Only a body that the close ends gets here (AsyncHTTPClient checks framed ones): without close_notify
            // nothing tells a complete body from a cut one.
            return .protocolError(
                uri: uri.description,
                reason:
                    "the body ends at the connection's close, and the server closed TLS without close_notify after \(received) bytes, so the body may be cut short; fetch the image from a server that sends Content-Length or chunks"
            )
        case is HTTPParserError:
            return .protocolError(uri: uri.description, reason: "\(error)")
        case is IOError:
            return .connectionFailed(host: uri.host, port: uri.effectivePort, reason: "\(error)")
        default:
            return .protocolError(uri: uri.description, reason: "\(error)")
        }
    }

    private func closedEarly(received: Int64, contentLength: Int64?) -> DownloadError {
        guard let contentLength else { return .protocolError(uri: uri.description, reason: "the connection closed inside the chunked body") }
        return .truncated(uri: uri.description, received: received, expected: contentLength)
    }

    /// BoringSSL's reason codes are terse ("CERTIFICATE_VERIFY_FAILED"): say what they mean for the certificate.
    private static func reason(_ error: NIOSSLError) -> String {
        switch error {
        case let .handshakeFailed(detail) where "\(detail)".contains("CERTIFICATE_VERIFY_FAILED"):
            return "the certificate is not trusted (it is self-signed, or no trusted CA signed it): \(detail)"
        case .failedToLoadCertificate, .failedToLoadPrivateKey:
            return "cannot load the trusted certificates: \(error)"
        default:
            return "\(error)"
        }
    }
}

// https: a TLS client session (the system's libssl) over a connected socket, verifying the server's certificate.
import CLibSSL
import Foundation
import HTTPUnix
import ImportCore
import SystemPackage

/// One TLS session. Reads and writes wait at most the stall timeout (SO_RCVTIMEO/SO_SNDTIMEO on the socket,
/// which also bounds the handshake).
final class TLSStream: ByteStream {
    let descriptor: FileDescriptor
    private let context: OpaquePointer
    private let session: OpaquePointer

    /// Shakes hands with `host` and verifies its certificate against `trustedCertificates` (a PEM file), or the
    /// system's CA store when nil. Takes ownership of `socket`: it is closed on failure and by `close()`.
    init(socket: FileDescriptor, uri: WebURI, trustedCertificates: String?, timeout: Double) throws(DownloadError) {
        descriptor = socket
        func failure(_ reason: String) -> DownloadError { .tlsFailed(host: uri.host, port: uri.effectivePort, reason: reason) }
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            try? socket.close()
            throw failure(Self.openSSLError())
        }
        self.context = context
        guard let session = SSL_new(context) else {
            SSL_CTX_free(context)
            try? socket.close()
            throw failure(Self.openSSLError())
        }
        self.session = session
        do {
            try configure(uri: uri, trustedCertificates: trustedCertificates, timeout: timeout, failure)
        } catch {
            close()
            throw error
        }
    }

    private func configure(uri: WebURI, trustedCertificates: String?, timeout: Double, _ failure: (String) -> DownloadError) throws(DownloadError) {
        var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
            guard setsockopt(descriptor.rawValue, SOL_SOCKET, option, &limit, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                throw failure("setting the socket timeout: \(Errno(rawValue: errno))")
            }
        }
        // On the session: it copied the context's verify mode and options when it was made.
        SSL_set_verify(session, SSL_VERIFY_PEER, nil)
        clibssl_ignore_unexpected_eof(session)
        let loaded = trustedCertificates.map { SSL_CTX_load_verify_locations(context, $0, nil) } ?? SSL_CTX_set_default_verify_paths(context)
        guard loaded == 1 else { throw failure("cannot load the trusted certificates: \(Self.openSSLError())") }
        // SSL_set1_host checks an IP address against the certificate's IP entries, a name against its DNS names.
        guard SSL_set1_host(session, uri.host) == 1, SSL_set_fd(session, descriptor.rawValue) == 1 else { throw failure(Self.openSSLError()) }
        if !uri.hostIsAddress { _ = clibssl_set_server_name(session, uri.host) }
        ERR_clear_error()
        let result = SSL_connect(session)
        guard result == 1 else {
            let verification = SSL_get_verify_result(session)
            if verification != X509_V_OK {
                throw failure("the certificate is not trusted: \(String(cString: X509_verify_cert_error_string(verification)))")
            }
            if [SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE].contains(SSL_get_error(session, result)) {
                throw failure("the handshake stalled for \(timeout) s")
            }
            throw failure(Self.openSSLError())
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, timeout: Double?) throws(HTTPError) -> Int {
        ERR_clear_error()
        let count = SSL_read(session, buffer.baseAddress, Int32(clamping: buffer.count))
        if count > 0 { return Int(count) }
        switch SSL_get_error(session, count) {
        case SSL_ERROR_ZERO_RETURN: return 0
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: throw .timedOut(seconds: timeout ?? 0)
        case SSL_ERROR_SYSCALL: throw .io(Errno(rawValue: errno))
        default: throw .malformed("TLS: \(Self.openSSLError())")
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(HTTPError) {
        var offset = 0
        while offset < bytes.count {
            ERR_clear_error()
            let count = SSL_write(session, bytes.baseAddress! + offset, Int32(clamping: bytes.count - offset))
            guard count > 0 else { throw .io(Errno(rawValue: errno == 0 ? EPIPE : errno)) }
            offset += Int(count)
        }
    }

    func close() {
        SSL_free(session)
        SSL_CTX_free(context)
        try? descriptor.close()
    }

    private static func openSSLError() -> String {
        let code = ERR_get_error()
        guard code != 0 else { return "the connection closed during the handshake" }
        var text = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &text, text.count)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

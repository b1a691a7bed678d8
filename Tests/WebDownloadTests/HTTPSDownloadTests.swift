// WebDownloader over https against a real TLS server on loopback with a certificate made for the test.
import Foundation
import ImportCore
import StagingTestSupport
import Testing
import WebDownload

@Suite("Web download over https")
struct HTTPSDownloadTests {
    /// A self-signed certificate for `name` only, and the server using it; all removed even when `body` fails.
    func withServer(
        fileSize size: Int = 4096, certifying name: String = "localhost",
        _ body: (LoopbackHTTPServer, _ file: String, _ certificate: String) async throws -> Void
    ) async throws {
        let directory = NSTemporaryDirectory() + "webdownload-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (file, certificate, key) = (directory + "/image", directory + "/cert.pem", directory + "/key.pem")
        try makeRandomFile(file, bytes: size)
        let made = try run([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", certificate, "-days", "1", "-subj", "/CN=\(name)",
            "-addext", "subjectAltName=DNS:\(name)",
        ])
        guard made.succeeded else { throw TestSetupError("openssl req failed: \(made)") }
        let server = try LoopbackHTTPServer(serving: file, tls: (certificate, key))
        defer { server.stop() }
        try await body(server, file, certificate)
    }

    func filter(_ server: LoopbackHTTPServer) -> ImportFilteringOptions {
        var filter = ImportFilteringOptions()
        filter.allowedHosts = ["localhost", "127.0.0.1"]
        filter.allowedPorts = [server.port]
        return filter
    }

    @Test("a body, chunked or not, and an https redirect chain arrive byte-exact from a trusted server")
    func trusted() async throws {
        try await withServer(fileSize: 5 << 20) { server, file, certificate in
            let downloader = WebDownloader(trustedCertificates: certificate)
            let expected = try digest("sha512sum", of: file)
            for path in ["/file", "/chunked"] {
                let body = try await collect(downloader, server.url(path, host: "localhost"), filter: filter(server))
                #expect(body.count == 5 << 20 && referenceDigest("sha512sum", of: body) == expected, "\(path)")
            }
            // A body only the close ends, closed without close_notify (Python's server): it may be cut short.
            let closed = await #expect(throws: DownloadError.self) {
                try await collect(downloader, server.url("/close", host: "localhost"), filter: filter(server))
            }
            guard case let .protocolError(_, reason) = closed, reason.contains("close_notify") else {
                Issue.record("expected a protocol error naming close_notify, got \(String(describing: closed))")
                return
            }
            let hops = try await collect(downloader, server.url("/hop/3", host: "localhost"), filter: filter(server))
            #expect(String(decoding: hops, as: UTF8.self) == "arrived")
        }
    }

    @Test("a certificate no trusted CA signed is refused")
    func untrusted() async throws {
        try await withServer { server, _, _ in
            let error = await #expect(throws: DownloadError.self) {
                try await collect(WebDownloader(), server.url("/file", host: "localhost"), filter: filter(server))
            }
            guard case let .tlsFailed("localhost", server.port, reason) = error else {
                Issue.record("expected tlsFailed, got \(String(describing: error))")
                return
            }
            #expect(reason.contains("self-signed"), "\(reason)")
        }
    }

    @Test("a certificate for another name is refused")
    func wrongName() async throws {
        try await withServer { server, _, certificate in
            let error = await #expect(throws: DownloadError.self) {
                try await collect(WebDownloader(trustedCertificates: certificate), server.url("/file"), filter: filter(server))
            }
            guard case let .tlsFailed("127.0.0.1", server.port, reason) = error else {
                Issue.record("expected tlsFailed, got \(String(describing: error))")
                return
            }
            #expect(reason.contains("mismatch"), "\(reason)")
        }
    }

    @Test("a trusted certificate for another name is refused: the name checked is the URI's, not the pinned address's")
    func otherName() async throws {
        try await withServer(certifying: "images.example") { server, _, certificate in
            let error = await #expect(throws: DownloadError.self) {
                try await collect(WebDownloader(trustedCertificates: certificate), server.url("/file", host: "localhost"), filter: filter(server))
            }
            guard case let .tlsFailed("localhost", server.port, reason) = error else {
                Issue.record("expected tlsFailed, got \(String(describing: error))")
                return
            }
            #expect(reason.contains("mismatch"), "\(reason)")
        }
    }

    @Test("a stalled https server fails as stalled, not at the overall deadline")
    func stall() async throws {
        try await withServer { server, _, certificate in
            await #expect(throws: DownloadError.stalled(uri: server.url("/stall", host: "localhost"), seconds: 1)) {
                try await collect(
                    WebDownloader(trustedCertificates: certificate), server.url("/stall", host: "localhost"),
                    filter: filter(server), limits: DownloadLimits(stallTimeout: 1))
            }
        }
    }

    @Test("a truncated https body is reported as truncated")
    func truncated() async throws {
        try await withServer { server, _, certificate in
            await #expect(throws: DownloadError.truncated(uri: server.url("/truncated", host: "localhost"), received: 10, expected: 1000)) {
                try await collect(WebDownloader(trustedCertificates: certificate), server.url("/truncated", host: "localhost"), filter: filter(server))
            }
        }
    }
}

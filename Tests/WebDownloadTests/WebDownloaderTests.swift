// WebDownloader against a real HTTP server on loopback: bodies, framing, redirects, filters, limits, failures.
import Foundation
import ImportCore
import StagingTestSupport
import Synchronization
import Testing
import WebDownload

@Suite("Web download over HTTP")
struct WebDownloaderTests {
    let downloader = WebDownloader()

    /// Loopback is reachable only when allowed_hosts names it (as in Glance); the server's port must be allowed too.
    func filter(_ server: LoopbackHTTPServer) -> ImportFilteringOptions {
        var filter = ImportFilteringOptions()
        filter.allowedHosts = ["127.0.0.1", "::1"]
        filter.allowedPorts = [server.port]
        return filter
    }

    /// Runs `body` with a server over a fresh random file of `size` bytes; both are removed even when it fails.
    func withServer(fileSize size: Int = 4096, address: String = "127.0.0.1", _ body: (LoopbackHTTPServer, String) async throws -> Void) async throws {
        let file = NSTemporaryDirectory() + "webdownload-\(UUID().uuidString)"
        try makeRandomFile(file, bytes: size)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let server = try LoopbackHTTPServer(serving: file, address: address)
        defer { server.stop() }
        try await body(server, file)
    }

    /// Downloads into a file and returns its sha512, the byte count, and the largest chunk the sink saw.
    func downloadToFile(
        _ uri: String, filter: ImportFilteringOptions, limits: DownloadLimits = DownloadLimits()
    ) async throws -> (digest: String, count: Int64, largestChunk: Int) {
        let path = NSTemporaryDirectory() + "webdownload-out-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        let (count, largest) = try await onWorkerThread { [downloader] () throws(DownloadError) -> (Int64, Int) in
            var largest = 0
            let count = try downloader.download(uri, filter: filter, limits: limits) { chunk in
                largest = max(largest, chunk.count)
                try handle.write(contentsOf: chunk)
            }
            return (count, largest)
        }
        try handle.close()
        return (try digest("sha512sum", of: path), count, largest)
    }

    func collect(_ uri: String, filter: ImportFilteringOptions, limits: DownloadLimits = DownloadLimits()) async throws(DownloadError) -> Data {
        try await WebDownloadTests.collect(downloader, uri, filter: filter, limits: limits)
    }

    @Test("a download finishes while every thread of the cooperative pool is blocked (as other work may block it)")
    func cooperativePoolBlocked() async throws {
        try await withServer(fileSize: 1 << 20) { server, file in
            let expected = try Data(contentsOf: URL(fileURLWithPath: file))
            let release = DispatchSemaphore(value: 0)
            // As many blockers as the pool has threads: whichever start hold every thread until released.
            let threads = ProcessInfo.processInfo.activeProcessorCount
            for _ in 0..<threads { Task.detached { release.wait() } }
            defer { for _ in 0..<threads { release.signal() } }
            let finished = DispatchSemaphore(value: 0)
            let outcome = Mutex<Result<Data, DownloadError>?>(nil)
            let (downloader, uri, filter) = (downloader, server.url("/file"), filter(server))
            Thread {
                var data = Data()
                let result = Result { () throws(DownloadError) -> Data in
                    _ = try downloader.download(uri, filter: filter, limits: DownloadLimits(stallTimeout: 30)) { data.append($0) }
                    return data
                }
                outcome.withLock { $0 = result }
                finished.signal()
            }.start()
            // Waiting here blocks this test's own pool thread too: the pool is then wholly blocked.
            #expect(finished.wait(timeout: .now() + 120) == .success, "the download never finished")
            #expect(try outcome.withLock { $0 }?.get() == expected)
        }
    }

    // MARK: Bodies

    @Test("a 20 MiB body with Content-Length arrives byte-exact, in bounded chunks")
    func contentLength() async throws {
        try await withServer(fileSize: 20 << 20) { server, file in
            let result = try await downloadToFile(server.url("/file"), filter: filter(server))
            #expect(result.count == 20 << 20)
            #expect(result.digest == (try digest("sha512sum", of: file)))
            #expect(result.largestChunk <= 1 << 20)
        }
    }

    @Test("a chunked body (with chunk extensions and a trailer) arrives byte-exact")
    func chunked() async throws {
        try await withServer(fileSize: 3 << 20) { server, file in
            let result = try await downloadToFile(server.url("/chunked"), filter: filter(server))
            #expect(result.count == 3 << 20)
            #expect(result.digest == (try digest("sha512sum", of: file)))
        }
    }

    @Test("IPv6: a body and a redirect chain over [::1]")
    func ipv6() async throws {
        try await withServer(fileSize: 1 << 20, address: "::1") { server, file in
            let result = try await downloadToFile(server.url("/file"), filter: filter(server))
            #expect(result.digest == (try digest("sha512sum", of: file)))
            let body = try await collect(server.url("/hop/4"), filter: filter(server))
            #expect(String(decoding: body, as: UTF8.self) == "arrived")
        }
    }

    @Test("a body with neither length nor chunks is read until the server closes")
    func untilClose() async throws {
        try await withServer(fileSize: 1 << 20) { server, file in
            let result = try await downloadToFile(server.url("/close"), filter: filter(server))
            #expect(result.count == 1 << 20)
            #expect(result.digest == (try digest("sha512sum", of: file)))
        }
    }

    @Test("a sink that throws stops the download and its message is kept")
    func sinkFailure() async throws {
        struct DiskFull: Error, CustomStringConvertible { var description: String { "no space left on the staging store" } }
        try await withServer { server, _ in
            await #expect(throws: DownloadError.sinkFailed(message: "no space left on the staging store")) {
                try await onWorkerThread { [downloader, uri = server.url("/file"), filter = filter(server)] () throws(DownloadError) in
                    try downloader.download(uri, filter: filter, limits: DownloadLimits()) { _ in throw DiskFull() }
                }
            }
        }
    }

    // MARK: Redirects

    @Test("a chain of relative and absolute redirects is followed")
    func redirectChain() async throws {
        try await withServer { server, _ in
            let body = try await collect(server.url("/hop/5"), filter: filter(server))
            #expect(String(decoding: body, as: UTF8.self) == "arrived")
        }
    }

    @Test("more redirects than maxRedirects are refused")
    func tooManyRedirects() async throws {
        try await withServer { server, _ in
            await #expect(throws: DownloadError.tooManyRedirects(uri: server.url("/hop/5"), limit: 4)) {
                try await collect(server.url("/hop/5"), filter: filter(server), limits: DownloadLimits(maxRedirects: 4))
            }
            let body = try await collect(server.url("/hop/5"), filter: filter(server), limits: DownloadLimits(maxRedirects: 5))
            #expect(String(decoding: body, as: UTF8.self) == "arrived")
        }
    }

    @Test("a redirect to a host outside allowed_hosts is refused, naming the option")
    func redirectToDisallowedHost() async throws {
        try await withServer { server, _ in
            let target = server.url("/file", host: "localhost")
            let error = await #expect(throws: DownloadError.self) {
                try await collect(server.url("/to?\(target)"), filter: filter(server))
            }
            #expect(error == .refused(uri: target, option: .allowedHosts, value: "localhost"))
            #expect(error?.description.contains("[import_filtering_opts] allowed_hosts") == true)
        }
    }

    @Test("a redirect to a disallowed scheme or port is refused")
    func redirectToDisallowedSchemeOrPort() async throws {
        try await withServer { server, _ in
            await #expect(throws: DownloadError.refused(uri: "file:///etc/passwd", option: .allowedSchemes, value: "file")) {
                try await collect(server.url("/to?file:///etc/passwd"), filter: filter(server))
            }
            await #expect(throws: DownloadError.refused(uri: "http://127.0.0.1:22/", option: .allowedPorts, value: "22")) {
                try await collect(server.url("/to?http://127.0.0.1:22/"), filter: filter(server))
            }
        }
    }

    @Test("a redirect without Location is an error")
    func redirectWithoutLocation() async throws {
        try await withServer { server, _ in
            await #expect(throws: DownloadError.redirectWithoutLocation(uri: server.url("/nolocation"), code: 302)) {
                try await collect(server.url("/nolocation"), filter: filter(server))
            }
        }
    }

    // MARK: Refusals before connecting

    @Test("a URI the filter refuses is not fetched")
    func refusedURIs() async throws {
        try await withServer { server, _ in
            let filter = filter(server)
            await #expect(throws: DownloadError.refused(uri: "ftp://127.0.0.1/image", option: .allowedSchemes, value: "ftp")) {
                try await collect("ftp://127.0.0.1/image", filter: filter)
            }
            await #expect(throws: DownloadError.refused(uri: "http://127.0.0.1:81/file", option: .allowedPorts, value: "81")) {
                try await collect("http://127.0.0.1:81/file", filter: filter)
            }
            await #expect(throws: DownloadError.malformedURI(uri: "127.0.0.1/file", reason: "it has no scheme; write an absolute URI such as http://host/path"))
            {
                try await collect("127.0.0.1/file", filter: filter)
            }
        }
    }

    @Test("loopback is refused unless allowed_hosts names the host, as Glance pins addresses")
    func loopbackNeedsAllowedHosts() async throws {
        try await withServer { server, _ in
            var open = ImportFilteringOptions()
            open.allowedPorts = [server.port]
            await #expect(throws: DownloadError.addressRefused(host: "127.0.0.1", addresses: ["127.0.0.1"])) {
                try await collect(server.url("/file"), filter: open)
            }
            await #expect(throws: DownloadError.addressRefused(host: "localhost", addresses: ["127.0.0.1"])) {
                try await collect(server.url("/file", host: "localhost"), filter: open)
            }
        }
    }

    @Test("a scheme the filter allows but no fetcher speaks is unsupported")
    func unsupportedScheme() async throws {
        var filter = ImportFilteringOptions()
        filter.allowedSchemes = ["ftp"]
        await #expect(throws: DownloadError.unsupportedScheme(uri: "ftp://127.0.0.1/image", scheme: "ftp")) {
            try await collect("ftp://127.0.0.1/image", filter: filter)
        }
    }

    // MARK: Server and network failures

    @Test("a 404 is an error with its code")
    func notFound() async throws {
        try await withServer { server, _ in
            let error = await #expect(throws: DownloadError.self) { try await collect(server.url("/status/404"), filter: filter(server)) }
            #expect(error == .httpStatus(uri: server.url("/status/404"), code: 404, reason: "Not Found"))
            #expect(error?.description.contains("404 Not Found") == true)
        }
    }

    @Test("a server that sends headers and then nothing fails as stalled, not at the overall deadline")
    func stall() async throws {
        try await withServer { server, _ in
            await #expect(throws: DownloadError.stalled(uri: server.url("/stall"), seconds: 1)) {
                try await collect(server.url("/stall"), filter: filter(server), limits: DownloadLimits(stallTimeout: 1))
            }
        }
    }

    @Test("a body larger than maxBytes is refused, announced or not")
    func tooLarge() async throws {
        try await withServer(fileSize: 1 << 20) { server, _ in
            let limits = DownloadLimits(maxBytes: 100_000)
            for path in ["/announced/10000000000", "/endless", "/close", "/chunked"] {
                await #expect(throws: DownloadError.tooLarge(uri: server.url(path), limit: 100_000)) {
                    try await collect(server.url(path), filter: filter(server), limits: limits)
                }
            }
            let exact = try await collect(server.url("/file"), filter: filter(server), limits: DownloadLimits(maxBytes: 1 << 20))
            #expect(exact.count == 1 << 20)
        }
    }

    @Test("a body shorter than its Content-Length is truncated")
    func truncated() async throws {
        try await withServer { server, _ in
            await #expect(throws: DownloadError.truncated(uri: server.url("/truncated"), received: 10, expected: 1000)) {
                try await collect(server.url("/truncated"), filter: filter(server))
            }
        }
    }

    @Test("a closed port refuses the connection")
    func connectionRefused() async throws {
        let probe = try python("import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
        let port = try #require(Int(probe.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        var filter = ImportFilteringOptions()
        filter.allowedHosts = ["127.0.0.1"]
        filter.allowedPorts = [port]
        await #expect(throws: DownloadError.connectionRefused(host: "127.0.0.1", port: port)) {
            try await collect("http://127.0.0.1:\(port)/", filter: filter)
        }
    }

    @Test("a connection the server never accepts fails as a connect timeout")
    func connectTimeout() async throws {
        try await withServer { server, _ in
            var filter = filter(server)
            filter.allowedPorts = [server.unansweredPort]
            await #expect(throws: DownloadError.connectTimeout(host: "127.0.0.1", port: server.unansweredPort, seconds: 0.5)) {
                try await collect("http://127.0.0.1:\(server.unansweredPort)/file", filter: filter, limits: DownloadLimits(connectTimeout: 0.5))
            }
        }
    }

    @Test("a host that does not resolve is reported as such")
    func unresolvable() async throws {
        let error = await #expect(throws: DownloadError.self) { try await collect("http://no-such-host.invalid/image", filter: ImportFilteringOptions()) }
        guard case .hostNotResolvable(host: "no-such-host.invalid", _) = error else {
            Issue.record("expected hostNotResolvable, got \(String(describing: error))")
            return
        }
    }
}

// What an attacker would try against web-download: redirects and names that lead to forbidden addresses, a client
// that connects elsewhere than the filter approved, servers that trickle or never stop, certificates for other names.
import Foundation
import ImportCore
import StagingTestSupport
import Testing

@testable import WebDownload

/// A listener on 127.0.0.1 that only counts the connections made to it: the proof that a refusal came first.
final class Tripwire {
    let port: Int
    private let process = Process()
    private let stdin = Pipe(), stdout = Pipe()

    init() throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [
            "-c",
            """
            import socket, sys
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
            print(listener.getsockname()[1], flush=True)
            sys.stdin.read()
            listener.setblocking(False)
            count = 0
            while True:
                try:
                    listener.accept()
                    count += 1
                except BlockingIOError:
                    break
            print(count, flush=True)
            """,
        ]
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        let line = String(decoding: stdout.fileHandleForReading.availableData, as: UTF8.self)
        guard let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw TestSetupError("the tripwire printed '\(line)'") }
        self.port = port
    }

    /// Stops listening and says how many connections reached the listener (accepted by the kernel, taken or not).
    func connections() throws -> Int {
        try stdin.fileHandleForWriting.close()
        let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard let count = Int(output.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw TestSetupError("the tripwire printed '\(output)'") }
        return count
    }
}

@Suite("Web download under attack")
struct WebDownloadAttackTests {
    let downloader = WebDownloader()

    func withServer(fileSize size: Int = 4096, _ body: (LoopbackHTTPServer) async throws -> Void) async throws {
        let file = NSTemporaryDirectory() + "webdownload-attack-\(UUID().uuidString)"
        try makeRandomFile(file, bytes: size)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let server = try LoopbackHTTPServer(serving: file)
        defer { server.stop() }
        try await body(server)
    }

    func collect(_ uri: String, filter: ImportFilteringOptions, limits: DownloadLimits = DownloadLimits()) async throws(DownloadError) -> Data {
        try await WebDownloadTests.collect(downloader, uri, filter: filter, limits: limits)
    }

    /// Loopback reachable (allowed_hosts names it), on the server's port only.
    func loopbackFilter(_ server: LoopbackHTTPServer) -> ImportFilteringOptions {
        var filter = ImportFilteringOptions()
        filter.allowedHosts = ["127.0.0.1"]
        filter.allowedPorts = [server.port]
        return filter
    }

    @Test("a redirect to a port the filter refuses is refused before anything connects to it")
    func redirectToForbiddenPort() async throws {
        try await withServer { server in
            let tripwire = try Tripwire()
            let filter = loopbackFilter(server)
            let target = "http://127.0.0.1:\(tripwire.port)/latest/meta-data"
            await #expect(throws: DownloadError.refused(uri: target, option: .allowedPorts, value: String(tripwire.port))) {
                try await collect(server.url("/to?\(target)"), filter: filter)
            }
            #expect(try tripwire.connections() == 0)
        }
    }

    @Test("a host name resolving to a forbidden address is refused before anything connects, first hop or redirect")
    func nameResolvingToForbiddenAddress() async throws {
        try await withServer { server in
            let tripwire = try Tripwire()
            // No allowed_hosts: loopback is this host's, and no name may lead there.
            var open = ImportFilteringOptions()
            open.allowedPorts = [server.port, tripwire.port]
            let target = "http://localhost:\(tripwire.port)/"
            await #expect(throws: DownloadError.addressRefused(host: "localhost", addresses: ["127.0.0.1"])) {
                try await collect(target, filter: open)
            }
            // A server the filter lets through cannot send the download there either.
            var pinned = open
            pinned.allowedHosts = ["127.0.0.1"]
            await #expect(throws: DownloadError.refused(uri: target, option: .allowedHosts, value: "localhost")) {
                try await collect(server.url("/to?\(target)"), filter: pinned)
            }
            #expect(try tripwire.connections() == 0)
        }
    }

    @Test("the client connects to the address the filter approved, not to what it would resolve itself")
    func connectsToTheApprovedAddress() async throws {
        try await withServer { server in
            // The server listens on 127.0.0.1 only; "localhost" resolves there, ::1 has no listener on that port.
            let uri = try WebURI(parsing: server.url("/hop/0", host: "localhost"))
            func fetch(pinnedTo address: String) async throws(DownloadError) -> String {
                try await onWorkerThread { () throws(DownloadError) -> String in
                    var body = Data()
                    let hop = HopFetch(uri: uri, addresses: [address], userAgent: "test", trustedCertificates: nil, limits: DownloadLimits())
                    _ = try hop.run(until: .now + .seconds(60)) { body.append($0) }
                    return String(decoding: body, as: UTF8.self)
                }
            }
            #expect(try await fetch(pinnedTo: "127.0.0.1") == "arrived")
            await #expect(throws: DownloadError.connectionRefused(host: "localhost", port: server.port)) { try await fetch(pinnedTo: "::1") }
        }
    }

    @Test("a server that trickles slower than the stall timeout is cut off as stalled; faster, at the overall deadline")
    func trickle() async throws {
        try await withServer { server in
            let filter = loopbackFilter(server)
            // /drip sends a byte every 0.5 s.
            await #expect(throws: DownloadError.stalled(uri: server.url("/drip"), seconds: 0.25)) {
                try await collect(server.url("/drip"), filter: filter, limits: DownloadLimits(stallTimeout: 0.25))
            }
            await #expect(throws: DownloadError.deadlineExceeded(uri: server.url("/drip"), seconds: 1.5)) {
                try await collect(server.url("/drip"), filter: filter, limits: DownloadLimits(stallTimeout: 30, totalTimeout: 1.5))
            }
        }
    }

    @Test("an endless body is cut off at the size limit: the sink never receives a byte beyond it")
    func endlessBody() async throws {
        try await withServer { server in
            let filter = loopbackFilter(server)
            let uri = server.url("/endless")
            let (error, received) = try await onWorkerThread { [downloader, filter] () -> (DownloadError?, Int64) in
                var received: Int64 = 0
                do throws(DownloadError) {
                    _ = try downloader.download(uri, filter: filter, limits: DownloadLimits(maxBytes: 1_000_000)) { received += Int64($0.count) }
                    return (nil, received)
                } catch {
                    return (error, received)
                }
            }
            #expect(error == .tooLarge(uri: uri, limit: 1_000_000))
            #expect(received <= 1_000_000)
        }
    }
}

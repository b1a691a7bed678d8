// web-download imports end to end: a real HTTP server on loopback, the real daemon, real images.
import Foundation
import StagingTestSupport
import Testing

/// Starts a loopback server for `file`, then a daemon allowed to fetch from it, and tears both down.
func withWebDownloadMount(serving file: String, plugins: String = "", _ body: (StagingMount, LoopbackHTTPServer) throws -> Void) throws {
    let server = try LoopbackHTTPServer(serving: file)
    defer { server.stop() }
    let config =
        StagingMount.defaultConfig + """

            [DEFAULT]
            enabled_import_methods = glance-direct,web-download

            [import_filtering_opts]
            allowed_hosts = 127.0.0.1
            allowed_ports = \(server.port)

            [stagingfs]
            web_download_stall_timeout = 2

            """ + plugins
    try withStagingMount(config: config) { mount throws in try body(mount, server) }
}

@Suite("web-download imports", .serialized)
struct WebDownloadImportTests {
    @Test("a qcow2 fetched over HTTP is staged through the write path, inspected and imported with the server's bytes")
    func fetchAndImport() throws {
        let alice = try TestUser.alice
        let source = "/tmp/stagingfs-tests/web-\(UUID().uuidString.prefix(8)).qcow2"
        try FileManager.default.createDirectory(atPath: "/tmp/stagingfs-tests", withIntermediateDirectories: true)
        try makeQcow2(source, rawBytes: 6_000_000)
        defer { try? FileManager.default.removeItem(atPath: source); try? FileManager.default.removeItem(atPath: source + ".raw") }
        chmod(source, 0o644)
        try withWebDownloadMount(serving: source) { mount, server throws in
            #expect(try mount.importctl(["import-info"], as: alice).stdout.contains("web-download"))
            let id = try createImage(mount, as: alice, diskFormat: "qcow2")
            let imported = try mount.importctlJSON(["import", id, "--method", "web-download", "--uri", server.url("/chunked"), "--wait"], as: alice)
            #expect(imported["status"] as? String == "active", "\(imported)")
            #expect(imported["os_hash_value"] as? String == (try digest("sha512sum", of: source)))
            #expect(imported["owner"] as? String == "project-a")
            #expect(try digest("sha512sum", of: mount.store + "/" + id) == (try digest("sha512sum", of: source)))
        }
    }

    @Test(
        "refusals: a filtered URI answers 400 at once; a redirect to a disallowed host, a stalled server and an unsafe image fail the task, leaving the image queued and nothing behind"
    )
    func refusals() throws {
        let alice = try TestUser.alice
        let source = "/tmp/stagingfs-tests/web-\(UUID().uuidString.prefix(8)).qcow2"
        try FileManager.default.createDirectory(atPath: "/tmp/stagingfs-tests", withIntermediateDirectories: true)
        try makeQcow2WithBackingFile(source, backing: "/etc/passwd")
        defer { try? FileManager.default.removeItem(atPath: source) }
        chmod(source, 0o644)
        try withWebDownloadMount(serving: source) { mount, server throws in
            let id = try createImage(mount, as: alice, diskFormat: "qcow2")
            let filtered = try mount.importctl(["import", id, "--method", "web-download", "--uri", "http://127.0.0.1:9/image"], as: alice)
            #expect(filtered.status != 0 && filtered.stderr.contains("allowed_ports"), "\(filtered)")

            let cases: [(uri: String, message: String)] = [
                (server.url("/to?http://localhost:\(server.port)/file"), "allowed_hosts"),
                (server.url("/stall"), "sent nothing for 2 s"),
                (server.url("/file"), "backing file"),
            ]
            for (uri, message) in cases {
                let result = try mount.importctl(["import", id, "--method", "web-download", "--uri", uri, "--wait"], as: alice)
                #expect(result.status != 0)
                #expect(result.stderr.contains(message), "\(uri): \(result)")
                #expect(try imageStatus(mount, id, as: alice) == "queued", "the image is queued again after \(uri)")
                #expect(storeFiles(mount).isEmpty)
            }
            #expect(!FileManager.default.fileExists(atPath: mount.backingPath(id)) || mount.log.contains("refused by the format inspector"))
        }
    }

    @Test("a body that never ends is cut at image_size_cap: the task fails saying so and nothing stays staged or stored")
    func endlessBody() throws {
        let alice = try TestUser.alice
        let source = "/tmp/stagingfs-tests/web-\(UUID().uuidString.prefix(8)).raw"
        try makeRandomFile(source, bytes: 10_000)
        defer { try? FileManager.default.removeItem(atPath: source) }
        chmod(source, 0o644)
        try withWebDownloadMount(serving: source, plugins: "\n[DEFAULT]\nimage_size_cap = 1000000\n") { mount, server throws in
            let id = try createImage(mount, as: alice)
            let result = try mount.importctl(["import", id, "--method", "web-download", "--uri", server.url("/endless"), "--wait"], as: alice)
            #expect(result.status != 0 && result.stderr.contains("larger than the limit of 1000000 bytes"), "\(result)")
            #expect(try imageStatus(mount, id, as: alice) == "queued")
            #expect(storeFiles(mount).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: mount.backingPath(id)))
        }
    }

    @Test("every address form that reaches this host is refused (curl reaches the server through each), and no task fetches from it")
    func thisHostInEveryForm() throws {
        let alice = try TestUser.alice
        let source = "/tmp/stagingfs-tests/web-\(UUID().uuidString.prefix(8)).raw"
        try makeRandomFile(source, bytes: 10_000)
        defer { try? FileManager.default.removeItem(atPath: source) }
        chmod(source, 0o644)
        // On "::" the server takes IPv6 and (mapped) IPv4 connections to every address of this host.
        let server = try LoopbackHTTPServer(serving: source, address: "::")
        defer { server.stop() }
        let config =
            StagingMount.defaultConfig + """

                [DEFAULT]
                enabled_import_methods = glance-direct,web-download

                [import_filtering_opts]
                allowed_ports = \(server.port)

                """
        try withStagingMount(config: config) { mount throws in
            let id = try createImage(mount, as: alice)
            // Also this host's own interface addresses: the server, on every address, answers there too.
            let own = try ownAddresses()
            #expect(!own.isEmpty, "this host has an address besides loopback")
            let forms =
                [
                    "0.0.0.0", "127.0.0.1", "127.0.0.2", "localhost", "[::]", "[::1]", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]",
                    "[::ffff:7f00:1]", "[::ffff:0.0.0.0]",
                ] + own
            for host in forms {
                let uri = "http://\(host):\(server.port)/file"
                let fetched = try run(["curl", "-sS", "-g", "-o", "/dev/null", "-w", "%{http_code}", uri])
                #expect(fetched.stdout == "200", "the server is reachable as \(host): \(fetched)")
                let result = try mount.importctl(["import", id, "--method", "web-download", "--uri", uri, "--wait"], as: alice)
                #expect(result.status != 0 && result.stderr.contains("reach this host"), "\(uri): \(result)")
                #expect(try imageStatus(mount, id, as: alice) == "queued")
            }
            #expect(storeFiles(mount).isEmpty)
        }
    }

    /// This host's addresses other than loopback and link-local, as URI hosts, from `ip -o addr`.
    func ownAddresses() throws -> [String] {
        let listed = try run(["ip", "-o", "addr", "show", "scope", "global"])
        return listed.stdout.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard let index = fields.firstIndex(where: { $0 == "inet" || $0 == "inet6" }), index + 1 < fields.count else { return nil }
            let address = fields[index + 1].split(separator: "/").first.map(String.init) ?? ""
            return fields[index] == "inet6" ? "[\(address)]" : address
        }
    }

    @Test(
        "a server that drips a byte inside the stall timeout is cut at web_download_timeout with a clear task message; one project runs at most web_download_per_project downloads"
    )
    func deadlineAndShare() throws {
        let alice = try TestUser.alice, bob = try TestUser.bob
        let source = "/tmp/stagingfs-tests/web-\(UUID().uuidString.prefix(8)).raw"
        try makeRandomFile(source, bytes: 10_000)
        defer { try? FileManager.default.removeItem(atPath: source) }
        chmod(source, 0o644)
        try withWebDownloadMount(serving: source, plugins: "web_download_timeout = 4\nweb_download_per_project = 1\n") { mount, server throws in
            let dripping = try createImage(mount, as: alice)
            let started = Date()
            #expect(try mount.importctl(["import", dripping, "--method", "web-download", "--uri", server.url("/drip")], as: alice).succeeded)
            // While it drips, a second download of the same project is refused; another project's is accepted.
            let second = try createImage(mount, as: alice)
            let refused = try mount.importctl(["import", second, "--method", "web-download", "--uri", server.url("/file")], as: alice)
            #expect(refused.status != 0 && refused.stderr.contains("web_download_per_project"), "\(refused)")
            let bobs = try createImage(mount, as: bob)
            let other = try mount.importctlJSON(["import", bobs, "--method", "web-download", "--uri", server.url("/file"), "--wait"], as: bob)
            #expect(other["status"] as? String == "active", "\(other)")
            // The server would drip for 500 s; the loop only bounds the wait, the task's message is the check.
            var tasks = ""
            while Date().timeIntervalSince(started) < 120 {
                tasks = try mount.importctl(["task-list", "--image", dripping, "--json"], as: alice).stdout
                if tasks.contains("\"failure\"") { break }
                usleep(200_000)
            }
            #expect(tasks.contains("did not finish within 4 s") && tasks.contains("web_download_timeout"), "\(tasks)")
            #expect(try imageStatus(mount, dripping, as: alice) == "queued")
            let retried = try mount.importctlJSON(["import", second, "--method", "web-download", "--uri", server.url("/file"), "--wait"], as: alice)
            #expect(retried["status"] as? String == "active", "the share is free again: \(retried)")
        }
    }
}

// The API over TCP without Keystone: the noauth identity on loopback, TLS, and what a client sends about itself.
import Foundation
import StagingTestSupport
import Testing

@Suite("The API over TCP (noauth, loopback)", .serialized)
struct TCPListenerTests {
    /// The default identities, with every TCP request alice's (project-a, member).
    static func config(port: Int, tls: (certificate: String, key: String)? = nil) -> String {
        StagingMount.defaultConfig + """

            [DEFAULT]
            bind_host = 127.0.0.1
            bind_port = \(port)
            \(tls.map { "cert_file = \($0.certificate)\nkey_file = \($0.key)" } ?? "")

            [stagingfs]
            tcp_noauth_identity = alice

            """
    }

    /// A mount with a TCP listener on a free port; `body` gets the base URL (and, with TLS, the certificate to trust).
    static func withTCPMount(tls: Bool = false, _ body: (StagingMount, String, String?) throws -> Void) throws {
        let port = try freeTCPPort()
        var files: (certificate: String, key: String)?
        if tls {
            let directory = "/tmp/stagingfs-tests/tls-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            files = (directory + "/cert.pem", directory + "/key.pem")
            let made = try run([
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout", directory + "/key.pem", "-out", directory + "/cert.pem",
            ])
            guard made.succeeded else { throw TestSetupError("openssl req failed: \(made)") }
        }
        try withStagingMount(config: config(port: port, tls: files)) { mount throws in
            #expect(mount.log.contains("API listening on TCP"), "\(mount.log)")
            try body(mount, "\(tls ? "https" : "http")://127.0.0.1:\(port)", files?.certificate)
        }
    }

    @Test(
        "a client on loopback creates, stages 3 MiB over TCP and imports: the image is active with the source's sha512, owned by the noauth identity's project")
    func stageAndImportOverTCP() throws {
        try Self.withTCPMount { mount, base, _ throws in
            let source = mount.sourcePath("disk.raw")
            try makeRandomFile(source, bytes: 3 << 20)
            let created = try curl("POST", base + "/v2/images", json: #"{"name": "over-tcp", "disk_format": "raw", "container_format": "bare"}"#)
            #expect(created.status == 201, "\(created)")
            let id = try #require(created.json?["id"] as? String)
            #expect(created.json?["owner"] as? String == "project-a")
            let staged = try curl("PUT", base + "/v2/images/\(id)/stage", file: source)
            #expect(staged.status == 204, "\(staged)")
            let imported = try curl("POST", base + "/v2/images/\(id)/import", json: #"{"method": {"name": "glance-direct"}}"#)
            #expect(imported.status == 202, "\(imported)")
            let active = waitFor(30) { (try? curl("GET", base + "/v2/images/\(id)").json?["status"] as? String) == "active" }
            #expect(active != nil, "the image became active")
            let image = try curl("GET", base + "/v2/images/\(id)")
            #expect(image.json?["os_hash_value"] as? String == (try digest("sha512sum", of: source)))
            #expect(image.json?["size"] as? Int == 3 << 20)
            // The Unix socket sees the same image: one controller behind both listeners.
            let overSocket = try mount.request("GET", "/v2/images/\(id)", as: TestUser.alice)
            #expect(overSocket.status == 200, "\(overSocket)")
        }
    }

    @Test("identity headers a client sends are ignored: X-Roles admin, another X-Project-Id, X-User-Id change nothing")
    func smuggledIdentityHeaders() throws {
        try Self.withTCPMount { mount, base, _ throws in
            let smuggled = [
                "X-Roles: admin", "X-Project-Id: project-b", "X-Tenant-Id: project-b", "X-User-Id: root",
                "X-Identity-Status: Confirmed", "X-Service-Roles: admin", "X-Is-Admin-Project: True",
            ]
            let created = try curl("POST", base + "/v2/images", headers: smuggled, json: #"{"name": "mine", "disk_format": "raw", "container_format": "bare"}"#)
            #expect(created.status == 201, "\(created)")
            #expect(created.json?["owner"] as? String == "project-a", "the owner is the noauth identity's project, not the header's")
            // Admin-only calls stay refused whatever the headers say.
            let tasks = try curl("GET", base + "/v2/tasks", headers: smuggled)
            #expect(tasks.status == 403, "\(tasks)")
            // bob's image (project-b, made over the socket) stays invisible to a TCP caller claiming project-b.
            let bobs = try mount.request("POST", "/v2/images", json: #"{"name": "bobs", "disk_format": "raw", "container_format": "bare"}"#, as: TestUser.bob)
            let bobsID = try #require((try JSONSerialization.jsonObject(with: Data(bobs.body.utf8)) as? [String: Any])?["id"] as? String)
            #expect(try curl("GET", base + "/v2/images/\(bobsID)", headers: smuggled).status == 404)
            #expect(try curl("DELETE", base + "/v2/images/\(bobsID)", headers: smuggled).status == 404)
            let listed = try curl("GET", base + "/v2/images", headers: smuggled)
            #expect(!listed.body.contains(bobsID), "\(listed)")
        }
    }

    @Test("an upload cut off mid-body stages nothing importable and leaves no stuck image: the client can stage again")
    func truncatedUpload() throws {
        try Self.withTCPMount { mount, base, _ throws in
            let created = try curl("POST", base + "/v2/images", json: #"{"name": "cut", "disk_format": "raw", "container_format": "bare"}"#)
            let id = try #require(created.json?["id"] as? String)
            let port = try #require(base.split(separator: ":").last)
            // Promises 4 MiB, sends 1 MiB, closes.
            let cut = try python(
                """
                import socket
                s = socket.create_connection(("127.0.0.1", \(port)))
                s.sendall(b"PUT /v2/images/\(id)/stage HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/octet-stream\\r\\nContent-Length: 4194304\\r\\n\\r\\n")
                s.sendall(b"x" * 1048576)
                s.close()
                """)
            #expect(cut.succeeded, "\(cut)")
            let settled = waitFor(15) { (try? curl("GET", base + "/v2/images/\(id)").json?["status"] as? String) == "queued" }
            let after = try curl("GET", base + "/v2/images/\(id)")
            #expect(settled != nil, "the image went back to queued: \(after)")
            // What arrived is kept for inspection, marked incomplete (never `staged`), and cannot be imported.
            let state = try run(["getfattr", "--only-values", "-n", "user.staging.state", mount.path(id)])
            #expect(state.stdout == "incomplete", "\(state)")
            let refused = try curl("POST", base + "/v2/images/\(id)/import", json: #"{"method": {"name": "glance-direct"}}"#)
            #expect(refused.status == 409, "\(refused)")
            let source = mount.sourcePath("whole.raw")
            try makeRandomFile(source, bytes: 1 << 20)
            #expect(try curl("PUT", base + "/v2/images/\(id)/stage", file: source).status == 204)
            let staged = try curl("GET", base + "/v2/images/\(id)")
            #expect(staged.json?["status"] as? String == "uploading", "\(staged)")
        }
    }

    @Test("TLS with [DEFAULT] cert_file and key_file: a client that trusts the certificate is served; plain HTTP to that port is not")
    func tls() throws {
        try Self.withTCPMount(tls: true) { _, base, certificate throws in
            let certificate = try #require(certificate)
            let listed = try curl("GET", base + "/v2/images", extra: ["--cacert", certificate])
            #expect(listed.status == 200, "\(listed)")
            let untrusted = try run(["curl", "-sS", "-o", "/dev/null", base + "/v2/images"])
            #expect(!untrusted.succeeded, "an unknown certificate is refused by the client: \(untrusted)")
            let plain = try run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", base.replacingOccurrences(of: "https:", with: "http:") + "/v2/images"])
            #expect(plain.stdout != "200", "plain HTTP is not served on the TLS port: \(plain)")
        }
    }

    @Test("a flood of stalled requests spread over loopback addresses is one host's: past its share 127.0.0.1 gets 503 too, and the slots come back")
    func floodFromOneHost() throws {
        try Self.withTCPMount { mount, base, _ throws in
            let port = try #require(URL(string: base)?.port)
            // 40 requests whose bodies never come, from 127.0.0.2–127.0.0.9: each holds a request slot and a router thread.
            let flood = Process()
            flood.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            flood.arguments = [
                "-c",
                """
                import socket, sys, time
                held = []
                for i in range(40):
                    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), source_address=("127.0.0.%d" % (2 + i % 8), 0))
                    s.sendall(b"POST /v2/images HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\nContent-Length: 100\\r\\n\\r\\n")
                    held.append(s)
                print("held", flush=True)
                time.sleep(60)
                """, "\(port)",
            ]
            let output = Pipe()
            flood.standardOutput = output
            try flood.run()
            defer { kill(flood.processIdentifier, SIGKILL); flood.waitUntilExit() }
            _ = output.fileHandleForReading.availableData
            let refused = waitFor(10) { (try? curl("GET", base + "/v2/images"))?.status == 503 }
            #expect(refused != nil, "past 32 requests in progress from loopback, 127.0.0.1 gets 503")
            #expect(mount.log.contains("API request refused") && mount.log.contains("address loopback"), "\(mount.log.suffix(2000))")
            kill(flood.processIdentifier, SIGKILL)
            flood.waitUntilExit()
            let back = waitFor(10) { (try? curl("GET", base + "/v2/images"))?.status == 200 }
            #expect(back != nil, "the slots are released when the flood's connections close")
        }
    }

    @Test("a body trickled a byte at a time is cut off after a minute below 1 KiB/s; a malformed chunk size is a 400, not a 500")
    func trickledAndMalformedBodies() throws {
        try Self.withTCPMount { mount, base, _ throws in
            let port = try #require(URL(string: base)?.port)
            let result = try python(
                """
                import socket, sys, time
                port = int(sys.argv[1])
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(b"POST /v2/images HTTP/1.1\\r\\nHost: x\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\nZZZ\\r\\n{}\\r\\n0\\r\\n\\r\\n")
                s.settimeout(10)
                print(s.recv(100).split(b"\\r\\n")[0].decode(), flush=True)
                t = socket.create_connection(("127.0.0.1", port))
                t.sendall(b"POST /v2/images HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\nContent-Length: 100000\\r\\n\\r\\n{")
                start = time.time()
                try:
                    while time.time() - start < 150:
                        t.sendall(b" ")
                        time.sleep(5)
                    print("never closed", flush=True)
                except OSError:
                    print("closed after %d s" % (time.time() - start), flush=True)
                """, arguments: ["\(port)"])
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasPrefix("HTTP/1.1 400") == true, "\(result)")
            #expect(lines.last?.hasPrefix("closed after") == true, "\(result)")
            #expect(mount.log.contains("API request body arrives too slowly"), "\(mount.log.suffix(2000))")
            #expect(!mount.log.contains("API request failed"), "a client's bad body is not an internal error")
        }
    }

    @Test("start-up refuses a noauth listener off loopback, an unknown noauth identity, half a TLS pair, and a port in use")
    func configurationErrors() throws {
        let mount = try StagingMount()
        defer { mount.tearDown() }
        func start(_ extra: String) throws -> CommandResult { try mount.runDaemon(extraConfig: extra) }
        let refused: [(config: String, says: [String])] = [
            ("[DEFAULT]\nbind_host = 0.0.0.0\n[stagingfs]\ntcp_noauth_identity = alice\n", ["bind_host", "loopback"]),
            ("[DEFAULT]\nbind_host = 127.0.0.1\n[stagingfs]\ntcp_noauth_identity = mallory\n", ["mallory", "[identity:NAME]"]),
            ("[DEFAULT]\nbind_host = 127.0.0.1\ncert_file = /etc/hostname\n[stagingfs]\ntcp_noauth_identity = alice\n", ["key_file"]),
        ]
        for (config, says) in refused {
            let result = try start(config)
            #expect(result.status == 78 && says.allSatisfy(result.stderr.contains), "\(config): \(result)")
        }
        // A port another process holds: the daemon says which and exits before mounting.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        let port = try freeTCPPort()
        holder.arguments = ["-c", "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1', \(port)))\ns.listen()\nprint('ok', flush=True)\ntime.sleep(30)"]
        let out = Pipe()
        holder.standardOutput = out
        try holder.run()
        defer { kill(holder.processIdentifier, SIGKILL); holder.waitUntilExit() }
        _ = out.fileHandleForReading.availableData
        let busy = try start("[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = \(port)\n[stagingfs]\ntcp_noauth_identity = alice\n")
        #expect(busy.status != 0)
        #expect(busy.stderr.contains("127.0.0.1:\(port)") && busy.stderr.contains("bind_port"), "\(busy)")
        #expect(!mount.isListedInMountTable)
    }
}

// Attacks on the API's Unix socket server (our accept loop, then SwiftNIO and Hummingbird): connection floods,
// stalled heads, malformed requests, and identity claimed through headers. Real daemon, real users.
import Foundation
import StagingTestSupport
import Testing

@Suite("Unix socket server under attack", .serialized)
struct UnixSocketServerTests {
    /// Python as `user` with the socket path as its argument, read a line at a time; closing its stdin ends it.
    final class SocketScript {
        private let process = Process()
        private let input = Pipe()
        private let output = Pipe()
        private var buffered = Data()

        /// `program` has `connect()` (a new connection to the socket), `finish()` (waits until told to end) and
        /// `arguments` as sys.argv[2...].
        init(_ program: String, socket: String, arguments: [String] = [], as user: TestUser) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments =
                [
                    "--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--", "/usr/bin/python3", "-u", "-c",
                    """
                    import socket, sys
                    def connect():
                        s = socket.socket(socket.AF_UNIX)
                        s.connect(sys.argv[1])
                        return s
                    def finish():
                        sys.stdin.read()
                    """ + "\n" + program, socket,
                ] + arguments
            process.standardInput = input
            process.standardOutput = output
            process.standardError = output
            try process.run()
        }

        deinit { close() }

        /// The next line it prints; fails when it ends without one.
        func line() throws -> String {
            while !buffered.contains(UInt8(ascii: "\n")) {
                let chunk = output.fileHandleForReading.availableData
                guard !chunk.isEmpty else { throw TestSetupError("the script ended: \(String(decoding: buffered, as: UTF8.self))") }
                buffered += chunk
            }
            let end = buffered.firstIndex(of: UInt8(ascii: "\n"))!
            defer { buffered = Data(buffered[(end + 1)...]) }
            return String(decoding: buffered[buffered.startIndex..<end], as: UTF8.self)
        }

        /// Sends it a line on its stdin.
        func tell(_ line: String) throws { try input.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8)) }

        /// Ends it; its connections close with it.
        func close() {
            guard process.isRunning else { return }
            try? input.fileHandleForWriting.close()  // Closing a pipe's write end loses nothing: the script only waits for it.
            process.waitUntilExit()
        }
    }

    @Test("a uid holding 32 connections is answered 503 on its 33rd at once, logged with its uid and pid; another uid is served meanwhile")
    func connectionShare() throws {
        let alice = try TestUser.alice
        let bob = try TestUser.bob
        try withStagingMount { mount throws in
            let holder = try SocketScript(
                """
                held = [connect() for _ in range(32)]
                extra = connect()
                extra.settimeout(30)
                answer = b""
                while True:
                    chunk = extra.recv(65536)
                    if not chunk: break
                    answer += chunk
                print(answer.decode(errors="replace").replace("\\r\\n", "|"), flush=True)
                finish()
                """, socket: mount.socket, as: bob)
            defer { holder.close() }
            let refused = try holder.line()
            #expect(refused.hasPrefix("HTTP/1.1 503"), "\(refused)")
            #expect(refused.lowercased().contains("content-length:"), "\(refused)")
            #expect(refused.contains("uid \(bob.uid) has 32 requests in progress"), "\(refused)")
            let refusals = mount.log.split(separator: "\n").filter { $0.contains("API connection refused") }
            #expect(refusals.contains { $0.contains("\(bob.uid)") && $0.contains("the limit per caller") }, "\(refusals)")
            #expect(try mount.request("GET", "/v2/images", as: alice).status == 200, "alice has a share of her own")
            #expect(try mount.request("GET", "/v2/images", as: bob).status == 503, "bob's share is still full")
            let client = try mount.importctl(["image-list"], as: bob)
            #expect(client.status != 0 && client.stderr.contains("the limit per caller") && client.stderr.contains("HTTP 503"), "importctl says why: \(client)")
            holder.close()
            // Admission is released when the daemon sees the connections close.
            #expect(try waitFor(10) { try mount.request("GET", "/v2/images", as: bob).status == 200 } != nil, "bob's slots come back")
        }
    }

    @Test("a client that sends half a head and stops is disconnected after the stall bound; others are served meanwhile")
    func stalledHead() throws {
        let alice = try TestUser.alice
        let bob = try TestUser.bob
        try withStagingMount { mount throws in
            let staller = try SocketScript(
                """
                s = connect()
                s.sendall(b"GET /v2/images HTTP/1.1\\r\\nHost: loc")
                print("sent", flush=True)
                s.settimeout(600)
                try:
                    print("closed" if s.recv(4096) == b"" else "answered", flush=True)
                except OSError as error:
                    print("failed: %s" % error, flush=True)
                finish()
                """, socket: mount.socket, as: alice)
            defer { staller.close() }
            #expect(try staller.line() == "sent")
            #expect(try mount.request("GET", "/v2/images", as: bob).status == 200, "another user is served")
            #expect(try mount.request("GET", "/v2/images", as: alice).status == 200, "so is the staller on another connection")
            #expect(try staller.line() == "closed", "the daemon hung up without answering")
            #expect(try mount.importctl(["image-list"], as: alice).succeeded)
        }
    }

    @Test("a body that trickles in is cut off as over TCP, logged with the caller; the image stays queued")
    func tricklingBody() throws {
        let alice = try TestUser.alice
        let bob = try TestUser.bob
        try withStagingMount { mount throws in
            let created = try mount.request("POST", "/v2/images", json: #"{"name": "slow", "disk_format": "raw", "container_format": "bare"}"#, as: alice)
            let id = try #require((try JSONSerialization.jsonObject(with: Data(created.body.utf8)) as? [String: Any])?["id"] as? String, "\(created)")
            let trickler = try SocketScript(
                """
                import time
                s = connect()
                s.sendall(b"PUT /v2/images/%s/stage HTTP/1.1\\r\\nHost: localhost\\r\\nContent-Type: application/octet-stream\\r\\nContent-Length: 1000000\\r\\n\\r\\n" % sys.argv[2].encode())
                print("trickling", flush=True)
                try:
                    for _ in range(600):
                        s.sendall(b"x")
                        time.sleep(1)
                    print("never cut off", flush=True)
                except OSError:
                    print("cut off", flush=True)
                finish()
                """, socket: mount.socket, arguments: [id], as: alice)
            defer { trickler.close() }
            #expect(try trickler.line() == "trickling")
            #expect(try mount.request("GET", "/v2/images", as: bob).status == 200, "others are served meanwhile")
            #expect(try trickler.line() == "cut off")
            let cut = mount.log.split(separator: "\n").filter { $0.contains("API request body arrives too slowly") }
            #expect(cut.contains { $0.contains("uid \(alice.uid)") }, "\(cut)")
            let after = try mount.request("GET", "/v2/images/\(id)", as: alice)
            #expect((try JSONSerialization.jsonObject(with: Data(after.body.utf8)) as? [String: Any])?["status"] as? String == "queued", "\(after)")
        }
    }

    @Test("a malformed request line, an oversized header and too many headers get a 400; the daemon keeps serving")
    func malformedRequests() throws {
        let alice = try TestUser.alice
        try withStagingMount { mount throws in
            let attacker = try SocketScript(
                """
                def ask(data):
                    s = connect()
                    try:
                        s.sendall(data)
                    except OSError:
                        pass  # the daemon may refuse before it read everything: its answer is still there
                    s.settimeout(30)
                    answer = b""
                    try:
                        while b"\\r\\n\\r\\n" not in answer:
                            chunk = s.recv(65536)
                            if not chunk: break
                            answer += chunk
                    except OSError as error:
                        answer += b"failed: %s" % str(error).encode()
                    s.close()
                    print(answer.split(b"\\r\\n")[0].decode(errors="replace"), flush=True)
                ask(b"NOT AN HTTP REQUEST\\r\\n\\r\\n")
                ask(b"GET /v2/images HTTP/1.1\\r\\nHost: localhost\\r\\nX-Big: " + b"a" * 200000 + b"\\r\\n\\r\\n")
                ask(b"GET /v2/images HTTP/1.1\\r\\nHost: localhost\\r\\n" + b"".join(b"X-%d: y\\r\\n" % i for i in range(5000)) + b"\\r\\n")
                finish()
                """, socket: mount.socket, as: alice)
            defer { attacker.close() }
            for attack in ["malformed request line", "oversized header", "too many headers"] {
                let status = try attacker.line()
                #expect(status.hasPrefix("HTTP/1.1 400"), "\(attack): \(status)")
            }
            #expect(try mount.request("GET", "/v2/images", as: alice).status == 200)
            #expect(mount.isMounted)
        }
    }

    @Test("a download has its Content-Length and Content-MD5; a client that stops reading it is cut off after the stall bound, logged")
    func downloads() throws {
        let alice = try TestUser.alice
        let bob = try TestUser.bob
        try withStagingMount { mount throws in
            let size = 16 << 20
            let source = mount.sourcePath("download.raw")
            try makeRandomFile(source, bytes: size)
            let id = try #require(try mount.importctlJSON(["image-create-via-import", "--file", source], as: alice)["id"] as? String)
            // Where alice may write her copy.
            let copies = NSTemporaryDirectory() + "downloads-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: copies, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
            defer { try? FileManager.default.removeItem(atPath: copies) }
            let copy = copies + "/copy.raw"
            let fetched = try run(
                [
                    "curl", "-sS", "-D", "-", "-o", copy, "--unix-socket", mount.socket,
                    "http://localhost/v2/images/\(id)/file",
                ], as: alice)
            let head = fetched.stdout.lowercased()
            #expect(head.hasPrefix("http/1.1 200") && head.contains("content-length: \(size)\r\n"), "\(fetched)")
            #expect(head.contains("content-md5: \(try digest("md5sum", of: source))"), "\(fetched)")
            #expect(try digest("sha512sum", of: copy) == digest("sha512sum", of: source), "the body streamed whole")
            let reader = try SocketScript(
                """
                s = connect()
                s.sendall(b"GET /v2/images/%s/file HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n" % sys.argv[2].encode())
                total = len(s.recv(4096))
                print("reading stopped", flush=True)
                sys.stdin.readline()
                while True:
                    chunk = s.recv(1 << 20)
                    if not chunk: break
                    total += len(chunk)
                print(total, flush=True)
                finish()
                """, socket: mount.socket, arguments: [id], as: alice)
            defer { reader.close() }
            #expect(try reader.line() == "reading stopped")
            #expect(try mount.request("GET", "/v2/images", as: bob).status == 200, "others are served meanwhile")
            #expect(waitFor(300) { mount.log.contains("API download left unread for a minute") } != nil)
            try reader.tell("read on")
            let received = Int(try reader.line()) ?? 0
            #expect(received > 0 && received < size, "the connection ended before the body: \(received) bytes")
        }
    }

    @Test("identity headers (X-Auth-Token, X-Roles, X-Project-Id, X-Tenant-Id, X-User-Id…) on the socket change nothing: the caller is its uid")
    func claimedIdentity() throws {
        let alice = try TestUser.alice
        let bob = try TestUser.bob
        let eve = try TestUser.eve
        try withStagingMount { mount throws in
            let image = #"{"name": "bobs", "disk_format": "raw", "container_format": "bare"}"#
            let created = try mount.request("POST", "/v2/images", json: image, as: bob)
            let bobs = try #require((try JSONSerialization.jsonObject(with: Data(created.body.utf8)) as? [String: Any])?["id"] as? String, "\(created)")
            let claims = [
                "X-Auth-Token: forged", "X-Roles: admin", "X-Project-Id: project-b", "X-Tenant-Id: project-b",
                "X-User-Id: bob", "X-Identity-Status: Confirmed", "X-Service-Roles: admin", "X-Is-Admin-Project: True",
            ]
            #expect(try mount.request("GET", "/v2/images/\(bobs)", headers: claims, as: alice).status == 404)
            #expect(try mount.request("DELETE", "/v2/images/\(bobs)", headers: claims, as: alice).status == 404)
            #expect(try !mount.request("GET", "/v2/images", headers: claims, as: alice).body.contains(bobs))
            let mine = try mount.request("POST", "/v2/images", json: image, headers: claims, as: alice)
            let owner = (try JSONSerialization.jsonObject(with: Data(mine.body.utf8)) as? [String: Any])?["owner"] as? String
            #expect(mine.status == 201 && owner == "project-a", "\(mine)")
            let unclaimed = try mount.request("GET", "/v2/images", as: eve)
            let claimed = try mount.request("GET", "/v2/images", headers: claims, as: eve)
            #expect(claimed.status == unclaimed.status && claimed.body == unclaimed.body, "eve stays unmapped: \(claimed) vs \(unclaimed)")
            #expect(try mount.request("GET", "/v2/images/\(bobs)", as: bob).status == 200, "bob's image is untouched")
        }
    }
}

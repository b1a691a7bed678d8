// The HTTP/1.1 codec over a real Unix socket pair, and the peer credentials the kernel reports.
import Foundation
@testable import HTTPUnix
import SystemPackage
import Testing

@Suite("HTTP over Unix sockets")
struct HTTPConnectionTests {
    /// A listening socket and a connected pair (client side, server side).
    func pair() throws -> (client: HTTPConnection, server: HTTPConnection, path: String) {
        let path = NSTemporaryDirectory() + "http-\(UUID().uuidString.prefix(8)).sock"
        let listener = try UnixSocket.listen(at: path)
        defer { try? listener.close() }
        let client = try UnixSocket.connect(to: path)
        let server = try UnixSocket.accept(listener)
        return (HTTPConnection(descriptor: client), HTTPConnection(descriptor: server), path)
    }

    @Test("a request with headers and a Content-Length body")
    func contentLength() throws {
        let (client, server, _) = try pair()
        defer { client.close(); server.close() }
        try client.write(Data("PUT /v2/images/abc/stage HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world".utf8))
        let head = try #require(try server.readHead())
        #expect(head.method == "PUT" && head.target == "/v2/images/abc/stage")
        #expect(head.header("content-length") == "11")
        var body = Data()
        #expect(try server.readBody(head, chunkSize: 4) { body.append($0) } == 11)
        #expect(String(decoding: body, as: UTF8.self) == "hello world")
    }

    @Test("a chunked body")
    func chunked() throws {
        let (client, server, _) = try pair()
        defer { client.close(); server.close() }
        try client.write(Data("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".utf8))
        let head = try #require(try server.readHead())
        #expect(String(decoding: try server.readBody(head, limit: 100), as: UTF8.self) == "hello world")
    }

    @Test("a body cut short is reported as truncated, with how much arrived")
    func truncated() throws {
        let (client, server, _) = try pair()
        defer { server.close() }
        try client.write(Data("PUT /x HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly this".utf8))
        client.close()
        let head = try #require(try server.readHead())
        #expect(throws: HTTPError.truncated(expected: 100, received: 9)) { try server.readBody(head) { _ in } }
    }

    @Test("bodies framed two ways, or with signed or non-hex sizes, are refused (one message must not read as two)", arguments: [
        "PUT /x HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nhello",
        "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "PUT /x HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
        "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
        "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nhello\r\n0\r\n\r\n",
        "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nh\r\n7fffffffffffffff\r\nhello\r\n0\r\n\r\n",
    ])
    func ambiguousBodies(text: String) throws {
        let (client, server, _) = try pair()
        defer { server.close() }
        try client.write(Data(text.utf8))
        client.close()
        let head = try #require(try server.readHead())
        #expect(throws: HTTPError.self) { _ = try server.readBody(head) { _ in } }
    }

    @Test("a chunk size may carry an extension and spaces before it")
    func chunkExtension() throws {
        let (client, server, _) = try pair()
        defer { client.close(); server.close() }
        try client.write(Data("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 ;name=value\r\nhello\r\n0\r\n\r\n".utf8))
        let head = try #require(try server.readHead())
        #expect(String(decoding: try server.readBody(head, limit: 100), as: UTF8.self) == "hello")
    }

    @Test("malformed heads and oversized bodies are refused", arguments: ["GARBAGE\r\n\r\n", "GET / HTTP/1.1\r\nno colon here\r\n\r\n"])
    func malformed(text: String) throws {
        let (client, server, _) = try pair()
        defer { client.close(); server.close() }
        try client.write(Data(text.utf8))
        #expect(throws: HTTPError.self) { _ = try server.readHead() }
    }

    @Test("the peer's credentials are the kernel's, not anything sent")
    func peerCredentials() throws {
        let (client, server, _) = try pair()
        defer { client.close(); server.close() }
        let peer = try UnixSocket.peerCredentials(of: server.descriptor)
        #expect(peer.uid == getuid() && peer.gid == getgid() && peer.pid == getpid())
        #expect(Set(peer.supplementaryGroups) == Set(try groupsOfThisProcess()))
    }

    @Test("a peer's groups are those it had when it connected, not what its pid's /proc says later")
    func groupsAtConnect() throws {
        let path = NSTemporaryDirectory() + "groups-\(UUID().uuidString.prefix(8)).sock"
        let listener = try UnixSocket.listen(at: path)
        defer { try? listener.close(); unlink(path) }
        // A client that connects with groups 4242 and 4243, then drops them and waits to be told to go.
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        client.arguments = ["python3", "-c", """
            import os, socket, sys
            os.setgroups([4242, 4243])
            s = socket.socket(socket.AF_UNIX)
            s.connect(sys.argv[1])
            os.setgroups([])
            s.send(b"x")
            s.recv(1)
            """, path]
        try client.run()
        defer { kill(client.processIdentifier, SIGKILL); client.waitUntilExit() }
        let connection = HTTPConnection(descriptor: try UnixSocket.accept(listener))
        defer { connection.close() }
        var byte: UInt8 = 0
        _ = read(connection.descriptor.rawValue, &byte, 1)  // the client has dropped its groups by now
        let status = try String(contentsOfFile: "/proc/\(client.processIdentifier)/status", encoding: .utf8)
        #expect(status.contains("Groups:\t\n") || status.contains("Groups:\n") || !status.contains("4242"), "the client dropped them")
        let peer = try UnixSocket.peerCredentials(of: connection.descriptor)
        #expect(Set(peer.supplementaryGroups) == [4242, 4243])
        try connection.write(Data("x".utf8))
    }

    func groupsOfThisProcess() throws -> [UInt32] {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("Groups:") } ?? ""
        return line.dropFirst(7).split(separator: " ").compactMap { UInt32($0) }
    }
}

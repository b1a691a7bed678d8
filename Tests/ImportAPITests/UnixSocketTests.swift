// The API socket's own pieces: who the kernel says connected, taken from the accepted descriptor.
import Foundation
import SystemPackage
import Testing

@testable import ImportAPI

@Suite("The API's Unix socket")
struct UnixSocketTests {
    /// A client process that connects with `groups` (none: this process's), drops them, sends a byte and waits
    /// for one back; and the accepted server side, after that byte.
    func connectedClient(at path: String, groups: [UInt32]?) throws -> (client: Process, server: FileDescriptor) {
        let listener = try UnixSocket.listen(at: path)
        defer { try? listener.close() }
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        client.arguments = [
            "python3", "-c",
            """
            import os, socket, sys
            groups = [int(g) for g in sys.argv[2].split(",") if g]
            if groups: os.setgroups(groups)
            s = socket.socket(socket.AF_UNIX)
            s.connect(sys.argv[1])
            if groups: os.setgroups([])
            s.send(b"x")
            s.recv(1)
            """, path, (groups ?? []).map(String.init).joined(separator: ","),
        ]
        try client.run()
        let server = try UnixSocket.accept(listener)
        // One byte: the client has dropped its groups by now.
        _ = FileHandle(fileDescriptor: server.rawValue, closeOnDealloc: false).readData(ofLength: 1)
        return (client, server)
    }

    func finish(_ client: Process, _ server: FileDescriptor) {
        #expect(throws: Never.self, "the client waits for its byte") { _ = try server.writeAll(Data("x".utf8)) }
        client.waitUntilExit()
        try? server.close()
    }

    @Test("the peer's credentials are the kernel's: its uid, gid, pid and groups")
    func peerCredentials() throws {
        let path = NSTemporaryDirectory() + "peer-\(UUID().uuidString.prefix(8)).sock"
        defer { unlink(path) }
        let (client, server) = try connectedClient(at: path, groups: nil)
        defer { finish(client, server) }
        let peer = try UnixSocket.peerCredentials(of: server)
        #expect(peer.uid == getuid() && peer.gid == getgid() && peer.pid == client.processIdentifier)
        #expect(Set(peer.supplementaryGroups) == Set(try groupsOfThisProcess()))
    }

    @Test("a peer's groups are those it had when it connected, not what its pid's /proc says later")
    func groupsAtConnect() throws {
        let path = NSTemporaryDirectory() + "groups-\(UUID().uuidString.prefix(8)).sock"
        defer { unlink(path) }
        let (client, server) = try connectedClient(at: path, groups: [4242, 4243])
        defer { finish(client, server) }
        let status = try String(contentsOfFile: "/proc/\(client.processIdentifier)/status", encoding: .utf8)
        let groupsLine = status.split(separator: "\n").first { $0.hasPrefix("Groups:") } ?? ""
        #expect(!groupsLine.contains("4242"), "the client dropped them: \(groupsLine)")
        #expect(Set(try UnixSocket.peerCredentials(of: server).supplementaryGroups) == [4242, 4243])
    }

    @Test("more groups than the first guess are all read")
    func manyGroups() throws {
        let path = NSTemporaryDirectory() + "many-\(UUID().uuidString.prefix(8)).sock"
        defer { unlink(path) }
        let groups = (5000..<5100).map(UInt32.init)
        let (client, server) = try connectedClient(at: path, groups: groups)
        defer { finish(client, server) }
        #expect(Set(try UnixSocket.peerCredentials(of: server).supplementaryGroups) == Set(groups))
    }

    func groupsOfThisProcess() throws -> [UInt32] {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("Groups:") } ?? ""
        return line.dropFirst(7).split(separator: " ").compactMap { UInt32($0) }
    }
}

// Unix stream sockets: listen, accept, connect, and the peer's kernel-reported credentials.
import CLinux
import Foundation
import SystemPackage

/// What the kernel says about the process at the other end of a Unix socket (SO_PEERCRED).
public struct PeerCredentials: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32

    /// The peer's supplementary groups, from /proc (the kernel's record, not the client's word).
    public var supplementaryGroups: [UInt32] {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Groups:") }) else { return [] }
        return line.dropFirst("Groups:".count).split(separator: " ").compactMap { UInt32($0.trimmingCharacters(in: .whitespaces)) }
    }
}

public enum UnixSocket {
    /// Listens at `path` (a stale socket file is replaced), with `mode` permissions on the socket file.
    public static func listen(at path: String, mode: mode_t = 0o666) throws(Errno) -> FileDescriptor {
        let fd = clinux_unix_listen(path, 64)
        guard fd >= 0 else { throw Errno(rawValue: -fd) }
        chmod(path, mode)
        return FileDescriptor(rawValue: fd)
    }

    public static func accept(_ listener: FileDescriptor) throws(Errno) -> FileDescriptor {
        while true {
            let fd = clinux_accept(listener.rawValue)
            if fd >= 0 { return FileDescriptor(rawValue: fd) }
            if errno != EINTR { throw Errno(rawValue: errno) }
        }
    }

    public static func connect(to path: String) throws(Errno) -> FileDescriptor {
        let fd = clinux_unix_connect(path)
        guard fd >= 0 else { throw Errno(rawValue: -fd) }
        return FileDescriptor(rawValue: fd)
    }

    public static func peerCredentials(of connection: FileDescriptor) throws(Errno) -> PeerCredentials {
        var uid: UInt32 = 0, gid: UInt32 = 0, pid: Int32 = 0
        let result = clinux_peer_credentials(connection.rawValue, &uid, &gid, &pid)
        guard result == 0 else { throw Errno(rawValue: -result) }
        return PeerCredentials(uid: uid, gid: gid, pid: pid)
    }
}

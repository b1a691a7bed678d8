// Unix stream sockets: listen, accept, connect, and the peer's kernel-reported credentials.
import CLinux
import Foundation
import SystemPackage

/// What the kernel says about the process at the other end of a Unix socket (SO_PEERCRED, SO_PEERGROUPS), as it
/// was when the peer connected: nothing is looked up later by pid, which another process may have by then.
public struct PeerCredentials: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    public var supplementaryGroups: [UInt32]
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

    /// Reads and writes on `connection` fail after `seconds` without progress: an idle or dripping peer cannot
    /// hold its connection forever.
    public static func setStallTimeout(_ connection: FileDescriptor, seconds: Int) throws(Errno) {
        let result = clinux_set_socket_timeouts(connection.rawValue, Int32(seconds))
        guard result == 0 else { throw Errno(rawValue: -result) }
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
        // Most callers have a few groups; the kernel says how many when there are more.
        var groups = [UInt32](repeating: 0, count: 32)
        var needed = 0
        var count = groups.withUnsafeMutableBufferPointer { clinux_peer_groups(connection.rawValue, $0.baseAddress, $0.count, &needed) }
        if count == -ERANGE {
            groups = [UInt32](repeating: 0, count: needed)
            count = groups.withUnsafeMutableBufferPointer { clinux_peer_groups(connection.rawValue, $0.baseAddress, $0.count, &needed) }
        }
        guard count >= 0 else { throw Errno(rawValue: -count) }
        return PeerCredentials(uid: uid, gid: gid, pid: pid, supplementaryGroups: Array(groups.prefix(Int(count))))
    }
}

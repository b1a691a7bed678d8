// The API's Unix stream socket: listen, accept, and the peer's kernel-reported credentials (the C glue reads them).
import CLinux
import Foundation
import SystemPackage

/// What the kernel says about the process at the other end of a Unix socket (SO_PEERCRED, SO_PEERGROUPS), as it
/// was when the peer connected: nothing is looked up later by pid, which another process may have by then.
struct PeerCredentials: Sendable, Equatable {
    var uid: UInt32
    var gid: UInt32
    var pid: Int32
    var supplementaryGroups: [UInt32]
}

enum UnixSocket {
    /// Listens at `path` (a stale socket file is replaced), with `mode` permissions on the socket file.
    static func listen(at path: String, mode: mode_t = 0o666) throws(Errno) -> FileDescriptor {
        let fd = clinux_unix_listen(path, 64)
        guard fd >= 0 else { throw Errno(rawValue: -fd) }
        chmod(path, mode)
        return FileDescriptor(rawValue: fd)
    }

    /// accept4 with SOCK_CLOEXEC, in C: Swift's Glibc does not export it, and a separate fcntl would leave the
    /// descriptor open to a child spawned in between.
    static func accept(_ listener: FileDescriptor) throws(Errno) -> FileDescriptor {
        while true {
            let fd = clinux_accept(listener.rawValue)
            if fd >= 0 { return FileDescriptor(rawValue: fd) }
            if errno != EINTR { throw Errno(rawValue: errno) }
        }
    }

    static func peerCredentials(of connection: FileDescriptor) throws(Errno) -> PeerCredentials {
        var uid: UInt32 = 0, gid: UInt32 = 0, pid: Int32 = 0
        let result = clinux_peer_credentials(connection.rawValue, &uid, &gid, &pid)
        guard result == 0 else { throw Errno(rawValue: -result) }
        // Most callers have a few groups; the kernel says how many when there are more.
        var groups = [UInt32](repeating: 0, count: 32)
        var needed = 0
        var count = clinux_peer_groups(connection.rawValue, &groups, groups.count, &needed)
        if count == -ERANGE {
            groups = [UInt32](repeating: 0, count: needed)
            count = clinux_peer_groups(connection.rawValue, &groups, groups.count, &needed)
        }
        guard count >= 0 else { throw Errno(rawValue: -count) }
        return PeerCredentials(uid: uid, gid: gid, pid: pid, supplementaryGroups: Array(groups.prefix(Int(count))))
    }
}

// The service manager's readiness protocol: with `Type=notify`, systemd (or any supervisor, or a test) sets
// NOTIFY_SOCKET and learns from the daemon itself when the mount and the API serve, not from its log.
import CLinux
import Foundation
import Logging
import SystemPackage

/// Connected once, at start, and kept: the daemon's descriptors are the same before and after it says READY=1.
final class ServiceNotifier: Sendable {
    private let socket: FileDescriptor?
    private let socketPath: String
    private let logger: Logger

    init(environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger) {
        self.logger = logger
        socketPath = environment["NOTIFY_SOCKET"] ?? ""
        guard !socketPath.isEmpty else {
            socket = nil
            return
        }
        let fd = clinux_notify_connect(socketPath)
        if fd < 0 {
            // The daemon serves whether or not its supervisor hears; the supervisor's own timeout tells the operator.
            logger.error(
                "cannot reach the service manager's NOTIFY_SOCKET",
                metadata: [
                    "notify.socket": "\(socketPath)", "error": "\(Errno(rawValue: -fd))",
                ])
        }
        socket = fd >= 0 ? FileDescriptor(rawValue: fd) : nil
    }

    deinit { try? socket?.close() }  // A datagram socket: nothing is lost by closing it.

    /// READY=1: the mount answers and the API listens.
    func ready(mountpoint: String) {
        send("READY=1\nMAINPID=\(getpid())\nSTATUS=serving \(mountpoint)")
    }

    /// STOPPING=1: unmounting, on a signal or an external unmount.
    func stopping() {
        send("STOPPING=1")
    }

    private func send(_ message: String) {
        guard let socket else { return }
        do { _ = try socket.writeAll(message.utf8) } catch {
            logger.error(
                "cannot notify the service manager",
                metadata: [
                    "notify.socket": "\(socketPath)", "notify.message": "\(message.split(separator: "\n").first ?? "")", "error": "\(error)",
                ])
        }
    }
}

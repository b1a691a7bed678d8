// The service manager's readiness protocol: with `Type=notify`, systemd (or any supervisor, or a test) sets
// NOTIFY_SOCKET and learns from the daemon itself when the mount and the API serve, not from its log.
import CLinux
import Foundation
import Logging

struct ServiceNotifier {
    /// NOTIFY_SOCKET: a socket path, or "@name" in the abstract namespace; nil when nobody listens.
    let socketPath: String?
    let logger: Logger

    init(environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        self.logger = logger
    }

    /// READY=1: the mount answers and the API listens.
    func ready(mountpoint: String) {
        send("READY=1\nMAINPID=\(getpid())\nSTATUS=serving \(mountpoint)")
    }

    /// STOPPING=1: unmounting, on a signal or an external unmount.
    func stopping() {
        send("STOPPING=1")
    }

    private func send(_ message: String) {
        guard let socketPath else { return }
        let result = clinux_notify(socketPath, message)
        // The daemon serves whether or not its supervisor heard; the supervisor's own timeout then tells the operator.
        if result != 0 {
            logger.error("cannot notify the service manager", metadata: [
                "notify.socket": "\(socketPath)", "notify.message": "\(message.split(separator: "\n").first ?? "")",
                "error": "\(String(cString: strerror(-result)))",
            ])
        }
    }
}

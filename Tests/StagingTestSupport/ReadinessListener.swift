// The supervisor's end of the daemon's readiness protocol (NOTIFY_SOCKET, as systemd's Type=notify): a test
// waits for the daemon to say READY=1 instead of looking for a line in its log.
import CLinux
import Foundation

public final class ReadinessListener {
    public let socketPath: String
    private let descriptor: Int32

    public init(socketPath: String) throws {
        let fd = clinux_notify_listen(socketPath)
        guard fd >= 0 else { throw TestSetupError("cannot listen for notifications at \(socketPath): \(String(cString: strerror(-fd)))") }
        self.socketPath = socketPath
        descriptor = fd
    }

    deinit {
        close(descriptor)
        unlink(socketPath)
    }

    /// Waits until a notification carries `field` (e.g. `READY=1`), while `alive` holds and up to `timeout`
    /// seconds; returns whether it came. Other notifications (an earlier daemon's STOPPING=1) are passed over.
    public func awaitNotification(_ field: String, timeout: TimeInterval, while alive: () -> Bool = { true }) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [CChar](repeating: 0, count: 4096)
        repeat {
            let got = clinux_notify_receive(descriptor, &buffer, buffer.count, 50)
            guard got >= 0 else { throw TestSetupError("reading a notification failed: \(String(cString: strerror(-got)))") }
            let message = String(decoding: buffer.prefix(Int(got)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if message.split(separator: "\n").contains(Substring(field)) { return true }
        } while alive() && Date() < deadline
        return false
    }
}

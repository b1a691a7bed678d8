// The overall deadline of one web-download: a server that drips a byte just inside the stall timeout would
// otherwise hold an import worker for as long as it likes.
import Foundation
import Glibc
import SystemPackage
import Synchronization

/// Shuts the current connection down when the deadline passes, so that the blocked read returns at once.
final class DownloadDeadline: Sendable {
    let seconds: Double
    private let expiry: Date
    private struct State {
        var socket: FileDescriptor?
        var expired = false
    }
    private let state = Mutex(State())

    init(seconds: Double) {
        self.seconds = seconds
        expiry = Date().addingTimeInterval(seconds)
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [weak self] in self?.expire() }
    }

    var hasExpired: Bool { state.withLock { $0.expired } || Date() >= expiry }

    /// Watches `socket` from now until `release` (call it before the socket is closed: its number may be reused).
    func watch(_ socket: FileDescriptor) {
        let late = state.withLock { state -> Bool in
            state.socket = socket
            return state.expired
        }
        if late { _ = shutdown(socket.rawValue, Int32(SHUT_RDWR)) }
    }

    func release() {
        state.withLock { $0.socket = nil }
    }

    private func expire() {
        state.withLock { state in
            state.expired = true
            // Under the lock: `release` cannot close the descriptor in between.
            if let socket = state.socket { _ = shutdown(socket.rawValue, Int32(SHUT_RDWR)) }
        }
    }
}

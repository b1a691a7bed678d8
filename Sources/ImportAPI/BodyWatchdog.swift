// A request body that arrives slower than a trickle is cut off. The idle timeout alone cannot do it: one byte every
// few seconds resets it, and each such request holds a request slot and a router thread (slowloris).
import Logging
import NIOCore
import Synchronization

final class BodyWatchdog: Sendable {
    /// At least `minimumBytes` must arrive in every `window` while the body is read: about 1 KiB/s.
    static let window: Duration = .seconds(60)
    static let minimumBytes: Int64 = 64 << 10

    private let state = Mutex<(received: Int64, serverWaited: Bool)>((0, false))

    func received(_ count: Int) { state.withLock { $0.received += Int64(count) } }

    /// The server held the body back (the write path was slower than the client): that window is not the client's.
    func serverWaited() { state.withLock { $0.serverWaited = true } }

    /// Watches until cancelled (when the body has been read); closes `channel` after a window that was the
    /// client's alone and brought fewer than `minimumBytes`.
    func watch(_ channel: any Channel, peer: String, logger: Logger) -> Task<Void, Never> {
        Task { [self] in
            var last: Int64 = 0
            while true {
                do { try await Task.sleep(for: Self.window) } catch { return }
                let (received, waited) = state.withLock { state in
                    defer { state.serverWaited = false }
                    return (state.received, state.serverWaited)
                }
                if !waited, received - last < Self.minimumBytes {
                    logger.warning(
                        "API request body arrives too slowly; closing the connection",
                        metadata: ["api.peer": "\(peer)", "body.bytes": "\(received)", "body.minimum_per_minute": "\(Self.minimumBytes)"])
                    channel.close(promise: nil)
                    return
                }
                last = received
            }
        }
    }
}

// Receive buffers for /dev/fuse: a write's buffer is handed to the digest lanes instead of being copied.
import Foundation

/// A fixed set of page-aligned buffers, each big enough for one FUSE request (1 MiB of data plus headers).
/// `take` waits when all are out: that is the back-pressure that bounds the daemon's memory while hashing.
final class BufferPool: @unchecked Sendable {
    let bufferSize: Int
    // Guarded by `condition`.
    private var free: [UnsafeMutableRawPointer] = []
    private let condition = NSCondition()

    init(count: Int, bufferSize: Int) {
        self.bufferSize = bufferSize
        for _ in 0..<count {
            free.append(UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: Int(getpagesize())))
        }
    }

    func take() -> UnsafeMutableRawPointer {
        condition.lock()
        defer { condition.unlock() }
        while free.isEmpty { condition.wait() }
        return free.removeLast()
    }

    func give(_ buffer: UnsafeMutableRawPointer) {
        condition.lock()
        free.append(buffer)
        condition.signal()
        condition.unlock()
    }
}

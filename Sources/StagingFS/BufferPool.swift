// Receive buffers for /dev/fuse: a write's buffer is handed to the digest lanes instead of being copied.
import CFuse
import Foundation

/// A fixed set of buffers, each big enough for one FUSE request (1 MiB of data plus headers).
/// `take` waits when all are out: that is the back-pressure that bounds the daemon's memory while hashing.
///
/// Requests are read at `requestOffset` so that a WRITE's payload (after its two headers) starts on a page
/// boundary: copying it into the backing file's page cache is then page-aligned on both sides, which some
/// CPUs' `rep movsb` needs to run at full speed.
final class BufferPool: @unchecked Sendable {
    /// How many bytes of a request a buffer holds (the kernel's maximum request size).
    let bufferSize: Int
    let requestOffset = 4096 - MemoryLayout<fuse_in_header>.size - MemoryLayout<fuse_write_in>.size
    var capacity: Int { requestOffset + bufferSize }
    // Guarded by `condition`.
    private var free: [UnsafeMutableRawPointer] = []
    private let condition = NSCondition()

    init(count: Int, bufferSize: Int) {
        self.bufferSize = bufferSize
        for _ in 0..<count {
            free.append(UnsafeMutableRawPointer.allocate(byteCount: requestOffset + bufferSize, alignment: Int(getpagesize())))
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

// Hands a body that arrives on an event loop to the router's blocking reads, a few chunks at a time.
import Foundation

/// The exchange pushes chunks as Hummingbird delivers them; the router, on its own thread, takes them. At most
/// `depth` chunks wait: a slow write path slows the sender (backpressure), and a fast one never waits on the loop.
final class BodyRelay: APIRequestBody, @unchecked Sendable {
    // Guarded by `condition`; @unchecked because NSCondition is the lock.
    private let condition = NSCondition()
    private var chunks: [Data] = []
    private var finished = false
    private var failure: (any Error)?
    /// The router returned: what is still pushed is dropped, and the pusher stops.
    private var closed = false
    private var waitingPusher: CheckedContinuation<Void, Never>?
    private let depth = 4

    /// Offers a chunk; false once the router no longer reads (the server then stops reading the body).
    func push(_ chunk: Data) async -> Bool {
        let full: Bool = condition.withLock {
            guard !closed else { return false }
            chunks.append(chunk)
            condition.signal()
            return chunks.count >= depth
        }
        if full {
            await withCheckedContinuation { continuation in
                condition.withLock {
                    if closed || chunks.count < depth { continuation.resume() } else { waitingPusher = continuation }
                }
            }
        }
        return condition.withLock { !closed }
    }

    /// The body ended, whole (`failure` nil) or not.
    func finish(failure: (any Error)? = nil) {
        condition.withLock {
            finished = true
            self.failure = failure
            condition.broadcast()
        }
    }

    /// The router is done with the body.
    func close() {
        condition.withLock {
            closed = true
            chunks.removeAll()
            waitingPusher?.resume()
            waitingPusher = nil
            condition.broadcast()
        }
    }

    private func next() throws -> Data? {
        try condition.withLock { () throws -> Data? in
            while chunks.isEmpty && !finished { condition.wait() }
            if !chunks.isEmpty {
                let chunk = chunks.removeFirst()
                if chunks.count < depth, let pusher = waitingPusher {
                    waitingPusher = nil
                    pusher.resume()
                }
                return chunk
            }
            // Whatever stopped the body (a bad chunk size, a closed connection) is the client's: a 400, not a 500.
            if let failure { throw RequestBodyError.unreadable(reason: "\(failure)") }
            return nil
        }
    }

    func readAll(limit: Int) throws -> Data {
        var data = Data()
        while let chunk = try next() {
            guard data.count + chunk.count <= limit else { throw RequestBodyError.tooLarge(limit: limit) }
            data.append(chunk)
        }
        return data
    }

    func stream(_ consume: (Data) throws -> Void) throws {
        while let chunk = try next() { try consume(chunk) }
    }
}

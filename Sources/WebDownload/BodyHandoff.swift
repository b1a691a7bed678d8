// Hands a response read on a NIO event loop to the import worker's thread, which runs the sink: the sink is
// synchronous and not Sendable (it writes through the staging area), and the worker thread is the one that may
// block. Nothing here runs on Swift's cooperative pool, so a pool blocked elsewhere in the process cannot stall it.
import AsyncHTTPClient
import Dispatch
import Foundation
import ImportCore
import NIOCore
import NIOHTTP1
import Synchronization

/// How one hop ended: its body was delivered, or it redirected.
enum HopOutcome: Sendable {
    case body(Int64)
    case redirect(String)
}

/// One chunk at a time: the event loop reads on only once the sink has taken a chunk (the promise it waits on),
/// so memory stays bounded by what the client buffers.
final class BodyHandoff: HTTPClientResponseDelegate, Sendable {
    typealias Response = Void

    enum Event: Sendable {
        case head(HTTPResponseHead)
        case chunk(Data, taken: EventLoopPromise<Void>)
        /// The exchange ended: nil when the whole body arrived.
        case end((any Error)?)
    }

    /// Thrown to the client by a chunk's promise once the thread no longer takes chunks.
    struct Abandoned: Error {}

    private struct State {
        var events: [Event] = []
        /// The thread takes no more chunks (the sink failed, the body is not wanted, or the deadline passed).
        var abandoned = false
    }

    private let state = Mutex(State())
    /// Signalled once for each event appended.
    private let arrivals = DispatchSemaphore(value: 0)

    // MARK: The event loop's side

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        append(.head(head))
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        let taken = task.eventLoop.makePromise(of: Void.self)
        if !append(.chunk(Data(buffer.readableBytesView), taken: taken)) { taken.fail(Abandoned()) }
        return taken.futureResult
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) {
        append(.end(error))
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {
        append(.end(nil))
    }

    // MARK: The worker thread's side

    /// The next event, or nil when `deadline` passed first.
    func next(until deadline: ContinuousClock.Instant) -> Event? {
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            let nanoseconds = left.components.seconds * 1_000_000_000 + left.components.attoseconds / 1_000_000_000
            guard nanoseconds > 0, arrivals.wait(timeout: .now() + .nanoseconds(Int(clamping: nanoseconds))) == .success else { return nil }
            // `abandon` may have taken the event this signal was for.
            if let event = state.withLock({ $0.events.isEmpty ? nil : $0.events.removeFirst() }) { return event }
        }
    }

    /// Takes no more chunks, cancels the exchange and waits for its end, so that nothing of it outlives the hop.
    func abandon(_ task: HTTPClient.Task<Void>) {
        state.withLock { $0.abandoned = true }
        task.cancel()
        // Every event still queued or yet to come is dropped (a chunk's promise failed) until the end arrives.
        while true {
            let (ended, chunks) = state.withLock { state -> (Bool, [EventLoopPromise<Void>]) in
                let events = state.events
                state.events.removeAll()
                let chunks = events.compactMap { event -> EventLoopPromise<Void>? in
                    if case let .chunk(_, taken) = event { return taken } else { return nil }
                }
                return (events.contains { if case .end = $0 { true } else { false } }, chunks)
            }
            for taken in chunks { taken.fail(Abandoned()) }
            if ended { return }
            arrivals.wait()
        }
    }

    /// False, and nothing appended, for a chunk offered after `abandon`.
    @discardableResult
    private func append(_ event: Event) -> Bool {
        let appended = state.withLock { state -> Bool in
            if case .chunk = event, state.abandoned { return false }
            state.events.append(event)
            return true
        }
        if appended { arrivals.signal() }
        return appended
    }
}

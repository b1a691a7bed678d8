// Hands a body read by an async task to the import worker's thread, which runs the sink: the sink is synchronous
// and not Sendable (it writes through the staging area), and the worker thread is the one that may block.
import Dispatch
import Foundation
import ImportCore
import Synchronization

/// How one hop ended: its body was delivered, or it redirected.
enum HopOutcome: Sendable {
    case body(Int64)
    case redirect(String)
}

/// One chunk at a time: the task waits until the sink has taken a chunk before it reads on, so memory stays bounded
/// by what the client buffers.
final class BodyHandoff: Sendable {
    private enum Event: Sendable {
        case chunk(Data, taken: CheckedContinuation<Void, any Error>)
        case finished(Result<HopOutcome, DownloadError>)
    }

    private struct State {
        var events: [Event] = []
        /// The thread takes no more chunks (the sink failed, or the deadline passed).
        var abandoned = false
    }

    /// Thrown to the task by `deliver` once the thread no longer takes chunks.
    struct Abandoned: Error {}

    private let state = Mutex(State())
    /// Signalled once for each event appended.
    private let arrivals = DispatchSemaphore(value: 0)

    private init() {}

    /// Runs `produce` in a task and feeds the chunks it delivers to `sink` on this thread, until it finishes or
    /// `deadline` passes (then `expired` is thrown, once the task has ended).
    static func run(
        until deadline: ContinuousClock.Instant, expired: DownloadError, sink: (Data) throws -> Void,
        produce: @escaping @Sendable (BodyHandoff) async -> Result<HopOutcome, DownloadError>
    ) throws(DownloadError) -> HopOutcome {
        let handoff = BodyHandoff()
        // Detached: nothing of the caller's context belongs in it, and the caller's thread blocks below.
        let task = Task.detached { handoff.append(.finished(await produce(handoff))) }
        while true {
            guard let event = handoff.next(until: deadline) else {
                handoff.abandon()
                task.cancel()
                handoff.waitForTheTask()
                throw expired
            }
            switch event {
            case let .chunk(data, taken):
                do {
                    try sink(data)
                    taken.resume()
                } catch {
                    handoff.abandon()
                    taken.resume(throwing: Abandoned())
                    handoff.waitForTheTask()
                    throw .sinkFailed(message: "\(error)")
                }
            case let .finished(result):
                return try result.get()
            }
        }
    }

    /// Waits until the sink has taken `chunk`; throws `Abandoned` when it will not.
    func deliver(_ chunk: Data) async throws {
        try await withCheckedThrowingContinuation { (taken: CheckedContinuation<Void, any Error>) in
            if !append(.chunk(chunk, taken: taken)) { taken.resume(throwing: Abandoned()) }
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

    /// The next event, or nil when `deadline` passed first.
    private func next(until deadline: ContinuousClock.Instant) -> Event? {
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            let nanoseconds = left.components.seconds * 1_000_000_000 + left.components.attoseconds / 1_000_000_000
            guard nanoseconds > 0, arrivals.wait(timeout: .now() + .nanoseconds(Int(clamping: nanoseconds))) == .success else { return nil }
            // `abandon` may have taken the event this signal was for.
            if let event = state.withLock({ $0.events.isEmpty ? nil : $0.events.removeFirst() }) { return event }
        }
    }

    /// Refuses further chunks and releases the task from the one it is waiting on, if any.
    private func abandon() {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.abandoned = true
            let chunks = state.events.compactMap { event -> CheckedContinuation<Void, any Error>? in
                if case let .chunk(_, taken) = event { return taken }
                return nil
            }
            state.events.removeAll { if case .chunk = $0 { return true } else { return false } }
            return chunks
        }
        for taken in waiting { taken.resume(throwing: Abandoned()) }
    }

    /// Waits for the task's end, so that its client is shut down before the download returns (after `abandon`,
    /// the only event left to come is the end).
    private func waitForTheTask() {
        while true {
            arrivals.wait()
            if state.withLock({ !$0.events.isEmpty }) { return }
        }
    }
}

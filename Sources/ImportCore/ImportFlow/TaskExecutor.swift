// Runs import flows on a bounded set of worker threads ([taskflow_executor] engine_mode, max_workers).
import CLinux
import Foundation

/// A fixed pool of worker threads taking jobs in order; `serial` is a pool of one.
public final class TaskExecutor: Sendable {
    private enum Job: Sendable {
        case run(@Sendable () -> Void)
        case stop
    }

    private let queue = BoundedQueue<Job>(capacity: 10_000)
    public let workers: Int

    public init(workers: Int) {
        self.workers = max(1, workers)
        for index in 0..<self.workers {
            Thread { [queue] in
                clinux_name_thread("import-\(index)")
                while case let .run(job) = queue.take() { job() }
            }.start()
        }
    }

    public func submit(_ job: @escaping @Sendable () -> Void) {
        queue.put(.run(job))
    }

    /// Lets the workers finish what was submitted, then end.
    public func shutdown() {
        for _ in 0..<workers { queue.put(.stop) }
    }
}

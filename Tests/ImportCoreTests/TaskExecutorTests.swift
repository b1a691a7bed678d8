// engine_mode and max_workers bound how many imports run at once.
import Foundation
import Synchronization
import Testing

@testable import ImportCore

@Suite("Task executor")
struct TaskExecutorTests {
    /// Runs `jobs` jobs that each hold a slot for a while, and returns the most that ran at once.
    func peakConcurrency(workers: Int, jobs: Int) -> Int {
        let executor = TaskExecutor(workers: workers)
        defer { executor.shutdown() }
        let state = Mutex<(running: Int, peak: Int)>((0, 0))
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<jobs {
            executor.submit {
                state.withLock {
                    $0.running += 1; $0.peak = max($0.peak, $0.running)
                }
                usleep(30_000)
                state.withLock { $0.running -= 1 }
                done.signal()
            }
        }
        for _ in 0..<jobs { done.wait() }
        return state.withLock { $0.peak }
    }

    @Test("serial runs one import at a time")
    func serial() {
        var configuration = ImportConfiguration()
        configuration.parallel = false
        configuration.maxWorkers = 8
        #expect(configuration.workers == 1)
        #expect(peakConcurrency(workers: configuration.workers, jobs: 6) == 1)
    }

    @Test("parallel runs up to max_workers at once, never more")
    func parallel() {
        let peak = peakConcurrency(workers: 3, jobs: 9)
        #expect(peak > 1 && peak <= 3)
    }
}

// A blocking FIFO with a capacity, shared by the digest lanes and the task executor.
import Foundation

/// A FIFO with a capacity: `put` waits while full, `take` waits while empty.
final class BoundedQueue<Element: Sendable>: @unchecked Sendable {
    // Guarded by `condition`.
    private var items: [Element?] = []
    private var head = 0
    private let capacity: Int
    private let condition = NSCondition()

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    func put(_ element: Element) {
        condition.lock()
        while items.count - head >= capacity { condition.wait() }
        items.append(element)
        condition.broadcast()
        condition.unlock()
    }

    func take() -> Element {
        condition.lock()
        while head == items.count { condition.wait() }
        let element = items[head]!
        items[head] = nil  // drop the reference now: a queued chunk may be a FUSE buffer the pool wants back
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        }
        condition.broadcast()
        condition.unlock()
        return element
    }
}

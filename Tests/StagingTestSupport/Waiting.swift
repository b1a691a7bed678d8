// Awaiting a condition instead of sleeping a fixed time: a test waits exactly as long as the system needs.
import Foundation

/// Polls `condition` until it holds or `timeout` passes; returns how long it took, or nil. The timeout only
/// bounds a wait that would otherwise hang; no test asserts on the time it returns.
@discardableResult
public func waitFor(_ timeout: TimeInterval, _ condition: () throws -> Bool) rethrows -> TimeInterval? {
    let start = Date()
    while Date().timeIntervalSince(start) < timeout {
        if try condition() { return Date().timeIntervalSince(start) }
        usleep(20_000)
    }
    return nil
}

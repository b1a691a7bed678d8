// How many requests the API serves at once, in all and per caller (a uid on the socket, an address over TCP):
// a flood by one caller leaves room for the others, and no flood can exhaust the daemon's threads.
import Synchronization

final class CallerAdmission<Caller: Hashable & Sendable>: Sendable {
    let total: Int
    let perCaller: Int
    private let open = Mutex<(total: Int, byCaller: [Caller: Int])>((0, [:]))

    init(total: Int, perCaller: Int) {
        self.total = total
        self.perCaller = perCaller
    }

    /// Takes a slot for `caller`, or says why not (for the 503 and the log).
    func admit(_ caller: Caller, describedAs name: String) -> String? {
        open.withLock { open in
            if open.total >= total { return "the API is serving \(total) requests, its limit; retry shortly" }
            if open.byCaller[caller, default: 0] >= perCaller {
                return "\(name) has \(perCaller) requests in progress, the limit per caller; wait for them or close idle ones"
            }
            open.total += 1
            open.byCaller[caller, default: 0] += 1
            return nil
        }
    }

    func release(_ caller: Caller) {
        open.withLock { open in
            open.total -= 1
            open.byCaller[caller, default: 1] -= 1
            if open.byCaller[caller] == 0 { open.byCaller[caller] = nil }
        }
    }
}

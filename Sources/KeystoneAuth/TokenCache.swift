// Validated and refused tokens, remembered for token_cache_time as keystonemiddleware's in-process cache does,
// keyed by the token's sha256 so the cache holds no usable token. Bounded: a flood of garbage tokens cannot grow it.
import Foundation
import ImportCore
import Synchronization

final class TokenCache: Sendable {
    static let capacity = 10_000

    private struct Entry {
        var outcome: TokenValidation
        var until: Date
    }

    /// Seconds an answer is kept; -1 (keystonemiddleware's "no cache") or 0 keeps nothing.
    let lifetime: Int
    private let entries = Mutex<[String: Entry]>([:])

    init(lifetime: Int) {
        self.lifetime = lifetime
    }

    func lookup(_ key: String, now: Date) -> TokenValidation? {
        entries.withLock { entries in
            guard let entry = entries[key] else { return nil }
            guard entry.until > now else {
                entries[key] = nil
                return nil
            }
            return entry.outcome
        }
    }

    /// Keeps `outcome` for the cache lifetime, never past the token's own expiry; Keystone's unavailability is not kept.
    func store(_ outcome: TokenValidation, for key: String, now: Date) {
        guard lifetime > 0 else { return }
        var until = now.addingTimeInterval(TimeInterval(lifetime))
        switch outcome {
        case let .valid(_, expiresAt): until = min(until, expiresAt)
        case .refused: break
        case .unavailable: return
        }
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries = entries.filter { $0.value.until > now } }
            // Still full of live answers: this one is not kept (it will be asked again), rather than evicting others.
            guard entries.count < Self.capacity else { return }
            entries[key] = Entry(outcome: outcome, until: until)
        }
    }

    var count: Int { entries.withLock { $0.count } }
}

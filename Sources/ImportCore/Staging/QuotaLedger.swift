// What each project holds in staging, checked on every write that grows a file.
import Synchronization

/// Bytes and files per project. A leaf lock: nothing else is locked while it is held.
final class QuotaLedger: Sendable {
    struct Usage: Equatable {
        var bytes: Int64 = 0
        var files: Int = 0
    }

    private let usage = Mutex<[ExactText: Usage]>([:])
    private let quotaFor: @Sendable (String) -> StagingQuota

    init(quotaFor: @escaping @Sendable (String) -> StagingQuota) {
        self.quotaFor = quotaFor
    }

    func usage(of project: String) -> Usage {
        usage.withLock { $0[ExactText(project)] ?? Usage() }
    }

    /// Takes `bytes` more for `project`, or refuses without taking anything.
    func reserve(bytes: Int64, files: Int = 0, for project: String) throws(StagingError) {
        let quota = quotaFor(project)
        let key = ExactText(project)
        try usage.withLock { (table: inout [ExactText: Usage]) throws(StagingError) in
            var current = table[key] ?? Usage()
            // A size no file can have (truncate -s 8E) is refused, never an arithmetic trap that stops the daemon.
            let (total, overflow) = current.bytes.addingReportingOverflow(bytes)
            if overflow { throw .fileTooLarge(reason: "\(bytes) more bytes for project \(project) cannot be accounted") }
            if quota.bytes > 0, bytes > 0, total > quota.bytes {
                throw .quotaExceeded(projectID: project, limit: "\(quota.bytes) bytes, \(current.bytes) in use")
            }
            if quota.files > 0, files > 0, current.files + files > quota.files {
                throw .quotaExceeded(projectID: project, limit: "\(quota.files) files, \(current.files) in use")
            }
            current.bytes = total
            current.files += files
            table[key] = current
        }
    }

    /// Bytes `project` may still take; nil when its quota sets no byte limit.
    func remainingBytes(for project: String) -> Int64? {
        let quota = quotaFor(project)
        guard quota.bytes > 0 else { return nil }
        return max(0, quota.bytes - usage(of: project).bytes)
    }

    func release(bytes: Int64, files: Int = 0, for project: String) {
        usage.withLock { table in
            var current = table[ExactText(project)] ?? Usage()
            current.bytes = max(0, current.bytes - max(0, bytes))  // both sides ≥ 0: cannot overflow
            current.files = max(0, current.files - files)
            table[ExactText(project)] = current
        }
    }

    /// Records usage that already exists (start-up), whatever the quota says.
    func add(bytes: Int64, files: Int, for project: String) {
        usage.withLock { table in
            var current = table[ExactText(project)] ?? Usage()
            current.bytes = Self.saturating(current.bytes, bytes)
            current.files += files
            table[ExactText(project)] = current
        }
    }

    /// Sums that cannot trap: a ledger entry is never worth stopping the daemon for.
    private static func saturating(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? .max : .min) : sum
    }
}

// A real PostgreSQL server for tests: the one scripts/start-postgres runs on loopback, started on demand.
import Foundation
import Synchronization

/// Fresh databases on the test server. Each test makes its own and drops it with `drop`; one a test leaves behind
/// goes when scripts/stop-postgres wipes the server's data (scripts/test does that at the end).
public enum TestPostgres {
    public static let host = "127.0.0.1"
    public static let port = 55432
    private static let ready = Mutex(false)

    /// Starts the server if it does not answer (so a plain `swift test` works), creates a new database owned by
    /// `stagingfs`, and returns its URL.
    public static func freshDatabase() throws -> String {
        try ensureServer()
        let name = "stagingfs_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try sql("CREATE DATABASE \(name) OWNER stagingfs")
        return "postgresql://stagingfs@\(host):\(port)/\(name)"
    }

    /// Drops a database `freshDatabase` made, even if connections to it are still open.
    public static func drop(_ url: String) throws {
        guard let name = url.split(separator: "/").last else { return }
        try sql("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    private static func ensureServer() throws {
        try ready.withLock { ready in
            guard !ready else { return }
            if !(try run(["pg_isready", "-q", "-h", host, "-p", "\(port)"]).succeeded) {
                let script = repositoryRoot + "/scripts/start-postgres"
                let started = try run([script])
                guard started.succeeded else { throw TestSetupError("\(script) failed: \(started)") }
            }
            ready = true
        }
    }

    private static func sql(_ statement: String) throws {
        let result = try run(["psql", "-h", host, "-p", "\(port)", "-U", "postgres", "-d", "postgres", "-qtAX", "-v", "ON_ERROR_STOP=1", "-c", statement])
        guard result.succeeded else { throw TestSetupError("psql \(statement) failed: \(result)") }
    }
}

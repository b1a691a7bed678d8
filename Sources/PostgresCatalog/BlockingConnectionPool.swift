// The sync→async bridge: a bounded pool of PostgreSQL connections whose calls block the calling thread.
import Foundation
import ImportCore
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// Up to `limit` connections, opened on demand and reused. A caller borrows one for a whole transaction, so the
/// statements of one catalog call run in order on one connection.
///
/// Why it cannot deadlock: the I/O runs on NIO's event loop threads, and only callers block, on `EventLoopFuture.wait()`
/// (which traps if ever called on an event loop thread) or on `condition` while every connection is lent out. No
/// Swift-concurrency task is involved, so blocked callers never starve the threads that complete their queries. A borrower
/// holds one connection at a time and gives it back before returning, so waiters always make progress — provided a
/// `transaction` body never calls the catalog again (the catalogs' `updateImage` closures only change an `Image`).
final class BlockingConnectionPool: @unchecked Sendable {
    private let configuration: PostgresConnection.Configuration
    private let url: PostgresURL
    private let limit: Int
    private let logger: Logger
    private let eventLoops: any EventLoopGroup

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var idle: [PostgresConnection] = []
    private var opened = 0
    private var nextID = 0
    private var isShutDown = false

    init(url: PostgresURL, limit: Int, logger: Logger) {
        var configuration = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database, tls: .disable)
        configuration.options.connectTimeout = .seconds(10)
        self.configuration = configuration
        self.url = url
        self.limit = limit
        self.logger = logger
        eventLoops = MultiThreadedEventLoopGroup.singleton
    }

    /// Runs `body` on a borrowed connection.
    @discardableResult
    func withConnection<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        let connection = try borrow()
        defer { giveBack(connection) }
        return try body(PostgresSession(connection: connection, logger: logger))
    }

    /// Runs `body` between BEGIN and COMMIT; any error it throws rolls back and is rethrown as it is.
    @discardableResult
    func transaction<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        try withConnection { session in
            try session.execute("BEGIN")
            let result: T
            do {
                result = try body(session)
            } catch {
                // A connection whose rollback failed is in an unknown state: close it, so it is not lent again.
                do { try session.execute("ROLLBACK") } catch { try? session.connection.close().wait() }
                throw error
            }
            try session.execute("COMMIT")
            return result
        }
    }

    /// Closes every connection; later calls fail. Connections lent out are closed when they come back.
    func shutdown() {
        condition.lock()
        isShutDown = true
        let connections = idle
        idle = []
        opened -= connections.count
        condition.broadcast()
        condition.unlock()
        for connection in connections { try? connection.close().wait() }
    }

    private func borrow() throws -> PostgresConnection {
        condition.lock()
        while true {
            if isShutDown {
                condition.unlock()
                throw CatalogError.query(reason: "the PostgreSQL catalog \(url) was shut down")
            }
            if let connection = idle.popLast() {
                condition.unlock()
                return connection
            }
            if opened < limit {
                opened += 1
                nextID += 1
                let id = nextID
                condition.unlock()
                do {
                    return try PostgresConnection.connect(on: eventLoops.next(), configuration: configuration, id: id, logger: logger).wait()
                } catch {
                    condition.lock()
                    opened -= 1
                    condition.signal()
                    condition.unlock()
                    throw CatalogError.cannotConnect(server: url.description, reason: PostgresErrorText.describe(error))
                }
            }
            condition.wait()
        }
    }

    private func giveBack(_ connection: PostgresConnection) {
        condition.lock()
        // A broken connection (server restarted, network cut) is dropped; the next borrower opens a new one.
        let keep = !connection.isClosed && !isShutDown
        if keep { idle.append(connection) } else { opened -= 1 }
        condition.signal()
        condition.unlock()
        if !keep { try? connection.close().wait() }
    }
}

/// One borrowed connection; each statement blocks until the server has answered it.
struct PostgresSession {
    let connection: PostgresConnection
    let logger: Logger

    func query(_ query: PostgresQuery) throws -> PostgresQueryResult {
        do { return try connection.query(query, logger: logger).wait() } catch {
            throw CatalogError.query(reason: PostgresErrorText.describe(error))
        }
    }

    /// Runs a statement and returns how many rows it changed.
    @discardableResult
    func execute(_ statement: PostgresQuery) throws -> Int {
        try query(statement).metadata.rows ?? 0
    }
}

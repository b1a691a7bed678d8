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
                // The server may have closed it while it was idle (restarted, stopped): drop it, open another.
                guard connection.isClosed else {
                    condition.unlock()
                    return connection
                }
                opened -= 1
                continue
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

    /// How long one statement may take, waiting for locks included. PostgresNIO leaves a query on a connection
    /// the server dropped unanswered; without a bound the caller (a FUSE or API thread) would wait forever.
    static let statementTimeout: TimeAmount = .seconds(30)

    func query(_ query: PostgresQuery) throws -> PostgresQueryResult {
        guard !connection.isClosed else {
            throw CatalogError.query(reason: "the connection to PostgreSQL was closed (the server stopped or restarted); retry")
        }
        let loop = connection.eventLoop
        let answer = loop.makePromise(of: PostgresQueryResult.self)
        connection.query(query, logger: logger).cascade(to: answer)
        let timeout = loop.scheduleTask(in: Self.statementTimeout) { answer.fail(StatementTimedOut()) }
        defer { timeout.cancel() }
        do { return try answer.futureResult.wait() } catch is StatementTimedOut {
            // The connection's state is unknown now: close it, so that it is not lent again.
            connection.close().whenComplete { _ in }
            throw CatalogError.query(
                reason: "PostgreSQL did not answer within \(Self.statementTimeout.nanoseconds / 1_000_000_000) s; "
                    + "check that the server is running and reachable")
        } catch {
            throw CatalogError.query(reason: PostgresErrorText.describe(error))
        }
    }

    private struct StatementTimedOut: Error {}

    /// Runs a statement and returns how many rows it changed.
    @discardableResult
    func execute(_ statement: PostgresQuery) throws -> Int {
        try query(statement).metadata.rows ?? 0
    }
}

// Errors of the catalog databases (SQLite and PostgreSQL alike).

/// Errors opening or using the catalog database.
public enum CatalogError: Error, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    /// `server` is the URL without its password (`PostgresURL.description`).
    case cannotConnect(server: String, reason: String)
    case query(reason: String)
    /// The task's lease is another node's now (or another claim's): this node must not change its image.
    case leaseLost(taskID: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "cannot open the catalog database \(path): \(reason); check that the state directory exists and is writable"
        case let .cannotConnect(server, reason):
            return "cannot connect to the PostgreSQL catalog \(server): \(reason); check that the server runs and listens on that host "
                + "and port, that the database and role exist, and that pg_hba.conf and the password let this host in"
        case let .query(reason):
            return "catalog database error: \(reason)"
        case let .leaseLost(taskID):
            return "this node no longer holds the lease on task \(taskID): another node took it over"
        }
    }
}

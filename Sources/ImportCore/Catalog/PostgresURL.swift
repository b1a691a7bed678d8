// `[database] connection = postgresql://…`: parsed once, here, for the configuration and the PostgreSQL catalog alike.
import Foundation

/// A libpq-style connection URL: `postgresql://user[:password]@host[:port]/dbname` (or `postgres://`).
/// Its `description` never shows the password, so it is what logs and messages print.
public struct PostgresURL: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String

    /// Why a URL was refused, for people.
    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    public static let schemes = ["postgresql://", "postgres://"]

    public static func isPostgres(_ text: String) -> Bool { schemes.contains { text.hasPrefix($0) } }

    public init(_ text: String) throws(Invalid) {
        guard Self.isPostgres(text), let components = URLComponents(string: text) else {
            throw Invalid(description: "not a postgresql://user[:password]@host[:port]/dbname URL")
        }
        guard let user = components.user, !user.isEmpty else { throw Invalid(description: "the URL names no user (postgresql://USER@host/dbname)") }
        guard var host = components.host, !host.isEmpty else { throw Invalid(description: "the URL names no host") }
        // URLComponents may keep an IPv6 literal's brackets; a socket address has none.
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else { throw Invalid(description: "the URL names no database (postgresql://user@host/DBNAME)") }
        for item in components.queryItems ?? [] {
            // Connections are not encrypted (yet): accept only the sslmodes that allow that, refuse the others loudly.
            guard item.name == "sslmode", ["disable", "allow", "prefer"].contains(item.value ?? "") else {
                throw Invalid(
                    description: "unsupported URL parameter \(item.name)=\(item.value ?? ""): only sslmode=disable is understood (TLS is not supported)")
            }
        }
        self.user = user
        password = components.password
        self.host = host
        port = components.port ?? 5432
        self.database = database
    }

    /// The URL without its password.
    public var description: String {
        let address = host.contains(":") ? "[\(host)]" : host
        return "postgresql://\(user)\(password == nil ? "" : ":***")@\(address):\(port)/\(database)"
    }
}

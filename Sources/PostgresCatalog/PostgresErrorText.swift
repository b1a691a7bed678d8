// PostgresNIO's errors in words for people: PSQLError's own description is deliberately vague.
import PostgresNIO

enum PostgresErrorText {
    /// The server's message and SQLSTATE, or what went wrong on the way to it. Never includes the password, which
    /// PostgresNIO's errors do not carry.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return String(describing: error) }
        if let info = error.serverInfo, let message = info[.message] {
            let state = info[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return "the server says: \(message)\(state)"
        }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }
}

// A request as the router sees it, whichever listener took it (both serve it with Hummingbird).
import Foundation
import HummingbirdCore

/// Method, target and headers of one request.
public struct APIRequest: Sendable {
    public var method: String
    /// The path and query, as sent.
    public var target: String
    public var headers: [(name: String, value: String)]
    /// `https` when the request came over TLS: for the absolute URLs Glance sends (`Location`).
    public var scheme = "http"

    public init(method: String, target: String, headers: [(name: String, value: String)]) {
        self.method = method
        self.target = target
        self.headers = headers
    }

    /// Hummingbird's request, its Host included (HTTPTypes keeps it as the authority, not as a header field).
    init(_ request: Request, tls: Bool) {
        var headers = request.headers.map { (name: $0.name.canonicalName, value: $0.value) }
        if let authority = request.head.authority { headers.append((name: "Host", value: authority)) }
        self.init(method: request.method.rawValue, target: request.uri.description, headers: headers)
        if tls { scheme = "https" }
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    public var path: String { target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "" }

    /// The query's name/value pairs, decoded (`+` and percent escapes), in order: a name may repeat
    /// (`sort_key=name&sort_key=id`). A malformed escape stays as sent rather than failing the request.
    public var queryItems: [(name: String, value: String)] {
        guard let query = target.split(separator: "?", maxSplits: 1).dropFirst().first else { return [] }
        func decoded(_ text: Substring) -> String {
            let spaced = text.replacingOccurrences(of: "+", with: " ")
            return spaced.removingPercentEncoding ?? spaced
        }
        return query.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (decoded(parts[0]), parts.count > 1 ? decoded(parts[1]) : "")
        }
    }
}

/// A request's body, read by the router only as far as the call needs it. Blocking: the router runs on a
/// thread of its own, never on an event loop.
public protocol APIRequestBody {
    /// The whole body, refused past `limit` bytes.
    func readAll(limit: Int) throws -> Data
    /// The body in chunks as they arrive, each passed to `consume` before the next is read.
    func stream(_ consume: (Data) throws -> Void) throws
}

/// Why a body could not be read: the client's doing (a bad chunk, a closed connection, too many bytes), a 400.
enum RequestBodyError: Error, CustomStringConvertible {
    case unreadable(reason: String)
    case tooLarge(limit: Int)

    var description: String {
        switch self {
        case let .unreadable(reason): return "the body could not be read: \(reason)"
        case let .tooLarge(limit): return "the body is larger than \(limit) bytes"
        }
    }
}

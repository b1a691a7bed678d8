// A request as the router sees it, whichever server read it: the Unix socket's own reader or Hummingbird over TCP.
import Foundation
import HTTPUnix

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

    init(_ head: HTTPHead) { self.init(method: head.method, target: head.target, headers: head.headers) }

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

/// The Unix socket's body: read straight from the connection.
struct ConnectionBody: APIRequestBody {
    let head: HTTPHead
    let connection: HTTPConnection

    func readAll(limit: Int) throws -> Data { try connection.readBody(head, limit: limit) }

    func stream(_ consume: (Data) throws -> Void) throws { _ = try connection.readBody(head, consume) }
}

// What the API answers, and how an error is rendered for the client that asked: as Glance's webob errors,
// by the request's Accept header (JSON, HTML, or plain text).
import Foundation
import GlanceModels

/// A response: status, body with its content type, extra headers.
struct APIResponse {
    var status: Int
    var body: Data
    var headers: [(String, String)] = []
    var contentType = "application/json"
    /// Set for an error: rendered by `negotiated(for:)` in the form the client accepts.
    var errorMessage: String?
    /// An open file the server streams as the body instead of `body` (an image download), with its length; the
    /// server closes it.
    var file: (handle: FileHandle, length: Int64)?

    static func json(_ status: Int, _ object: Any) -> APIResponse {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return APIResponse(status: status, body: data)
    }

    static func encoded(_ status: Int, _ value: some Encodable) -> APIResponse {
        do { return APIResponse(status: status, body: try GlanceCoding.encode(value)) } catch {
            return .error(500, "the response could not be encoded: \(error)")
        }
    }

    static func empty(_ status: Int) -> APIResponse { APIResponse(status: status, body: Data()) }

    static func error(_ status: Int, _ message: String) -> APIResponse {
        var response = APIResponse(status: status, body: Data())
        response.errorMessage = message
        return response.rendered(as: .json)
    }

    enum ErrorForm { case json, html, plain }

    /// webob's choice, which Glance's errors go through: the first of text/html and application/json the Accept
    /// header takes, else text/plain (also for a request without Accept: glanceclient sends none).
    static func errorForm(accept: String?) -> ErrorForm {
        guard let accept, !accept.isEmpty else { return .plain }
        let ranges = accept.split(separator: ",").map { range -> (type: String, q: Double) in
            let parts = range.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            let q = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return (parts.first ?? "", q)
        }
        func quality(_ type: String) -> Double {
            let major = type.split(separator: "/").first.map(String.init) ?? type
            let matching = ranges.filter { $0.type == type || $0.type == major + "/*" || $0.type == "*/*" }
            return matching.map(\.q).max() ?? 0
        }
        let html = quality("text/html"), json = quality("application/json")
        if html > 0, html >= json { return .html }
        if json > 0 { return .json }
        return .plain
    }

    func rendered(as form: ErrorForm) -> APIResponse {
        guard let message = errorMessage else { return self }
        var response = self
        let status = "\(self.status) \(Self.reason(self.status))"
        switch form {
        case .json:
            response.body = (try? GlanceCoding.encode(GlanceError(status: self.status, title: Self.reason(self.status), message: message))) ?? Data()
            response.contentType = "application/json"
        case .html:
            let escaped = message.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;")
            response.body = Data(
                "<html>\n <head>\n  <title>\(status)</title>\n </head>\n <body>\n  <h1>\(status)</h1>\n  \(escaped)<br /><br />\n\n\n\n </body>\n</html>".utf8)
            response.contentType = "text/html; charset=UTF-8"
        case .plain:
            response.body = Data("\(status)\n\n\(message)\n\n   ".utf8)
            response.contentType = "text/plain; charset=UTF-8"
        }
        return response
    }

    /// webob's titles, which Glance's error bodies carry (HTTPTypes has RFC 9110's: "Content Too Large" for 413).
    static func reason(_ status: Int) -> String {
        [
            200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 300: "Multiple Choices", 400: "Bad Request",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 411: "Length Required",
            413: "Request Entity Too Large", 415: "Unsupported Media Type", 500: "Internal Server Error",
            503: "Service Unavailable",
        ][status] ?? "Status"
    }

    /// The response as sent: the error in the client's form, and Glance's request id (not on the version list at `/`
    /// and `/versions`: Glance answers those before its request-id middleware runs).
    func negotiated(for request: APIRequest) -> APIResponse {
        var response = rendered(as: Self.errorForm(accept: request.header("Accept")))
        if request.path != "/", request.path != "/versions" {
            response.headers.append(("x-openstack-request-id", "req-" + UUID().uuidString.lowercased()))
        }
        return response
    }
}

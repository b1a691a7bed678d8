// The client side of the StagingFS API: one interface for every command, over one of two transports
// (the daemon's Unix socket, or the Glance v2 API over TCP).
import Foundation
import GlanceModels
import SystemPackage

/// A response from the daemon.
struct APIReply {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: Data

    func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// Glance's error message, or the status.
    var message: String { (try? GlanceCoding.decode(GlanceError.self, from: body))?.message ?? "HTTP \(status)" }

    /// The body as one of Glance's shapes; a body that is not one is the server's fault, said so.
    func decoded<T: Decodable>(_ type: T.Type) throws -> T {
        do { return try GlanceCoding.decode(type, from: body) } catch {
            throw ClientFailure(
                exit: .serverError, description: "the daemon's reply is not a \(type) (\(error)): \(String(decoding: body.prefix(200), as: UTF8.self))")
        }
    }
}

/// A failure importctl reports to people, with the exit code it ends with.
protocol CtlFailure: Error, CustomStringConvertible {
    var exit: CtlExit { get }
}

/// Why importctl could not get an answer.
struct ClientFailure: CtlFailure {
    let exit: CtlExit
    let description: String
}

/// What a request carries: nothing, bytes of a content type, or a file streamed from its descriptor.
enum APIRequestBody: Sendable {
    case none
    case data(Data, contentType: String)
    /// `progress` is told how many bytes went out so far.
    case file(FileDescriptor, size: Int64, progress: @Sendable (Int64) -> Void)

    var contentType: String? {
        switch self {
        case .none: return nil
        case let .data(_, contentType): return contentType
        case .file: return "application/octet-stream"
        }
    }
}

/// One request, as both transports send it.
struct APIRequest: Sendable {
    var method: String
    /// The path and query from the API's root (`/v2/images`).
    var path: String
    /// Headers every transport sends; the transport adds its own (Host, Content-Length, X-Auth-Token).
    var headers: [(name: String, value: String)]
    var body: APIRequestBody
}

/// How requests reach the daemon.
protocol APITransport: Sendable {
    /// Whether the daemon runs on this host, so that its staging mount may be reachable from here.
    var isLocal: Bool { get }
    func perform(_ request: APIRequest) throws -> APIReply
}

struct APIClient {
    let transport: any APITransport

    /// Sends a request with an optional JSON body, or a file's bytes as the body (reporting progress).
    func send(
        _ method: String, _ path: String, json: (any Encodable)? = nil, contentType: String = "application/json",
        file: FileDescriptor? = nil, fileSize: Int64 = 0, progress: @escaping @Sendable (Int64) -> Void = { _ in }
    ) throws -> APIReply {
        let body: APIRequestBody
        if let file {
            body = .file(file, size: fileSize, progress: progress)
        } else if let json {
            body = .data(try GlanceCoding.encode(json), contentType: contentType)
        } else {
            body = .none
        }
        // Errors come as JSON only when asked for (Glance answers others in text or HTML).
        var headers = [(name: "Accept", value: "application/json")]
        if let type = body.contentType { headers.append((name: "Content-Type", value: type)) }
        return try transport.perform(APIRequest(method: method, path: path, headers: headers, body: body))
    }

    /// Sends and requires a 2xx answer, turning anything else into the matching exit code.
    func expect(_ method: String, _ path: String, json: (any Encodable)? = nil, contentType: String = "application/json") throws -> APIReply {
        let reply = try send(method, path, json: json, contentType: contentType)
        try Self.check(reply)
        return reply
    }

    static func check(_ reply: APIReply) throws {
        guard !(200..<400).contains(reply.status) else { return }
        throw ClientFailure(exit: CtlExit(status: reply.status), description: "\(reply.message) (HTTP \(reply.status))")
    }
}

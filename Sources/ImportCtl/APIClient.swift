// The client side of the StagingFS API: one HTTP request per connection over the daemon's Unix socket.
import Foundation
import GlanceModels
import HTTPUnix
import SystemPackage

/// A response from the daemon.
struct APIReply {
    var status: Int
    var head: HTTPHead
    var body: Data

    var json: Any? { try? JSONSerialization.jsonObject(with: body) }
    var object: [String: Any] { json as? [String: Any] ?? [:] }
    /// Glance's error message, or the status.
    var message: String { (try? GlanceCoding.decode(GlanceError.self, from: body))?.message ?? "HTTP \(status)" }

    /// The body as one of Glance's shapes; a body that is not one is the server's fault, said so.
    func decoded<T: Decodable>(_ type: T.Type) throws -> T {
        do { return try GlanceCoding.decode(type, from: body) } catch {
            throw ClientFailure(exit: .serverError, description: "the daemon's reply is not a \(type) (\(error)): \(String(decoding: body.prefix(200), as: UTF8.self))")
        }
    }
}

/// Why importctl could not get an answer.
struct ClientFailure: Error, CustomStringConvertible {
    let exit: CtlExit
    let description: String
}

struct APIClient {
    let socketPath: String

    /// Sends a request with an optional JSON body, or a file's bytes as the body (reporting progress).
    func send(_ method: String, _ path: String, json: Any? = nil, contentType: String = "application/json",
              file: FileDescriptor? = nil, fileSize: Int64 = 0, progress: ((Int64) -> Void)? = nil) throws -> APIReply {
        // A daemon that refuses a request before reading its body closes early: get EPIPE, then read its answer.
        signal(SIGPIPE, SIG_IGN)
        let socket: FileDescriptor
        do { socket = try UnixSocket.connect(to: socketPath) } catch {
            throw ClientFailure(exit: .unreachable, description: "cannot reach stagingfs at \(socketPath): \(error); is the daemon running? (set --socket or STAGINGFS_SOCKET)")
        }
        let connection = HTTPConnection(descriptor: socket)
        defer { connection.close() }
        let body = try json.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
        let length = file == nil ? Int64(body.count) : fileSize
        do {
            try connection.writeHead("\(method) \(path) HTTP/1.1", headers: [
                // Errors come as JSON only when asked for (Glance answers others in text or HTML).
                ("Host", "localhost"), ("Accept", "application/json"), ("Content-Type", file == nil ? contentType : "application/octet-stream"),
                ("Content-Length", "\(length)"), ("Connection", "close"),
            ])
            if let file {
                var sent: Int64 = 0
                var chunk = [UInt8](repeating: 0, count: 1 << 20)
                while sent < fileSize {
                    let count = try chunk.withUnsafeMutableBytes { try file.read(fromAbsoluteOffset: sent, into: $0) }
                    if count == 0 { break }
                    try connection.write(Data(chunk.prefix(count)))
                    sent += Int64(count)
                    progress?(sent)
                }
            } else if !body.isEmpty {
                try connection.write(body)
            }
        } catch {
            // The daemon may refuse before reading the whole body: its answer still says why.
        }
        guard let head = try connection.readHead() else {
            throw ClientFailure(exit: .unreachable, description: "stagingfs closed the connection without answering")
        }
        let reply = try connection.readBody(head, limit: 64 << 20)
        return APIReply(status: head.statusCode, head: head, body: reply)
    }

    /// Sends and requires a 2xx answer, turning anything else into the matching exit code.
    func expect(_ method: String, _ path: String, json: Any? = nil, contentType: String = "application/json") throws -> APIReply {
        let reply = try send(method, path, json: json, contentType: contentType)
        try Self.check(reply)
        return reply
    }

    static func check(_ reply: APIReply) throws {
        guard !(200..<400).contains(reply.status) else { return }
        throw ClientFailure(exit: CtlExit(status: reply.status), description: "\(reply.message) (HTTP \(reply.status))")
    }
}

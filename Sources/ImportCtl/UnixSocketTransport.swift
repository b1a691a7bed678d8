// The daemon's API on its Unix socket: one HTTP request per connection; who you are is what the kernel says.
import Foundation
import HTTPUnix
import SystemPackage

struct UnixSocketTransport: APITransport {
    let socketPath: String

    var isLocal: Bool { true }

    func perform(_ request: APIRequest) throws -> APIReply {
        // A daemon that refuses a request before reading its body closes early: get EPIPE, then read its answer.
        signal(SIGPIPE, SIG_IGN)
        let socket: FileDescriptor
        do { socket = try UnixSocket.connect(to: socketPath) } catch {
            throw ClientFailure(exit: .unreachable, description: "cannot reach stagingfs at \(socketPath): \(error); is the daemon running? (set --socket or STAGINGFS_SOCKET)")
        }
        let connection = HTTPConnection(descriptor: socket)
        defer { connection.close() }
        let length: Int64
        switch request.body {
        case .none: length = 0
        case let .data(data, _): length = Int64(data.count)
        case let .file(_, size, _): length = size
        }
        do {
            try connection.writeHead("\(request.method) \(request.path) HTTP/1.1", headers: [("Host", "localhost")] + request.headers + [
                ("Content-Length", "\(length)"), ("Connection", "close"),
            ])
            switch request.body {
            case .none: break
            case let .data(data, _): if !data.isEmpty { try connection.write(data) }
            case let .file(file, size, progress):
                var sent: Int64 = 0
                var chunk = [UInt8](repeating: 0, count: 1 << 20)
                while sent < size {
                    let count = try chunk.withUnsafeMutableBytes { try file.read(fromAbsoluteOffset: sent, into: $0) }
                    if count == 0 { break }
                    try connection.write(Data(chunk.prefix(count)))
                    sent += Int64(count)
                    progress(sent)
                }
            }
        } catch {
            // The daemon may refuse before reading the whole body: its answer still says why.
        }
        guard let head = try connection.readHead() else {
            throw ClientFailure(exit: .unreachable, description: "stagingfs closed the connection without answering")
        }
        let reply = try connection.readBody(head, limit: 64 << 20)
        return APIReply(status: head.statusCode, headers: head.headers, body: reply)
    }
}

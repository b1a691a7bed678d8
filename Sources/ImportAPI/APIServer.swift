// The API's socket side: accept on a Unix socket, learn each caller from SO_PEERCRED, answer one request per connection.
import CLinux
import Foundation
import HTTPUnix
import ImportCore
import Logging
import Synchronization
import SystemPackage

/// Serves the Glance v2 subset on a Unix socket. The caller is whoever the kernel says is connected; nothing
/// the client sends about itself is read.
public final class APIServer: Sendable {
    public let socketPath: String
    let router: APIRouter
    let logger: Logger
    private let listener = Mutex<FileDescriptor?>(nil)

    public init(controller: ImportController, socketPath: String, logger: Logger) {
        self.socketPath = socketPath
        self.router = APIRouter(controller: controller, logger: logger)
        self.logger = logger
    }

    /// Listens and starts accepting on a background thread.
    public func start() throws(Errno) {
        let socket = try UnixSocket.listen(at: socketPath)
        listener.withLock { $0 = socket }
        Thread { [self] in
            clinux_name_thread("api-accept")
            while let socket = listener.withLock({ $0 }), let connection = try? UnixSocket.accept(socket) {
                Thread { [self] in serve(connection) }.start()
            }
        }.start()
        logger.info("API listening", metadata: ["api.socket": "\(socketPath)"])
    }

    public func stop() {
        if let socket = listener.withLock({ old -> FileDescriptor? in defer { old = nil }; return old }) {
            _ = shutdown(socket.rawValue, Int32(SHUT_RDWR))
            try? socket.close()
        }
        _ = unlink(socketPath)
    }

    private func serve(_ descriptor: FileDescriptor) {
        let connection = HTTPConnection(descriptor: descriptor)
        defer { connection.close() }
        guard let peer = try? UnixSocket.peerCredentials(of: descriptor) else { return }
        let caller = Caller(uid: peer.uid, gid: peer.gid, pid: peer.pid) { peer.supplementaryGroups }
        let response: APIResponse
        do {
            guard let head = try connection.readHead() else { return }
            response = router.respond(to: head, body: connection, caller: caller)
        } catch {
            response = .error(400, "the request could not be read: \(error)")
        }
        var headers: [(String, String)] = [("Content-Length", "\(response.body.count)"), ("Connection", "close")]
        if !response.body.isEmpty { headers.append(("Content-Type", "application/json")) }
        headers += response.headers
        try? connection.writeHead("HTTP/1.1 \(response.status) \(HTTPConnection.reason(response.status))", headers: headers)
        try? connection.write(response.body)
    }
}

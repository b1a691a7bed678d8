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
    /// Connections being served, in all and per uid: a flood by one local user leaves room for the others.
    private let admission = CallerAdmission<UInt32>(total: 256, perCaller: 32)
    /// Seconds a connection may go without a byte read or written.
    static let stallTimeout = 60

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
            while let socket = listener.withLock({ $0 }) {
                do {
                    let connection = try UnixSocket.accept(socket)
                    Thread { [self] in serve(connection) }.start()
                } catch {
                    guard listener.withLock({ $0 }) != nil else { return }  // stopped
                    // EMFILE, ENOMEM, ECONNABORTED…: transient; the API must outlive them.
                    logger.warning("accepting an API connection failed; retrying", metadata: ["error": "\(error)"])
                    usleep(100_000)
                }
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
        if let refusal = admission.admit(peer.uid, describedAs: "uid \(peer.uid)") {
            logger.warning("API connection refused", metadata: ["caller.uid": "\(peer.uid)", "caller.pid": "\(peer.pid)", "reason": "\(refusal)"])
            answer(connection, .error(503, refusal))
            return
        }
        defer { admission.release(peer.uid) }
        do { try UnixSocket.setStallTimeout(descriptor, seconds: Self.stallTimeout) } catch {
            logger.error("cannot bound an API connection's idle time; closing it", metadata: ["error": "\(error)"])
            return
        }
        let groups = peer.supplementaryGroups
        let caller = Caller(uid: peer.uid, gid: peer.gid, pid: peer.pid) { groups }
        let response: APIResponse
        do {
            guard let head = try connection.readHead() else { return }
            response = router.respond(to: APIRequest(head), body: ConnectionBody(head: head, connection: connection), caller: caller)
        } catch {
            response = .error(400, "the request could not be read: \(error)")
        }
        answer(connection, response)
    }

    private func answer(_ connection: HTTPConnection, _ response: APIResponse) {
        let length = response.file?.length ?? Int64(response.body.count)
        var headers: [(String, String)] = [("Content-Length", "\(length)"), ("Connection", "close")]
        if length > 0 { headers.append(("Content-Type", response.contentType)) }
        headers += response.headers
        // A client that goes away mid-answer ends the connection; nothing is left to tell it.
        do {
            try connection.writeHead("HTTP/1.1 \(response.status) \(HTTPConnection.reason(response.status))", headers: headers)
            if let file = response.file { try stream(file.handle, to: connection) } else { try connection.write(response.body) }
        } catch {
            logger.debug("API answer not delivered", metadata: ["error": "\(error)"])
        }
    }

    private func stream(_ handle: FileHandle, to connection: HTTPConnection) throws {
        defer { try? handle.close() }  // Read-only: closing cannot lose data.
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { try connection.write(chunk) }
    }
}

// The API on its Unix socket: our accept loop learns each caller from the kernel (SO_PEERCRED, SO_PEERGROUPS),
// then SwiftNIO serves the connection with Hummingbird's HTTP/1.1 channel, through the same exchange as TCP.
import CLinux
import Foundation
import HTTPTypes
import HummingbirdCore
import ImportCore
import Logging
import NIOCore
import NIOPosix
import Synchronization
import SystemPackage

/// Serves the Glance v2 subset on a Unix socket. The caller is whoever the kernel says is connected; nothing
/// the client sends about itself is read.
public final class APIServer: Sendable {
    public let socketPath: String
    let exchange: APIExchange
    let logger: Logger
    private let listener = Mutex<SystemPackage.FileDescriptor?>(nil)
    /// Connections being served, in all and per uid: a flood by one local user leaves room for the others.
    private let admission = CallerAdmission<UInt32>(total: 256, perCaller: 32)
    /// Takes an accepted descriptor as it is (already connected): no connect, no address.
    private var bootstrap: ClientBootstrap {
        ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            // A client that shuts down its side after the request (or mid-body) still reads the answer.
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
    }

    public init(controller: ImportController, socketPath: String, logger: Logger) {
        self.socketPath = socketPath
        self.exchange = APIExchange(router: APIRouter(controller: controller, logger: logger), logger: logger)
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
                    admit(try UnixSocket.accept(socket))
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
        if let socket = listener.withLock({ old -> SystemPackage.FileDescriptor? in
            defer { old = nil }; return old
        }) {
            _ = shutdown(socket.rawValue, Int32(SHUT_RDWR))
            try? socket.close()
        }
        _ = unlink(socketPath)
    }

    /// Reads who connected while the descriptor is still ours, takes a slot for that uid, and hands the
    /// connection to NIO: served, or answered 503 at once past the caller's share.
    private func admit(_ descriptor: SystemPackage.FileDescriptor) {
        let peer: PeerCredentials
        do { peer = try UnixSocket.peerCredentials(of: descriptor) } catch {
            logger.warning("API connection closed: the kernel did not say who connected", metadata: ["error": "\(error)"])
            try? descriptor.close()  // Nothing was read or written on it.
            return
        }
        if let refusal = admission.admit(peer.uid, describedAs: "uid \(peer.uid)") {
            logger.warning("API connection refused", metadata: ["caller.uid": "\(peer.uid)", "caller.pid": "\(peer.pid)", "reason": "\(refusal)"])
            Task { await refuse(descriptor, with: APIResponse.error(503, refusal)) }
            return
        }
        let groups = peer.supplementaryGroups
        let caller = Caller(uid: peer.uid, gid: peer.gid, pid: peer.pid) { groups }
        Task {
            defer { admission.release(peer.uid) }
            await serve(descriptor, caller: caller, peer: "uid \(peer.uid) pid \(peer.pid)")
        }
    }

    /// Every request on the connection is `caller`'s, whatever its headers say.
    private func serve(_ descriptor: SystemPackage.FileDescriptor, caller: Caller, peer: String) async {
        let http1 = HTTP1Channel(
            responder: { [exchange] request, writer, channel in
                let response = await exchange.answer(APIRequest(request, tls: false), body: request.body, caller: caller, channel: channel, peer: peer)
                try await writer.write(response: response.head, body: response.body)
            }, configuration: APIExchange.http1)
        do {
            let connection = try await bootstrap.withConnectedSocket(descriptor.rawValue) { http1.setup(channel: $0, logger: self.logger) }
            await http1.handle(value: connection, logger: logger)
        } catch {
            logger.error("an API connection could not be served", metadata: ["caller": "\(peer)", "error": "\(error)"])
        }
    }

    /// Answers before any request is read, then closes: the client learns why at once instead of waiting.
    private func refuse(_ descriptor: SystemPackage.FileDescriptor, with answer: APIResponse) async {
        // Only the channel's pipeline is used, to encode the answer as a served connection's would be: no request is
        // read, so the responder never runs.
        let http1 = HTTP1Channel(responder: { _, _, _ in }, configuration: APIExchange.http1)
        do {
            let connection = try await bootstrap.withConnectedSocket(descriptor.rawValue) { http1.setup(channel: $0, logger: self.logger) }
            try await connection.executeThenClose { _, outbound in
                let response = APIExchange.response(answer)
                try await ResponseWriter(outbound: outbound).write(response: response.head, body: response.body)
            }
        } catch {
            logger.debug("API refusal not delivered", metadata: ["error": "\(error)"])
        }
    }
}

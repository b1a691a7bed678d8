// The API over TCP, served by Hummingbird (a maintained HTTP/1.1 parser on SwiftNIO): each request is
// authenticated, then answered through the same exchange as the Unix socket.
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import ImportCore
import Logging
import NIOCore
import NIOSSL
import Synchronization

/// What the TCP listener hands to its responder: the peer's address, for the noauth loopback check and the logs.
struct TCPRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?
    /// The connection, for the body watchdog to close.
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = CoreRequestContextStorage(source: source)
        remoteAddress = source.channel.remoteAddress
        channel = source.channel
    }
}

/// Serves the Glance v2 API on `[DEFAULT] bind_host:bind_port`, with TLS when `cert_file` and `key_file` are set.
public final class TCPAPIServer: Sendable {
    let configuration: TCPListenerConfiguration
    let exchange: APIExchange
    let authenticator: RequestAuthenticator
    let logger: Logger
    private let task = Mutex<Task<Void, Never>?>(nil)

    public init(controller: ImportController, authenticator: RequestAuthenticator, logger: Logger) {
        configuration = controller.configuration.imports.tcp
        exchange = APIExchange(router: APIRouter(controller: controller, logger: logger), logger: logger)
        self.authenticator = authenticator
        self.logger = logger
    }

    /// Binds and starts serving; returns once the port is bound (or throws why it could not be).
    public func start() async throws(APIServerError) {
        let server: HTTPServerBuilder
        if let certificate = configuration.certificateFile, let key = configuration.keyFile {
            do {
                let tls = TLSConfiguration.makeServerConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
                    privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
                server = try .tls(.http1(configuration: APIExchange.http1), tlsConfiguration: tls)
            } catch {
                throw .tls(certificate: certificate, key: key, reason: "\(error)")
            }
        } else {
            server = .http1(configuration: APIExchange.http1)
        }
        let responder = TCPResponder(exchange: exchange, authenticator: authenticator, tls: configuration.certificateFile != nil, logger: logger)
        // The server's first word: the address it bound, or why it stopped before binding.
        let bound = AsyncStream<Result<String, APIServerError>>.makeStream()
        let (host, port) = (configuration.host, configuration.port)
        let application = Application(
            responder: responder, server: server,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in bound.continuation.yield(.success(channel.localAddress.map { "\($0)" } ?? "?")) },
            logger: logger)
        task.withLock {
            $0 = Task {
                do { try await application.run() } catch {
                    bound.continuation.yield(.failure(.bind(host: host, port: port, reason: "\(error)")))
                }
                bound.continuation.finish()
            }
        }
        var iterator = bound.stream.makeAsyncIterator()
        let address: String
        switch await iterator.next() {
        case let .success(bound)?: address = bound
        case let .failure(error)?: throw error
        case nil: throw .bind(host: host, port: port, reason: "the server stopped before it listened")
        }
        logger.info("API listening on TCP", metadata: ["api.address": "\(address)", "api.tls": "\(configuration.certificateFile != nil)"])
    }

    /// `start` for a caller that is not async (the daemon's main thread): blocks until bound or refused.
    public func startAndWait() throws(APIServerError) {
        let outcome = Mutex<APIServerError?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do throws(APIServerError) { try await start() } catch { outcome.withLock { $0 = error } }
            done.signal()
        }
        done.wait()
        if let error = outcome.withLock({ $0 }) { throw error }
    }

    /// Stops serving and closes the connections to Keystone (an HTTP client must be shut down before it goes).
    public func stop() {
        task.withLock {
            $0?.cancel(); $0 = nil
        }
        let done = DispatchSemaphore(value: 0)
        Task { [authenticator] in
            await authenticator.shutdown()
            done.signal()
        }
        done.wait()
    }
}

/// Why the TCP listener did not start.
public enum APIServerError: Error, CustomStringConvertible {
    case bind(host: String, port: Int, reason: String)
    case tls(certificate: String, key: String, reason: String)

    public var description: String {
        switch self {
        case let .bind(host, port, reason):
            return "cannot listen on \(host):\(port) ([DEFAULT] bind_host, bind_port): \(reason); free the port or choose another"
        case let .tls(certificate, key, reason):
            return "cannot load TLS certificate \(certificate) and key \(key) ([DEFAULT] cert_file, key_file): \(reason)"
        }
    }
}

/// Admits and authenticates each request, then hands it to the exchange.
struct TCPResponder: HTTPResponder {
    let exchange: APIExchange
    let authenticator: RequestAuthenticator
    let tls: Bool
    let logger: Logger
    /// Requests in progress, in all and per peer address: each holds a thread while the router runs.
    let admission = CallerAdmission<String>(total: 256, perCaller: 32)

    func respond(to request: Request, context: TCPRequestContext) async throws -> Response {
        let apiRequest = APIRequest(request, tls: tls)
        let address = context.remoteAddress?.ipAddress ?? "?"
        // Every loopback address is the same host: one share, however many of 127.0.0.0/8 a local user binds.
        let peer = context.remoteAddress.map(RequestAuthenticator.isLoopback) == true ? "loopback" : address
        if let refusal = admission.admit(peer, describedAs: "address \(peer)") {
            logger.warning("API request refused", metadata: ["api.peer": "\(peer)", "reason": "\(refusal)"])
            return APIExchange.response(APIResponse.error(503, refusal).negotiated(for: apiRequest))
        }
        defer { admission.release(peer) }
        let caller: Caller
        switch await authenticator.authenticate(apiRequest, from: context.remoteAddress) {
        case let .caller(authenticated): caller = authenticated
        case let .refused(response): return APIExchange.response(response.negotiated(for: apiRequest))
        }
        return await exchange.answer(apiRequest, body: request.body, caller: caller, channel: context.channel, peer: address)
    }
}

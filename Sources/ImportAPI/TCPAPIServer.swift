// The API over TCP, served by Hummingbird (a maintained HTTP/1.1 parser on SwiftNIO): each request is
// authenticated, then answered by the same router as the Unix socket, on a thread of its own.
import Foundation
import HTTPTypes
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
    let router: APIRouter
    let authenticator: RequestAuthenticator
    let logger: Logger
    private let task = Mutex<Task<Void, Never>?>(nil)

    public init(controller: ImportController, authenticator: RequestAuthenticator, logger: Logger) {
        configuration = controller.configuration.imports.tcp
        router = APIRouter(controller: controller, logger: logger)
        self.authenticator = authenticator
        self.logger = logger
    }

    /// A connection that sends nothing for a minute is closed (the Unix socket's stall timeout): a stalled body
    /// then fails, and the request's thread ends.
    static let http1 = HTTP1Channel.Configuration(idleTimeout: .seconds(60))

    /// Binds and starts serving; returns once the port is bound (or throws why it could not be).
    public func start() async throws(APIServerError) {
        let server: HTTPServerBuilder
        if let certificate = configuration.certificateFile, let key = configuration.keyFile {
            do {
                let tls = TLSConfiguration.makeServerConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
                    privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
                server = try .tls(.http1(configuration: Self.http1), tlsConfiguration: tls)
            } catch {
                throw .tls(certificate: certificate, key: key, reason: "\(error)")
            }
        } else {
            server = .http1(configuration: Self.http1)
        }
        let responder = TCPResponder(router: router, authenticator: authenticator, tls: configuration.certificateFile != nil, logger: logger)
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
        task.withLock { $0?.cancel(); $0 = nil }
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

/// Authenticates, relays the body, and runs the router off the event loop.
struct TCPResponder: HTTPResponder {
    let router: APIRouter
    let authenticator: RequestAuthenticator
    let tls: Bool
    let logger: Logger
    /// Requests in progress, in all and per peer address: each holds a thread while the router runs.
    let admission = CallerAdmission<String>(total: 256, perCaller: 32)

    func respond(to request: Request, context: TCPRequestContext) async throws -> Response {
        var headers = request.headers.map { (name: $0.name.canonicalName, value: $0.value) }
        // HTTPTypes keeps Host as the request's authority, not as a header field.
        if let authority = request.head.authority { headers.append((name: "Host", value: authority)) }
        var apiRequest = APIRequest(method: request.method.rawValue, target: request.uri.description, headers: headers)
        if tls { apiRequest.scheme = "https" }
        let address = context.remoteAddress?.ipAddress ?? "?"
        // Every loopback address is the same host: one share, however many of 127.0.0.0/8 a local user binds.
        let peer = context.remoteAddress.map(RequestAuthenticator.isLoopback) == true ? "loopback" : address
        if let refusal = admission.admit(peer, describedAs: "address \(peer)") {
            logger.warning("API request refused", metadata: ["api.peer": "\(peer)", "reason": "\(refusal)"])
            return Self.response(APIResponse.error(503, refusal).negotiated(for: apiRequest))
        }
        defer { admission.release(peer) }
        let caller: Caller
        switch await authenticator.authenticate(apiRequest, from: context.remoteAddress) {
        case let .caller(authenticated): caller = authenticated
        case let .refused(response): return Self.response(response.negotiated(for: apiRequest))
        }
        let watchdog = BodyWatchdog()
        let watching = watchdog.watch(context.channel, peer: address, logger: logger)
        let relay = BodyRelay()
        async let answer = Self.onOwnThread { [router, apiRequest] in
            defer { relay.close() }
            return router.respond(to: apiRequest, body: relay, caller: caller)
        }
        do {
            for try await buffer in request.body {
                watchdog.received(buffer.readableBytes)
                let offered = ContinuousClock.now
                let taken = await relay.push(Data(buffer.readableBytesView))
                if ContinuousClock.now - offered > .milliseconds(100) { watchdog.serverWaited() }
                guard taken else { break }
            }
            relay.finish()
        } catch {
            relay.finish(failure: error)
        }
        watching.cancel()
        let response = await answer
        guard let file = response.file else { return Self.response(response) }
        var streamed = Self.response(APIResponse(status: response.status, body: Data(), headers: response.headers, contentType: response.contentType))
        streamed.headers[.contentType] = response.contentType
        streamed.headers[.contentLength] = "\(file.length)"
        streamed.body = ResponseBody { [handle = file.handle] writer in
            defer { try? handle.close() }  // Read-only: closing cannot lose data.
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { try await writer.write(ByteBuffer(bytes: chunk)) }
            try await writer.finish(nil)
        }
        return streamed
    }

    /// Runs blocking work (catalog, staging writes, fsync) on a thread that is not the event loop's nor the
    /// cooperative pool's.
    static func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: work()) }.start()
        }
    }

    static func response(_ answer: APIResponse) -> Response {
        var fields = HTTPFields()
        if !answer.body.isEmpty { fields[.contentType] = answer.contentType }
        for (name, value) in answer.headers {
            if let field = HTTPField.Name(name) { fields[field] = value }
        }
        return Response(status: HTTPResponse.Status(code: answer.status), headers: fields,
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body)))
    }
}

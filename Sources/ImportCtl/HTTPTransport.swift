// The daemon's API through AsyncHTTPClient, at one of two addresses: its Unix socket (who you are is what the
// kernel says) or the Glance v2 API over TCP (OS_IMAGE_URL; who you are is the X-Auth-Token's identity).
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization
import SystemPackage

/// Where the API is.
enum APIAddress: Sendable {
    /// The daemon's socket file.
    case unixSocket(path: String)
    /// The image service's root (`http://glance.example:9292`), without a trailing slash; `caFile` is a PEM bundle
    /// to trust instead of the system's roots, for https (OS_CACERT).
    case tcp(baseURL: String, tokens: TokenSource, caFile: String?)
}

struct HTTPTransport: APITransport {
    let address: APIAddress

    var isLocal: Bool {
        if case .unixSocket = address { return true }
        return false
    }

    static let maximumAnswer = 64 << 20
    /// A remote image service that says nothing for this long is taken for dead; the local daemon is waited for
    /// (an upload's answer comes when its import has finished).
    static let remoteReadTimeout: TimeAmount = .seconds(300)

    func perform(_ request: APIRequest) throws -> APIReply {
        let url: String, token: String?, configuration: HTTPClient.Configuration
        switch address {
        case let .unixSocket(path):
            guard let socketURL = URL(httpURLWithSocketPath: path, uri: request.path) else {
                throw RemoteFailure.socketUnreachable(path: path, reason: "the path cannot be put in an http+unix URL")
            }
            (url, token) = (socketURL.absoluteString, nil)
            configuration = try Self.configuration(caFile: nil, readTimeout: nil)
        case let .tcp(baseURL, tokens, caFile):
            (url, token) = (baseURL + request.path, try tokens.token())
            configuration = try Self.configuration(caFile: caFile, readTimeout: Self.remoteReadTimeout)
        }
        let reply = try runToCompletion { [self] in
            // A client per request, as a connection per request: each is shut down before it goes away (HTTPClient
            // asserts that), whatever the request's outcome.
            try await HTTPClient.withHTTPClient(configuration: configuration) { http in
                try await send(request, url: url, token: token, with: http)
            }
        }
        // A 401 is never an answer a command uses: it becomes a failure that says which token was refused and what to do.
        guard case let .tcp(_, tokens, _) = address, reply.status == 401 else { return reply }
        throw RemoteFailure.tokenRefused(url: url, origin: tokens.origin, detail: "\(reply.message), HTTP 401")
    }

    static func configuration(caFile: String?, readTimeout: TimeAmount?) throws -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        // No overall deadline (an upload takes as long as the image is large).
        configuration.timeout = .init(connect: .seconds(10), read: readTimeout)
        // A refused connection is said at once: the pool's default retries it with backoff until the connect timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        if let caFile {
            guard FileManager.default.isReadableFile(atPath: caFile) else { throw RemoteFailure.caFileUnreadable(path: caFile) }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(caFile)
            configuration.tlsConfiguration = tls
        }
        return configuration
    }

    private func send(_ request: APIRequest, url: String, token: String?, with http: HTTPClient) async throws -> APIReply {
        var outgoing = HTTPClientRequest(url: url)
        outgoing.method = HTTPMethod(rawValue: request.method)
        // The daemon builds absolute URLs (Location, the version list) from Host; a socket URL has no host.
        if case .unixSocket = address { outgoing.headers.add(name: "Host", value: "localhost") }
        for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
        if let token { outgoing.headers.add(name: "X-Auth-Token", value: token) }
        switch request.body {
        case .none: break
        case let .data(data, _): outgoing.body = .bytes(ByteBuffer(bytes: data))
        case let .file(file, size, progress):
            outgoing.body = .stream(FileChunks(file: file, size: size, progress: progress), length: .known(size))
        }
        let response: HTTPClientResponse
        do {
            response = try await http.execute(outgoing, deadline: .distantFuture)
        } catch let failure as RemoteFailure {
            throw failure  // The file being uploaded could not be read.
        } catch {
            switch address {
            case let .unixSocket(path): throw RemoteFailure.socketUnreachable(path: path, reason: "\(error)")
            case .tcp: throw RemoteFailure.unreachable(url: url, reason: "\(error)")
            }
        }
        let body: ByteBuffer
        do { body = try await response.body.collect(upTo: Self.maximumAnswer) } catch {
            throw RemoteFailure.answerCutOff(url: shown(url), reason: "\(error)")
        }
        let headers = response.headers.map { (name: $0.name, value: $0.value) }
        return APIReply(status: Int(response.status.code), headers: headers, body: Data(body.readableBytesView))
    }

    /// The address as people know it: the socket's path, not its http+unix URL.
    private func shown(_ url: String) -> String {
        if case let .unixSocket(path) = address { return path }
        return url
    }
}
/// A file's bytes in chunks of 1 MiB, read as the upload asks for them: an image is never all in memory.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    static let chunkSize = 1 << 20

    let file: SystemPackage.FileDescriptor
    let size: Int64
    let progress: @Sendable (Int64) -> Void

    func makeAsyncIterator() -> Iterator { Iterator(chunks: self) }

    struct Iterator: AsyncIteratorProtocol {
        let chunks: FileChunks
        var offset: Int64 = 0

        mutating func next() async throws -> ByteBuffer? {
            guard offset < chunks.size else { return nil }
            let wanted = Int(Swift.min(Int64(FileChunks.chunkSize), chunks.size - offset))
            var buffer = ByteBuffer()
            let file = chunks.file, at = offset
            do {
                try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: wanted) { space in
                    try file.read(fromAbsoluteOffset: at, into: UnsafeMutableRawBufferPointer(rebasing: space.prefix(wanted)))
                }
            } catch {
                throw RemoteFailure.fileUnreadable(reason: "\(error)")
            }
            // The request announced the file's size as its Content-Length: a file that shrank cannot be sent whole.
            guard buffer.readableBytes > 0 else {
                throw RemoteFailure.fileUnreadable(reason: "it ended at byte \(offset) of \(chunks.size); was it changed during the upload?")
            }
            offset += Int64(buffer.readableBytes)
            chunks.progress(offset)
            return buffer
        }
    }
}

/// Runs async work to its end from synchronous code: importctl's commands are ParsableCommands, not async.
func runToCompletion<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
    let outcome = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    // Detached: a task inheriting the caller's actor (the main one) would wait for the thread blocked below.
    Task.detached {
        let result: Result<T, any Error>
        do { result = .success(try await work()) } catch { result = .failure(error) }
        outcome.withLock { $0 = result }
        done.signal()
    }
    done.wait()
    guard let result = outcome.withLock({ $0 }) else { preconditionFailure("the task signalled without an outcome") }
    return try result.get()
}

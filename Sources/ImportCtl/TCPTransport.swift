// The Glance v2 API over TCP (OS_IMAGE_URL), through AsyncHTTPClient; who you are is the X-Auth-Token's identity.
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization
import SystemPackage

/// Why a request over TCP, or the Keystone login before it, got no usable answer.
enum RemoteFailure: CtlFailure {
    case badURL(variable: String, value: String)
    case missingCredential(variable: String)
    case unreachable(url: String, reason: String)
    /// The listener answered 401: the token is not valid there, or none was sent.
    case tokenRefused(url: String, origin: TokenSource.Origin, detail: String)
    case answerCutOff(url: String, reason: String)
    case fileUnreadable(reason: String)
    case caFileUnreadable(path: String)
    case keystoneUnreachable(url: String, reason: String)
    case keystoneRefused(url: String, user: String, project: String, status: Int, detail: String)
    case keystoneUnexpected(url: String, status: Int, detail: String)

    var exit: CtlExit {
        switch self {
        case .badURL, .missingCredential, .caFileUnreadable: return .usage
        case .unreachable, .answerCutOff, .keystoneUnreachable: return .unreachable
        case .fileUnreadable: return .failure
        case .keystoneRefused, .tokenRefused: return .forbidden
        case .keystoneUnexpected: return .serverError
        }
    }

    var description: String {
        switch self {
        case let .badURL(variable, value):
            return "\(variable) must be an http:// or https:// URL with a host, not '\(value)'"
        case let .missingCredential(variable):
            return "OS_AUTH_URL is set but \(variable) is not: set OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME (or OS_PROJECT_ID) to log in to Keystone, or give a token with OS_AUTH_TOKEN"
        case let .unreachable(url, reason):
            return "cannot reach the image service at \(url) (\(reason)); check OS_IMAGE_URL (or --os-image-url) and that stagingfs listens there (bind_host, bind_port)"
        case let .tokenRefused(url, origin, detail):
            switch origin {
            case .none:
                return "the image service at \(url) refused the request without a token (\(detail)): set OS_AUTH_TOKEN, or OS_AUTH_URL, OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME so that importctl gets one from Keystone"
            case .given:
                return "the image service at \(url) refused the token in OS_AUTH_TOKEN (\(detail)): it is expired, revoked or from another Keystone; get a fresh one with `openstack token issue -f value -c id`, or unset it and set OS_AUTH_URL, OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME"
            case let .keystone(credentials):
                return "the image service at \(url) refused the token Keystone at \(credentials.authURL) issued (\(detail)): does the daemon validate tokens with that Keystone ([keystone_authtoken] auth_url)? check OS_AUTH_URL"
            }
        case let .answerCutOff(url, reason):
            return "the image service at \(url) did not answer completely (\(reason))"
        case let .fileUnreadable(reason):
            return "cannot read the file being uploaded: \(reason)"
        case let .caFileUnreadable(path):
            return "OS_CACERT names \(path), which cannot be read"
        case let .keystoneUnreachable(url, reason):
            return "cannot reach Keystone at \(url) (\(reason)); check OS_AUTH_URL"
        case let .keystoneRefused(url, user, project, status, detail):
            return "Keystone at \(url) refused user '\(user)' for project '\(project)' (HTTP \(status): \(detail)); check OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME and OS_USER_DOMAIN_NAME/OS_PROJECT_DOMAIN_NAME"
        case let .keystoneUnexpected(url, status, detail):
            return "Keystone at \(url) answered HTTP \(status) (\(detail))"
        }
    }
}

struct TCPTransport: APITransport {
    /// The image service's root (`http://glance.example:9292`), without a trailing slash.
    let baseURL: String
    let tokens: TokenSource
    /// A PEM bundle to trust instead of the system's roots, for https (OS_CACERT).
    let caFile: String?

    var isLocal: Bool { false }

    static let maximumAnswer = 64 << 20

    func perform(_ request: APIRequest) throws -> APIReply {
        let token = try tokens.token()
        let url = baseURL + request.path
        let configuration = try Self.configuration(caFile: caFile)
        return try refusingUnauthorized(try runToCompletion {
            // A client per request, as the Unix socket has a connection per request: each is shut down before it
            // goes away (HTTPClient asserts that), whatever the request's outcome.
            try await HTTPClient.withHTTPClient(configuration: configuration) { http in
                try await Self.send(request, url: url, token: token, with: http)
            }
        }, url: url)
    }

    static func configuration(caFile: String?) throws -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        // No overall deadline (an upload takes as long as the image is large); a dead peer still ends the wait.
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(300))
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

    private static func send(_ request: APIRequest, url: String, token: String?, with http: HTTPClient) async throws -> APIReply {
        var outgoing = HTTPClientRequest(url: url)
        outgoing.method = HTTPMethod(rawValue: request.method)
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
            throw RemoteFailure.unreachable(url: url, reason: "\(error)")
        }
        let body: ByteBuffer
        do { body = try await response.body.collect(upTo: maximumAnswer) } catch {
            throw RemoteFailure.answerCutOff(url: url, reason: "\(error)")
        }
        let headers = response.headers.map { (name: $0.name, value: $0.value) }
        return APIReply(status: Int(response.status.code), headers: headers, body: Data(body.readableBytesView))
    }

    /// A 401 is never an answer a command uses: it becomes a failure that says which token was refused and what to do.
    private func refusingUnauthorized(_ reply: APIReply, url: String) throws -> APIReply {
        guard reply.status == 401 else { return reply }
        throw RemoteFailure.tokenRefused(url: url, origin: tokens.origin, detail: "\(reply.message), HTTP 401")
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

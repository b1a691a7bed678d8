// The two calls auth_token makes to Keystone v3: the service user's password authentication
// (`POST /v3/auth/tokens`) and the validation of a user's token with it (`GET /v3/auth/tokens`).
import AsyncHTTPClient
import Foundation
import GlanceModels
import ImportCore
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

public enum KeystoneError: Error, CustomStringConvertible, Equatable {
    case unreachable(url: String, reason: String)
    case serviceAuthenticationFailed(url: String, status: Int, detail: String)
    case unexpectedAnswer(url: String, status: Int, detail: String)
    case tls(reason: String)

    public var description: String {
        switch self {
        case let .unreachable(url, reason):
            return "Keystone at \(url) could not be reached (\(reason)); check [keystone_authtoken] auth_url and that Keystone is up"
        case let .serviceAuthenticationFailed(url, status, detail):
            return
                "the service user could not authenticate at \(url) (HTTP \(status): \(detail)); check [keystone_authtoken] username, password, project_name and the domain names"
        case let .unexpectedAnswer(url, status, detail):
            return "Keystone at \(url) answered HTTP \(status) (\(detail))"
        case let .tls(reason):
            return "the TLS settings for Keystone are unusable (\(reason)); check [keystone_authtoken] cafile"
        }
    }
}

final class KeystoneClient: Sendable {
    /// Renewed this long before it expires, so a validation never goes out with a token about to lapse.
    static let serviceTokenMargin: TimeInterval = 120
    static let maximumAnswer = 4 << 20

    let configuration: KeystoneAuthConfiguration
    /// Keystone's v3 root, from `auth_url`.
    let identityV3: String
    private let http: HTTPClient
    private let serviceToken = Mutex<(token: String, expiresAt: Date)?>(nil)

    init(configuration: KeystoneAuthConfiguration) throws(KeystoneError) {
        self.configuration = configuration
        identityV3 = KeystoneV3.root(configuration.authURL.absoluteString)
        var settings = HTTPClient.Configuration()
        settings.redirectConfiguration = .disallow
        settings.timeout = .init(
            connect: .seconds(Int64(configuration.httpConnectTimeout)),
            read: .seconds(Int64(configuration.httpConnectTimeout)))
        if configuration.authURL.scheme == "https" {
            var tls = TLSConfiguration.makeClientConfiguration()
            if let caFile = configuration.caFile {
                guard FileManager.default.isReadableFile(atPath: caFile) else { throw .tls(reason: "cafile \(caFile) is not readable") }
                tls.trustRoots = .file(caFile)
            }
            if configuration.insecure { tls.certificateVerification = .none }
            settings.tlsConfiguration = tls
        }
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: settings)
    }

    func shutdown() async {
        try? await http.shutdown()  // Only fails when already shut down, which leaves nothing to close.
    }

    /// Keystone's answer on `token`, with the service's token; a rejected service token is renewed once.
    func validate(_ token: String) async throws(KeystoneError) -> TokenValidation {
        for attempt in 0..<2 {
            let service = try await currentServiceToken(renew: attempt > 0)
            let answer = try await call(.GET, "auth/tokens?nocatalog", headers: [("X-Auth-Token", service), ("X-Subject-Token", token)])
            switch answer.status {
            case 200:
                guard let body = try? JSONDecoder.keystone.decode(KeystoneTokenBody.self, from: answer.body) else {
                    throw .unexpectedAnswer(url: answer.url, status: 200, detail: "the token body could not be read")
                }
                guard body.token.expiresAt > Date() else { return .refused("the token has expired") }
                return .valid(body.token.identity, expiresAt: body.token.expiresAt)
            case 404:
                return .refused("Keystone does not honour the token (it is malformed, expired or revoked)")
            case 400, 413, 431:
                // Keystone (or the server in front of it) would not even read it: no token it issued looks like that.
                return .refused("Keystone refused to read the token (HTTP \(answer.status))")
            case 401, 403:
                continue  // The service token itself lapsed or was revoked: renew it and ask again.
            default:
                throw .unexpectedAnswer(url: answer.url, status: answer.status, detail: answer.detail)
            }
        }
        throw .serviceAuthenticationFailed(
            url: identityV3, status: 401,
            detail: "Keystone refused the service user's fresh token for validating tokens")
    }

    private func currentServiceToken(renew: Bool) async throws(KeystoneError) -> String {
        if !renew, let current = serviceToken.withLock({ $0 }), current.expiresAt.timeIntervalSinceNow > Self.serviceTokenMargin {
            return current.token
        }
        let request = KeystoneV3.PasswordLogin(
            username: configuration.username, password: configuration.password,
            userDomain: configuration.userDomainName,
            project: .named(configuration.projectName, domain: configuration.projectDomainName))
        guard let payload = try? JSONEncoder().encode(request) else {
            throw .unexpectedAnswer(url: identityV3, status: 0, detail: "the authentication request could not be encoded")
        }
        let answer = try await call(.POST, "auth/tokens?nocatalog", headers: [("Content-Type", "application/json")], body: payload)
        guard answer.status == 201, let token = answer.headers.first(name: "X-Subject-Token"),
            let body = try? JSONDecoder.keystone.decode(KeystoneTokenBody.self, from: answer.body)
        else {
            throw .serviceAuthenticationFailed(url: answer.url, status: answer.status, detail: answer.detail)
        }
        serviceToken.withLock { $0 = (token, body.token.expiresAt) }
        return token
    }

    private struct Answer {
        var url: String
        var status: Int
        var headers: HTTPHeaders
        var body: Data
        /// Keystone's error message, for the log.
        var detail: String {
            KeystoneV3.errorMessage(in: body) ?? String(decoding: body.prefix(200), as: UTF8.self)
        }
    }

    private func call(_ method: HTTPMethod, _ path: String, headers: [(String, String)], body: Data? = nil) async throws(KeystoneError) -> Answer {
        let url = identityV3 + "/" + path
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        do {
            let response = try await http.execute(request, timeout: .seconds(Int64(configuration.httpConnectTimeout) * 2))
            let collected = try await response.body.collect(upTo: Self.maximumAnswer)
            return Answer(url: url, status: Int(response.status.code), headers: response.headers, body: Data(collected.readableBytesView))
        } catch {
            throw .unreachable(url: url, reason: "\(error)")
        }
    }
}

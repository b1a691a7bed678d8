// The X-Auth-Token importctl sends over TCP: given (OS_AUTH_TOKEN), or issued by Keystone for the OS_* credentials.
import AsyncHTTPClient
import Foundation
import GlanceModels
import NIOCore
import Synchronization

/// A password login to Keystone v3 as the usual `OS_*` variables describe it, scoped to one project.
struct KeystoneCredentials: Sendable {
    /// Keystone's v3 root (`http://keystone:5000/v3`).
    var authURL: String
    var username: String
    var password: String
    /// The project by name (in its domain), or by id.
    var project: KeystoneV3.PasswordLogin.Project
    var userDomainName: String
    var caFile: String?

    /// The credentials in `environment`, or nil when OS_AUTH_URL is not set.
    static func from(_ environment: [String: String], caFile: String?) throws(RemoteFailure) -> KeystoneCredentials? {
        guard let authURL = environment["OS_AUTH_URL"], !authURL.isEmpty else { return nil }
        guard let url = URL(string: authURL), ["http", "https"].contains(url.scheme), url.host != nil else {
            throw .badURL(variable: "OS_AUTH_URL", value: authURL)
        }
        func required(_ variable: String) throws(RemoteFailure) -> String {
            guard let value = environment[variable], !value.isEmpty else { throw .missingCredential(variable: variable) }
            return value
        }
        // Asked for in the order people set them, so the message names the first one missing.
        let username = try required("OS_USERNAME"), password = try required("OS_PASSWORD")
        let project: KeystoneV3.PasswordLogin.Project
        if let id = environment["OS_PROJECT_ID"], !id.isEmpty {
            project = .id(id)
        } else {
            project = .named(try required("OS_PROJECT_NAME"), domain: environment["OS_PROJECT_DOMAIN_NAME"] ?? "Default")
        }
        // openstackclient takes OS_AUTH_URL with or without the version; Keystone's token API is under /v3.
        return KeystoneCredentials(
            authURL: KeystoneV3.root(authURL), username: username, password: password,
            project: project, userDomainName: environment["OS_USER_DOMAIN_NAME"] ?? "Default", caFile: caFile)
    }

    private var projectDescription: String {
        switch project {
        case let .named(name, _): return name
        case let .id(id): return id
        }
    }

    /// `POST /v3/auth/tokens?nocatalog` with the password method: the token is the X-Subject-Token header.
    func issueToken() throws -> String {
        let payload = try JSONEncoder().encode(
            KeystoneV3.PasswordLogin(
                username: username, password: password,
                userDomain: userDomainName, project: project))
        let url = authURL + "/auth/tokens?nocatalog"
        let configuration = try HTTPTransport.configuration(caFile: caFile, readTimeout: HTTPTransport.remoteReadTimeout)
        let (status, token, detail) = try runToCompletion {
            try await HTTPClient.withHTTPClient(configuration: configuration) { http in
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: "Accept", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: payload))
                let response: HTTPClientResponse
                let answer: ByteBuffer
                do {
                    response = try await http.execute(request, timeout: .seconds(60))
                    answer = try await response.body.collect(upTo: 4 << 20)
                } catch {
                    throw RemoteFailure.keystoneUnreachable(url: url, reason: "\(error)")
                }
                let message = KeystoneV3.errorMessage(in: Data(answer.readableBytesView))
                return (
                    Int(response.status.code), response.headers.first(name: "X-Subject-Token"),
                    message ?? String(buffer: answer).prefix(200).description
                )
            }
        }
        switch (status, token) {
        case let (201, token?): return token
        case (401, _), (403, _), (404, _):
            throw RemoteFailure.keystoneRefused(url: url, user: username, project: projectDescription, status: status, detail: detail)
        default:
            throw RemoteFailure.keystoneUnexpected(url: url, status: status, detail: detail)
        }
    }
}

/// Where the X-Auth-Token comes from: given, issued by Keystone at the first request, or none (a noauth listener).
final class TokenSource: Sendable {
    enum Origin: Sendable {
        case none
        case given(String)
        case keystone(KeystoneCredentials)
    }

    let origin: Origin
    private let issued = Mutex<String?>(nil)

    init(_ origin: Origin) { self.origin = origin }

    func token() throws -> String? {
        switch origin {
        case .none: return nil
        case let .given(token): return token
        case let .keystone(credentials):
            if let token = issued.withLock({ $0 }) { return token }
            let token = try credentials.issueToken()
            issued.withLock { $0 = token }
            return token
        }
    }
}

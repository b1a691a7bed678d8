// Who a TCP request is: a Keystone-validated token or the configured noauth identity. Never what the client
// says of itself: identity headers (X-User-Id, X-Roles, X-Project-Id…) are not read.
import Foundation
import ImportCore
import KeystoneAuth
import Logging
import NIOCore

enum Authentication: Sendable {
    case caller(Caller)
    /// The answer instead of the call: 401 with WWW-Authenticate, 403, or 503 when Keystone cannot be asked.
    case refused(APIResponse)
}

public struct RequestAuthenticator: Sendable {
    enum Method: Sendable {
        case noauth(Identity)
        /// keystonemiddleware's auth_token: `wwwAuthenticate` is where a refused client is sent to authenticate.
        case keystone(KeystoneTokenValidator, wwwAuthenticate: String)
    }

    let method: Method
    let logger: Logger

    /// The authenticator `[paste_deploy] flavor` / `[stagingfs] tcp_noauth_identity` ask for; nil without a TCP listener.
    public static func configured(_ configuration: TCPListenerConfiguration, logger: Logger) throws(KeystoneError) -> RequestAuthenticator? {
        switch configuration.authentication {
        case let .noauth(identity)?:
            return RequestAuthenticator(method: .noauth(identity), logger: logger)
        case let .keystone(keystone)?:
            let validator = try KeystoneTokenValidator(configuration: keystone, logger: logger)
            return RequestAuthenticator(method: .keystone(validator, wwwAuthenticate: keystone.wwwAuthenticateURI), logger: logger)
        case nil:
            return nil
        }
    }

    /// Closes what the method holds open (Keystone's connections); requests must not follow.
    func shutdown() async {
        if case let .keystone(validator, _) = method { await validator.shutdown() }
    }

    func authenticate(_ request: APIRequest, from peer: SocketAddress?) async -> Authentication {
        let peerText = peer.map { "\($0)" } ?? "?"
        switch method {
        case let .noauth(identity):
            // Bound to loopback by the configuration; checked again per connection, as a proxy or a later
            // bind_host change must not open it to the network.
            guard let peer, Self.isLoopback(peer) else {
                logger.warning("TCP request refused: noauth serves loopback only", metadata: ["api.peer": "\(peerText)"])
                return .refused(.error(403, "this API serves only loopback clients without Keystone ([stagingfs] tcp_noauth_identity)"))
            }
            return .caller(.authenticated(identity))
        case let .keystone(validator, wwwAuthenticate):
            // Glance's version negotiation answers the version list before authtoken runs: no token needed.
            if request.method == "GET", ["/", "/versions"].contains(request.path) {
                return .caller(.authenticated(Identity(userID: "", projectID: "", roles: [])))
            }
            guard let token = request.header("X-Auth-Token") else {
                return .refused(Self.unauthorized(wwwAuthenticate))
            }
            switch await validator.validate(token) {
            case let .valid(identity, _):
                guard !identity.projectID.isEmpty || identity.systemScope != nil else {
                    logger.notice(
                        "TCP request refused: the token is not scoped to a project or the system",
                        metadata: ["api.peer": "\(peerText)", "user.id": "\(identity.userID)"])
                    return .refused(
                        .error(403, "the token is scoped to neither a project nor the system: request a project-scoped token (e.g. --os-project-name)"))
                }
                return .caller(.authenticated(identity))
            case let .refused(reason):
                logger.notice("TCP request refused: invalid token", metadata: ["api.peer": "\(peerText)", "reason": "\(reason)"])
                return .refused(Self.unauthorized(wwwAuthenticate))
            case let .unavailable(reason):
                return .refused(.error(503, "The Keystone service is temporarily unavailable: \(reason)"))
            }
        }
    }

    /// keystonemiddleware's 401: its body and the `WWW-Authenticate` that sends the client to Keystone.
    static func unauthorized(_ wwwAuthenticate: String) -> APIResponse {
        var response = APIResponse.json(
            401,
            [
                "error": [
                    "code": 401, "title": "Unauthorized",
                    "message": "The request you have made requires authentication.",
                ]
            ])
        response.headers.append(("WWW-Authenticate", "Keystone uri=\"\(wwwAuthenticate)\""))
        return response
    }

    static func isLoopback(_ address: SocketAddress) -> Bool {
        guard let ip = address.ipAddress else { return false }
        return ip == "::1" || ip.hasPrefix("127.") || ip.hasPrefix("::ffff:127.")
    }
}

// Who a TCP request is: a Keystone-validated token or the configured noauth identity. Never what the client
// says of itself: identity headers (X-User-Id, X-Roles, X-Project-Id…) are not read.
import Foundation
import ImportCore
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
    }

    let method: Method
    let logger: Logger

    /// The authenticator `[paste_deploy] flavor` / `[stagingfs] tcp_noauth_identity` ask for.
    public static func configured(_ configuration: TCPListenerConfiguration, logger: Logger) -> RequestAuthenticator? {
        switch configuration.authentication {
        case let .noauth(identity)?: return RequestAuthenticator(method: .noauth(identity), logger: logger)
        case .keystone?, nil: return nil
        }
    }

    func authenticate(_ request: APIRequest, from peer: SocketAddress?) async -> Authentication {
        switch method {
        case let .noauth(identity):
            // Bound to loopback by the configuration; checked again per connection, as a proxy or a later
            // bind_host change must not open it to the network.
            guard let peer, Self.isLoopback(peer) else {
                logger.warning("TCP request refused: noauth serves loopback only", metadata: ["api.peer": "\(peer.map { "\($0)" } ?? "?")"])
                return .refused(.error(403, "this API serves only loopback clients without Keystone ([stagingfs] tcp_noauth_identity)"))
            }
            return .caller(.authenticated(identity))
        }
    }

    static func isLoopback(_ address: SocketAddress) -> Bool {
        guard let ip = address.ipAddress else { return false }
        return ip == "::1" || ip.hasPrefix("127.") || ip.hasPrefix("::ffff:127.")
    }
}

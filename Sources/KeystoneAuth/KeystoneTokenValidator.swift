// Keystone token validation as keystonemiddleware's auth_token does it: the service user's own token asks
// `GET /v3/auth/tokens` who an X-Auth-Token belongs to; answers are cached for `token_cache_time`.
import Foundation
import ImportCore
import Logging

/// What Keystone said of a token.
public enum TokenValidation: Sendable, Equatable {
    /// Keystone vouches for it: the identity the policy sees, until `expiresAt`.
    case valid(Identity, expiresAt: Date)
    /// Not a token Keystone honours (garbage, expired, revoked): the client must authenticate again (401).
    case refused(String)
    /// Keystone could not be asked or would not answer the service: nothing can be decided (503).
    case unavailable(String)
}

public final class KeystoneTokenValidator: Sendable {
    /// Longer than any token Keystone issues (Fernet tokens are ~250 bytes): refused without asking Keystone.
    static let maximumTokenLength = 8192

    let configuration: KeystoneAuthConfiguration
    let client: KeystoneClient
    let cache: TokenCache
    let logger: Logger

    public init(configuration: KeystoneAuthConfiguration, logger: Logger) throws(KeystoneError) {
        self.configuration = configuration
        client = try KeystoneClient(configuration: configuration)
        cache = TokenCache(lifetime: configuration.tokenCacheTime)
        self.logger = logger
    }

    /// Closes the connections to Keystone; the validator must not be used afterwards.
    public func shutdown() async {
        await client.shutdown()
    }

    /// Who `token` is; asks Keystone unless the answer is cached.
    public func validate(_ token: String) async -> TokenValidation {
        guard !token.isEmpty, token.utf8.count <= Self.maximumTokenLength else {
            return .refused("the X-Auth-Token is empty or longer than any Keystone token")
        }
        let key = DigestAlgorithm.sha256.hex(of: Data(token.utf8))
        if let cached = cache.lookup(key, now: Date()) { return cached }
        let outcome: TokenValidation
        do {
            outcome = try await client.validate(token)
        } catch {
            logger.error("Keystone could not validate a token", metadata: ["keystone.url": "\(client.identityV3)", "error": "\(error)"])
            return .unavailable(error.description)
        }
        cache.store(outcome, for: key, now: Date())
        return outcome
    }
}

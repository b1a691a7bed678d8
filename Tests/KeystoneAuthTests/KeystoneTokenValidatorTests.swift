// The validator and its cache, on their own: against the real test Keystone (scripts/start-keystone) and with
// Keystone's own answer shapes.
import Foundation
import ImportCore
import Logging
import StagingTestSupport
import Testing

@testable import KeystoneAuth

@Suite("Keystone token validation", .serialized)
struct KeystoneTokenValidatorTests {
    static func configuration(authURL: String? = nil, cacheTime: Int) throws -> KeystoneAuthConfiguration {
        var ini = INIFile()
        try ini.merge(text: try TestKeystone.authtokenConfig(authURL: authURL, cacheTime: cacheTime), file: "keystone.conf")
        guard case let .keystone(keystone)? = try StagingConfiguration(ini: ini).imports.tcp.authentication else {
            throw TestSetupError("flavor = keystone gave no Keystone configuration")
        }
        return keystone
    }

    static func withValidator<T>(authURL: String? = nil, cacheTime: Int, _ body: (KeystoneTokenValidator) async throws -> T) async throws -> T {
        let validator = try KeystoneTokenValidator(
            configuration: try configuration(authURL: authURL, cacheTime: cacheTime),
            logger: Logger(label: "test"))
        do {
            let result = try await body(validator)
            await validator.shutdown()
            return result
        } catch {
            await validator.shutdown()
            throw error
        }
    }

    @Test("a member's token is its Keystone user, project, domains and roles (with the implied reader); garbage is refused")
    func validates() async throws {
        let keystone = try TestKeystone.deployment()
        let token = try TestKeystone.token(for: "alice", project: "project-a")
        try await Self.withValidator(cacheTime: 300) { validator in
            guard case let .valid(identity, expiresAt) = await validator.validate(token) else {
                Issue.record("alice's token was not valid")
                return
            }
            #expect(identity.userID == keystone.users["alice"] && identity.projectID == keystone.projects["project-a"])
            #expect(identity.roles.contains("member") && identity.roles.contains("reader") && !identity.isAdmin, "\(identity.roles)")
            #expect(identity.userDomainID == "default" && identity.projectDomainID == "default" && identity.systemScope == nil)
            #expect(expiresAt > Date())
            guard case .refused = await validator.validate("gAAAAAB-garbage") else { Issue.record("garbage was not refused"); return }
            guard case .refused = await validator.validate("") else { Issue.record("an empty token was not refused"); return }
        }
    }

    @Test("with a cache, a revoked token is honoured until its entry ages out (keystonemiddleware's behaviour); without, it is refused at once")
    func cacheAndRevocation() async throws {
        let token = try TestKeystone.token(for: "bob", project: "project-b")
        try await Self.withValidator(cacheTime: 300) { cached in
            guard case .valid = await cached.validate(token) else { Issue.record("bob's token was not valid"); return }
            try await Self.withValidator(cacheTime: -1) { uncached in
                guard case .valid = await uncached.validate(token) else { Issue.record("bob's token was not valid"); return }
                try TestKeystone.revoke(token)
                guard case .refused = await uncached.validate(token) else { Issue.record("the revoked token was honoured without a cache"); return }
            }
            guard case .valid = await cached.validate(token) else { Issue.record("the cached answer was not used"); return }
        }
    }

    @Test("a Keystone that cannot be reached makes validation unavailable, and that answer is not cached")
    func unreachable() async throws {
        let port = try freeTCPPort()
        try await Self.withValidator(authURL: "http://127.0.0.1:\(port)/v3", cacheTime: 300) { validator in
            guard case let .unavailable(reason) = await validator.validate("some-token") else { Issue.record("not unavailable"); return }
            #expect(reason.contains("127.0.0.1:\(port)") && reason.contains("auth_url"), "\(reason)")
            #expect(validator.cache.count == 0)
        }
    }

    @Test("the cache keeps an answer for its lifetime but never past the token's expiry, never keeps unavailability, and stays bounded")
    func tokenCache() throws {
        let now = Date()
        let identity = Identity(userID: "u", projectID: "p", roles: ["member"])
        let cache = TokenCache(lifetime: 300)
        cache.store(.valid(identity, expiresAt: now.addingTimeInterval(10)), for: "soon", now: now)
        cache.store(.refused("no"), for: "refused", now: now)
        cache.store(.unavailable("down"), for: "down", now: now)
        #expect(cache.lookup("soon", now: now.addingTimeInterval(5)) == .valid(identity, expiresAt: now.addingTimeInterval(10)))
        #expect(cache.lookup("soon", now: now.addingTimeInterval(11)) == nil, "not past the token's expiry")
        #expect(cache.lookup("refused", now: now.addingTimeInterval(299)) == .refused("no"))
        #expect(cache.lookup("refused", now: now.addingTimeInterval(301)) == nil)
        #expect(cache.lookup("down", now: now) == nil)
        for disabled in [0, -1] {
            let off = TokenCache(lifetime: disabled)
            off.store(.refused("no"), for: "k", now: now)
            #expect(off.lookup("k", now: now) == nil)
        }
        let full = TokenCache(lifetime: 300)
        for index in 0..<TokenCache.capacity { full.store(.refused("x"), for: "k\(index)", now: now) }
        full.store(.refused("x"), for: "one-more", now: now)
        #expect(full.count == TokenCache.capacity && full.lookup("one-more", now: now) == nil, "a full cache of live answers takes no more")
        full.store(.refused("x"), for: "later", now: now.addingTimeInterval(400))
        #expect(full.count == 1 && full.lookup("later", now: now.addingTimeInterval(400)) != nil, "expired answers make room")
    }

    @Test("Keystone's token bodies: fractional-second times, a system-scoped token has the system scope and no project")
    func tokenShapes() throws {
        let system =
            #"{"token": {"expires_at": "2026-12-04T20:30:33.000000Z", "user": {"id": "u1", "domain": {"id": "default"}}, "system": {"all": true}, "roles": [{"id": "r", "name": "admin"}]}}"#
        let token = try JSONDecoder.keystone.decode(KeystoneTokenBody.self, from: Data(system.utf8)).token
        #expect(token.identity.systemScope == "all" && token.identity.projectID.isEmpty && token.identity.isAdmin)
        #expect(token.expiresAt == Date(timeIntervalSince1970: 1_796_416_233))
    }
}

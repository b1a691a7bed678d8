// The API over TCP with [paste_deploy] flavor = keystone, against a real Keystone (scripts/start-keystone):
// who a request is comes from Keystone's answer on its X-Auth-Token, never from what the client says.
import Foundation
import StagingTestSupport
import Testing

@Suite("The API over TCP with Keystone tokens", .serialized)
struct KeystoneAuthTests {
    static func config(port: Int, keystone: String) -> String {
        StagingMount.defaultConfig + """

            [DEFAULT]
            bind_host = 127.0.0.1
            bind_port = \(port)

            \(keystone)

            """
    }

    /// A mount whose TCP listener validates tokens against the test Keystone; `body` gets the base URL.
    static func withKeystoneMount(cacheTime: Int = 300, authURL: String? = nil, _ body: (StagingMount, String) throws -> Void) throws {
        let port = try freeTCPPort()
        let keystone = try TestKeystone.authtokenConfig(authURL: authURL, cacheTime: cacheTime)
        try withStagingMount(config: config(port: port, keystone: keystone)) { mount throws in
            #expect(mount.log.contains("API listening on TCP"), "\(mount.log)")
            try body(mount, "http://127.0.0.1:\(port)")
        }
    }

    static let newImage = #"{"name": "keystone-image", "disk_format": "raw", "container_format": "bare"}"#

    @Test("alice's token: create, stage over TCP and import; the image is active with the source's sha512 and owned by alice's Keystone project")
    func memberImports() throws {
        let keystone = try TestKeystone.deployment()
        let alice = "X-Auth-Token: " + (try TestKeystone.token(for: "alice", project: "project-a"))
        try Self.withKeystoneMount { mount, base throws in
            let source = mount.sourcePath("disk.raw")
            try makeRandomFile(source, bytes: 2 << 20)
            let created = try curl("POST", base + "/v2/images", headers: [alice], json: Self.newImage)
            #expect(created.status == 201, "\(created)")
            let id = try #require(created.json?["id"] as? String)
            #expect(created.json?["owner"] as? String == keystone.projects["project-a"])
            #expect(try curl("PUT", base + "/v2/images/\(id)/stage", headers: [alice], file: source).status == 204)
            let imported = try curl("POST", base + "/v2/images/\(id)/import", headers: [alice], json: #"{"method": {"name": "glance-direct"}}"#)
            #expect(imported.status == 202, "\(imported)")
            let active = waitFor(30) { (try? curl("GET", base + "/v2/images/\(id)", headers: [alice]).json?["status"] as? String) == "active" }
            #expect(active != nil, "the image became active")
            let image = try curl("GET", base + "/v2/images/\(id)", headers: [alice])
            #expect(image.json?["os_hash_value"] as? String == (try digest("sha512sum", of: source)))
        }
    }

    @Test("bob's token (project-b) neither sees nor changes alice's image: 404 on show, PATCH, stage and delete, absent from his list")
    func otherProjectIsolated() throws {
        let alice = "X-Auth-Token: " + (try TestKeystone.token(for: "alice", project: "project-a"))
        let bob = "X-Auth-Token: " + (try TestKeystone.token(for: "bob", project: "project-b"))
        try Self.withKeystoneMount { mount, base throws in
            let id = try #require(try curl("POST", base + "/v2/images", headers: [alice], json: Self.newImage).json?["id"] as? String)
            let source = mount.sourcePath("small.raw")
            try makeRandomFile(source, bytes: 4096)
            #expect(try curl("GET", base + "/v2/images/\(id)", headers: [bob]).status == 404)
            let patch = try curl(
                "PATCH", base + "/v2/images/\(id)", headers: [bob], json: #"[{"op": "replace", "path": "/name", "value": "taken"}]"#,
                contentType: "application/openstack-images-v2.1-json-patch")
            #expect(patch.status == 404, "\(patch)")
            #expect(try curl("PUT", base + "/v2/images/\(id)/stage", headers: [bob], file: source).status == 404)
            #expect(try curl("DELETE", base + "/v2/images/\(id)", headers: [bob]).status == 404)
            let listed = try curl("GET", base + "/v2/images", headers: [bob])
            #expect(listed.status == 200)
            #expect(!listed.body.contains(id), "\(listed)")
            let still = try curl("GET", base + "/v2/images/\(id)", headers: [alice])
            #expect(still.json?["name"] as? String == "keystone-image" && still.json?["status"] as? String == "queued", "\(still)")
        }
    }

    @Test("no token, a garbage token, an oversized token and a revoked token get 401 with WWW-Authenticate naming Keystone, and change nothing")
    func refusedTokens() throws {
        let keystone = try TestKeystone.deployment()
        let revoked = try TestKeystone.token(for: "alice", project: "project-a")
        // No cache: a revoked token is refused at once (with a cache, keystonemiddleware too honours it until the entry ages out).
        try Self.withKeystoneMount(cacheTime: -1) { mount, base throws in
            #expect(try curl("GET", base + "/v2/images", headers: ["X-Auth-Token: " + revoked]).status == 200)
            try TestKeystone.revoke(revoked)
            // 8190 bytes: within our bound, past what Keystone's server reads (it answers 431, which is no token either).
            let cases = [
                [], ["X-Auth-Token: gAAAAABnot-a-fernet-token"], ["X-Auth-Token: " + String(repeating: "A", count: 9000)],
                ["X-Auth-Token: " + String(repeating: "A", count: 8190)],
                ["X-Auth-Token: " + revoked],
            ]
            for headers in cases {
                let answer = try curl("POST", base + "/v2/images", headers: headers, json: Self.newImage)
                #expect(answer.status == 401, "\(answer)")
                #expect(answer.headers["www-authenticate"] == "Keystone uri=\"\(keystone.authURL)\"", "\(answer)")
                #expect((answer.json?["error"] as? [String: Any])?["code"] as? Int == 401, "\(answer)")
            }
            // Nothing was created by any of them.
            let images = try mount.request("GET", "/v2/images", as: TestUser.alice)
            #expect(!images.body.contains("keystone-image"), "\(images)")
            #expect(mount.log.contains("invalid token"), "the refusals are logged")
            // Glance answers the version list before authtoken: no token needed.
            #expect(try curl("GET", base + "/versions").status == 200)
            #expect(try curl("GET", base + "/").status == 300)
        }
    }

    @Test("an expired token gets 401, also after its validation was cached: the cache never outlives the token")
    func expiredToken() throws {
        try TestKeystone.withShortLivedTokens(seconds: 15) { keystone throws in
            try Self.withKeystoneMount(cacheTime: 300, authURL: keystone.authURL) { _, base throws in
                let token = "X-Auth-Token: " + (try TestKeystone.token(for: "alice", project: "project-a", from: keystone))
                let fresh = try curl("GET", base + "/v2/images", headers: [token])
                #expect(fresh.status == 200, "\(fresh)")
                let expired = waitFor(40) { (try? curl("GET", base + "/v2/images", headers: [token]))?.status == 401 }
                #expect(expired != nil, "the token was refused once it expired")
            }
        }
    }

    @Test("smuggled identity headers change nothing: a reader with X-Roles admin still may not create; only an admin's token lists tasks")
    func rolesComeFromKeystone() throws {
        let reader = "X-Auth-Token: " + (try TestKeystone.token(for: "reader-a", project: "project-a"))
        let alice = "X-Auth-Token: " + (try TestKeystone.token(for: "alice", project: "project-a"))
        let admin = "X-Auth-Token: " + (try TestKeystone.token(for: "sfs-admin", project: "project-a"))
        let smuggled = ["X-Roles: admin,member", "X-Project-Id: project-b", "X-User-Id: admin", "X-Identity-Status: Confirmed", "X-Service-Roles: admin"]
        try Self.withKeystoneMount { _, base throws in
            #expect(try curl("GET", base + "/v2/images", headers: [reader] + smuggled).status == 200, "a reader may list")
            let created = try curl("POST", base + "/v2/images", headers: [reader] + smuggled, json: Self.newImage)
            #expect(created.status == 403, "\(created)")
            #expect(try curl("GET", base + "/v2/tasks", headers: [alice] + smuggled).status == 403)
            let tasks = try curl("GET", base + "/v2/tasks", headers: [admin])
            #expect(tasks.status == 200, "\(tasks)")
            #expect(try curl("GET", base + "/v2/images", headers: smuggled).status == 401, "headers alone are no credential")
        }
    }

    @Test("a Keystone that is down answers 503 and nothing changes; a wrong service password is 503 with the cause in the log")
    func keystoneUnavailable() throws {
        let alice = "X-Auth-Token: " + (try TestKeystone.token(for: "alice", project: "project-a"))
        let closed = try freeTCPPort()
        try Self.withKeystoneMount(authURL: "http://127.0.0.1:\(closed)/v3") { mount, base throws in
            let answer = try curl("POST", base + "/v2/images", headers: [alice], json: Self.newImage)
            #expect(answer.status == 503, "\(answer)")
            let images = try mount.request("GET", "/v2/images", as: TestUser.alice)
            #expect(!images.body.contains("keystone-image"), "\(images)")
            #expect(mount.log.contains("Keystone could not validate a token") && mount.log.contains("127.0.0.1:\(closed)"), "\(mount.log)")
        }
        let port = try freeTCPPort()
        let wrongPassword = try TestKeystone.authtokenConfig().replacingOccurrences(of: "password = secret-glance", with: "password = wrong")
        try withStagingMount(config: Self.config(port: port, keystone: wrongPassword)) { mount throws in
            let answer = try curl("GET", "http://127.0.0.1:\(port)/v2/images", headers: [alice])
            #expect(answer.status == 503, "\(answer)")
            #expect(mount.log.contains("the service user could not authenticate") && mount.log.contains("username, password"), "\(mount.log)")
        }
    }

    @Test("a Keystone-flavoured daemon exits 0 on SIGTERM after validating tokens, and 73 (not a crash) when its port is taken")
    func cleanExits() throws {
        let port = try freeTCPPort()
        let config = Self.config(port: port, keystone: try TestKeystone.authtokenConfig())
        let mount = try StagingMount(config: config)
        defer { mount.tearDown() }
        try mount.start()
        let token = "X-Auth-Token: " + (try TestKeystone.token(for: "alice", project: "project-a"))
        #expect(try curl("GET", "http://127.0.0.1:\(port)/v2/images", headers: [token]).status == 200, "the validator has Keystone connections open")
        let second = try StagingMount(config: config)
        defer { second.tearDown() }
        let busy = try second.runDaemon(extraConfig: "")
        #expect(busy.status == 73 && busy.stderr.contains("127.0.0.1:\(port)"), "\(busy)")
        #expect(mount.stop() == 0, "\(mount.log.suffix(3000))")
    }

    @Test("start-up refuses flavor = keystone without auth_url or credentials, and an auth_type other than password")
    func configurationErrors() throws {
        let mount = try StagingMount()
        defer { mount.tearDown() }
        func start(_ extra: String) throws -> CommandResult {
            try mount.runDaemon(extraConfig: "[DEFAULT]\nbind_host = 127.0.0.1\n[paste_deploy]\nflavor = keystone\n" + extra)
        }
        let refused: [(config: String, says: [String])] = [
            ("[keystone_authtoken]\nusername = glance\npassword = x\nproject_name = service\n", ["[keystone_authtoken] auth_url"]),
            ("[keystone_authtoken]\nauth_url = http://127.0.0.1:5000/v3\nusername = glance\nproject_name = service\n", ["[keystone_authtoken] password"]),
            ("[keystone_authtoken]\nauth_type = v3token\nauth_url = http://127.0.0.1:5000/v3\n", ["auth_type", "password"]),
            ("[keystone_authtoken]\nauth_url = keystone:5000\nusername = glance\npassword = x\nproject_name = service\n", ["http://"]),
        ]
        for (config, says) in refused {
            let result = try start(config)
            #expect(result.status == 78 && says.allSatisfy(result.stderr.contains), "\(config): \(result)")
        }
        #expect(!mount.isListedInMountTable)
    }
}

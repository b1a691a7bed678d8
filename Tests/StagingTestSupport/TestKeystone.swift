// A real Keystone for tests: the one scripts/start-keystone runs on loopback (keystone from PyPI, SQLite,
// fernet tokens), with projects service, project-a and project-b and users glance, alice, bob, reader-a, sfs-admin.
import Foundation
import Synchronization

public enum TestKeystone {
    /// What scripts/start-keystone created: Keystone's URL and the ids of its projects, users and roles.
    public struct Deployment: Sendable {
        public var authURL: String
        public var projects: [String: String]
        public var users: [String: String]
    }

    private static let started = Mutex<Deployment?>(nil)

    /// Starts Keystone if it does not answer (the script is idempotent and serialized) and reads what it created.
    public static func deployment() throws -> Deployment {
        try started.withLock { started in
            if let started { return started }
            let deployment = try start(environment: [:])
            started = deployment
            return deployment
        }
    }

    /// The short-lived Keystone's place: its own port and state, so the shared one's tokens are unaffected.
    static let shortLivedEnvironment = [
        "STAGINGFS_KEYSTONE_PORT": "55001", "STAGINGFS_KEYSTONE_DIR": "/tmp/stagingfs-keystone-short",
        "STAGINGFS_IMAGE_PORT": "59298",
    ]

    /// A second Keystone whose tokens expire `seconds` after they are issued; `body` runs while it is up.
    public static func withShortLivedTokens<T>(seconds: Int, _ body: (Deployment) throws -> T) throws -> T {
        var environment = shortLivedEnvironment
        environment["STAGINGFS_KEYSTONE_TOKEN_EXPIRATION"] = "\(seconds)"
        let deployment = try start(environment: environment)
        defer { _ = try? run([repositoryRoot + "/scripts/stop-keystone"], environment: shortLivedEnvironment) }
        return try body(deployment)
    }

    private static func start(environment: [String: String]) throws -> Deployment {
        let script = repositoryRoot + "/scripts/start-keystone"
        let result = try run([script], environment: environment)
        guard result.succeeded, let path = result.stdout.split(separator: "\n").last.map(String.init) else {
            throw TestSetupError("\(script) failed: \(result)")
        }
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
        guard let object, let authURL = object["auth_url"] as? String, let projects = object["projects"] as? [String: String],
            let users = object["users"] as? [String: String]
        else {
            throw TestSetupError("\(path) does not have auth_url, projects and users")
        }
        return Deployment(authURL: authURL, projects: projects, users: users)
    }

    /// The password scripts/start-keystone gave `user`.
    public static func password(of user: String) -> String { "secret-\(user)" }

    /// A project-scoped token for `user` in `project`, issued by Keystone (`POST /v3/auth/tokens`).
    public static func token(for user: String, project: String, from keystone: Deployment? = nil) throws -> String {
        let deployment = try keystone ?? deployment()
        let body: [String: Any] = [
            "auth": [
                "identity": ["methods": ["password"], "password": ["user": ["name": user, "domain": ["name": "Default"], "password": password(of: user)]]],
                "scope": ["project": ["name": project, "domain": ["name": "Default"]]],
            ]
        ]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
        let answer = try curl("POST", deployment.authURL + "/auth/tokens?nocatalog", json: json)
        guard answer.status == 201, let token = answer.headers["x-subject-token"] else {
            throw TestSetupError("Keystone issued no token for \(user) in \(project): \(answer)")
        }
        return token
    }

    /// Revokes `token` (`DELETE /v3/auth/tokens`, the user revoking their own token).
    public static func revoke(_ token: String) throws {
        let answer = try curl("DELETE", try deployment().authURL + "/auth/tokens", headers: ["X-Auth-Token: \(token)", "X-Subject-Token: \(token)"])
        guard answer.status == 204 else { throw TestSetupError("Keystone did not revoke the token: \(answer)") }
    }

    /// The project each test user works in.
    public static let projects = ["alice": "project-a", "bob": "project-b", "reader-a": "project-a", "sfs-admin": "project-a"]

    /// The `OS_*` variables that log `user` in to this Keystone with a password, scoped to the user's project.
    public static func environment(for user: String) throws -> [String: String] {
        [
            "OS_AUTH_URL": try deployment().authURL, "OS_USERNAME": user, "OS_PASSWORD": password(of: user),
            "OS_PROJECT_NAME": projects[user] ?? "project-a", "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
        ]
    }

    /// Runs an unmodified OpenStack client (`glance` or `openstack`, from scripts/install-openstack's venv) as
    /// `user`, with the usual `OS_*` variables: it finds the image service in Keystone's catalog (127.0.0.1:59292).
    public static func client(_ tool: String, _ arguments: [String], as user: String) throws -> CommandResult {
        var environment = try environment(for: user)
        environment.merge([
            "OS_IDENTITY_API_VERSION": "3", "OS_IMAGE_API_VERSION": "2", "OS_REGION_NAME": "RegionOne", "OS_INTERFACE": "public",
            "HOME": "/tmp/stagingfs-tests/openstack-home",
        ]) { $1 }
        return try run(command(tool) + arguments, environment: environment)
    }

    /// How to run `tool` from scripts/install-openstack's venv: with stdin closed, as under cron, since glanceclient
    /// reads image data from any other stdin that is not a tty.
    public static func command(_ tool: String) -> [String] {
        ["/bin/sh", "-c", "exec \"$0\" \"$@\" <&-", repositoryRoot + "/.build/venv-openstack/bin/" + tool]
    }

    /// The image service's port in Keystone's catalog: the TCP listener the client tests bind.
    public static let imagePort = 59292

    /// A `[paste_deploy]` + `[keystone_authtoken]` block as an operator's glance-api.conf has it, for the glance user.
    public static func authtokenConfig(authURL: String? = nil, cacheTime: Int = 300) throws -> String {
        let url = try authURL ?? deployment().authURL
        return """
            [paste_deploy]
            flavor = keystone

            [keystone_authtoken]
            www_authenticate_uri = \(url)
            auth_url = \(url)
            auth_type = password
            username = glance
            password = \(password(of: "glance"))
            project_name = service
            user_domain_name = Default
            project_domain_name = Default
            token_cache_time = \(cacheTime)
            """
    }
}

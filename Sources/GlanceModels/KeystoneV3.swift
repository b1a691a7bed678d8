// Keystone v3's password login, as the API's token validator and importctl both send it: one definition of the
// request, of where the v3 API is, and of how Keystone's error bodies read.
import Foundation

public enum KeystoneV3 {
    /// Keystone's v3 root for an `auth_url` / `OS_AUTH_URL` given with or without the version
    /// (`http://keystone:5000` and `http://keystone:5000/v3/` are both `http://keystone:5000/v3`).
    public static func root(_ authURL: String) -> String {
        var root = authURL
        while root.hasSuffix("/") { root.removeLast() }
        return root.hasSuffix("/v3") ? root : root + "/v3"
    }

    /// `{"error": {"message": …}}`: Keystone's words for a refusal, if the body has them.
    public static func errorMessage(in body: Data) -> String? {
        (try? JSONDecoder().decode(ErrorBody.self, from: body))?.error.message
    }

    private struct ErrorBody: Decodable {
        struct Detail: Decodable { var message: String? }
        var error: Detail
    }

    /// The body of `POST /v3/auth/tokens` with the password method, scoped to one project.
    public struct PasswordLogin: Encodable, Sendable {
        public enum Project: Sendable {
            case named(String, domain: String)
            case id(String)
        }

        public var username: String
        public var password: String
        public var userDomain: String
        public var project: Project

        public init(username: String, password: String, userDomain: String, project: Project) {
            (self.username, self.password, self.userDomain, self.project) = (username, password, userDomain, project)
        }

        private struct Named: Encodable { var name: String }
        private struct User: Encodable { var name: String; var domain: Named; var password: String }
        private struct Password: Encodable { var user: User }
        private struct Identity: Encodable { var methods = ["password"]; var password: Password }
        private struct ScopedProject: Encodable { var id: String?; var name: String?; var domain: Named? }
        private struct Scope: Encodable { var project: ScopedProject }
        private struct Auth: Encodable { var identity: Identity; var scope: Scope }
        private struct Body: Encodable { var auth: Auth }

        public func encode(to encoder: any Encoder) throws {
            let scoped: ScopedProject
            switch project {
            case let .named(name, domain): scoped = ScopedProject(id: nil, name: name, domain: Named(name: domain))
            case let .id(id): scoped = ScopedProject(id: id, name: nil, domain: nil)
            }
            let user = User(name: username, domain: Named(name: userDomain), password: password)
            try Body(auth: Auth(identity: Identity(password: Password(user: user)), scope: Scope(project: scoped))).encode(to: encoder)
        }
    }
}

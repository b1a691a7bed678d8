// Keystone v3's token shapes: the password authentication request and the token body it and validation answer.
import Foundation
import ImportCore

struct PasswordAuthentication: Encodable {
    struct Named: Encodable { var name: String }
    struct User: Encodable { var name: String; var domain: Named; var password: String }
    struct Password: Encodable { var user: User }
    struct Identity: Encodable { var methods = ["password"]; var password: Password }
    struct Project: Encodable { var name: String; var domain: Named }
    struct Scope: Encodable { var project: Project }
    struct Auth: Encodable { var identity: Identity; var scope: Scope }
    var auth: Auth

    init(_ configuration: KeystoneAuthConfiguration) {
        auth = Auth(
            identity: Identity(password: Password(user: User(name: configuration.username, domain: Named(name: configuration.userDomainName),
                                                            password: configuration.password))),
            scope: Scope(project: Project(name: configuration.projectName, domain: Named(name: configuration.projectDomainName))))
    }
}

struct KeystoneTokenBody: Decodable {
    struct Reference: Decodable {
        var id: String
        var name: String?
        var domain: DomainReference?
    }
    struct DomainReference: Decodable { var id: String }
    struct Role: Decodable { var name: String }
    struct System: Decodable { var all: Bool? }
    struct Token: Decodable {
        var expiresAt: Date
        var user: Reference
        var project: Reference?
        var system: System?
        var roles: [Role]?

        enum CodingKeys: String, CodingKey {
            case expiresAt = "expires_at"
            case user, project, system, roles
        }

        /// As oslo.context reads a token: a system-scoped token has no project; roles include the implied ones
        /// (Keystone expands them).
        var identity: ImportCore.Identity {
            ImportCore.Identity(userID: user.id, projectID: project?.id ?? "", roles: (roles ?? []).map(\.name),
                                userDomainID: user.domain?.id, projectDomainID: project?.domain?.id,
                                systemScope: system?.all == true ? "all" : nil)
        }
    }
    var token: Token
}

struct KeystoneErrorBody: Decodable {
    struct Detail: Decodable { var message: String? }
    var error: Detail
}

extension JSONDecoder {
    /// Keystone writes `2026-12-04T20:30:00.000000Z`: fractional seconds, which `.iso8601` does not read.
    static var keystone: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            if let date = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) { return date }
            if let date = try? Date(text, strategy: .iso8601) { return date }
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an ISO 8601 time: \(text)"))
        }
        return decoder
    }
}

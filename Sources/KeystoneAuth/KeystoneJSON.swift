// Keystone v3's token body, as the service login and each validation answer it (the request is GlanceModels' KeystoneV3).
import Foundation
import ImportCore

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
            ImportCore.Identity(
                userID: user.id, projectID: project?.id ?? "", roles: (roles ?? []).map(\.name),
                userDomainID: user.domain?.id, projectDomainID: project?.domain?.id,
                systemScope: system?.all == true ? "all" : nil)
        }
    }
    var token: Token
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

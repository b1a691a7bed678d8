// The remaining shapes the API answers and importctl reads: the version list, the import methods, StagingFS's
// own info and policy check. Each is defined once here, so neither side can drift from the other.
import Foundation

/// `GET /versions` (and `GET /`, with 300).
public struct GlanceVersionList: Codable, Sendable, Equatable {
    public struct Link: Codable, Sendable, Equatable {
        public var rel: String
        public var href: String
    }

    public struct Version: Codable, Sendable, Equatable {
        public var id: String
        public var status: String
        public var links: [Link]

        public init(id: String, status: String, selfLink: String) {
            self.id = id
            self.status = status
            links = [Link(rel: "self", href: selfLink)]
        }
    }

    public var versions: [Version]
    public init(versions: [Version]) { self.versions = versions }
}

/// `GET /v2/info/import`: Glance's discovery document for the enabled import methods.
public struct GlanceImportInfo: Codable, Sendable, Equatable {
    public struct Methods: Codable, Sendable, Equatable {
        public var description = "Import methods available."
        public var type = "array"
        public var value: [String]
    }

    public var importMethods: Methods
    public init(methods: [String]) { importMethods = Methods(value: methods) }
    enum CodingKeys: String, CodingKey { case importMethods = "import-methods" }
}

/// `GET /v2/info/stagingfs` (ours): where the staging mount is, so importctl can stage through it when the
/// caller can reach it, and how it hashes.
public struct StagingInfo: Codable, Sendable, Equatable {
    public var mountpoint: String
    public var hashingAlgorithm: String
    public var hashOnWrite: Bool

    public init(mountpoint: String, hashingAlgorithm: String, hashOnWrite: Bool) {
        (self.mountpoint, self.hashingAlgorithm, self.hashOnWrite) = (mountpoint, hashingAlgorithm, hashOnWrite)
    }

    enum CodingKeys: String, CodingKey { case mountpoint, hashingAlgorithm = "hashing_algorithm", hashOnWrite = "hash_on_write" }
}

/// `POST /v2/stagingfs/policy-check` (ours): may `as` (a local user; default: the caller) do `action` on `target`?
public struct PolicyCheckRequest: Codable, Sendable, Equatable {
    public var action: String
    public var target: [String: String]
    public var user: String?

    public init(action: String, target: [String: String] = [:], user: String? = nil) {
        (self.action, self.target, self.user) = (action, target, user)
    }

    enum CodingKeys: String, CodingKey { case action, target, user = "as" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        action = try container.decode(String.self, forKey: .action)
        target = try container.decodeIfPresent([String: String].self, forKey: .target) ?? [:]
        user = try container.decodeIfPresent(String.self, forKey: .user)
    }
}

/// The policy's answer, and the rule that decided it.
public struct PolicyCheckDecision: Codable, Sendable, Equatable {
    public var action: String
    public var allowed: Bool
    public var rule: String
    public var ruleText: String
    public var identity: String
    public var target: [String: String]

    public init(action: String, allowed: Bool, rule: String, ruleText: String, identity: String, target: [String: String]) {
        (self.action, self.allowed, self.rule, self.ruleText, self.identity, self.target) = (action, allowed, rule, ruleText, identity, target)
    }

    enum CodingKeys: String, CodingKey { case action, allowed, rule, ruleText = "rule_text", identity, target }
}

/// `POST /v2/images/{id}/import`'s body.
public struct GlanceImportRequest: Codable, Sendable, Equatable {
    public var method: GlanceTaskInput.Method
    public init(method: String, uri: String?) { self.method = GlanceTaskInput.Method(name: method, uri: uri) }
}

/// `POST /v2/images`'s body: the attributes given, and extra properties beside them (Glance's flat form).
public struct GlanceImageCreation: Encodable, Sendable, Equatable {
    public var name: String?
    public var diskFormat: String?
    public var containerFormat: String?
    public var visibility: String?
    public var isProtected: Bool?
    public var properties: [String: String]

    public init(
        name: String? = nil, diskFormat: String? = nil, containerFormat: String? = nil, visibility: String? = nil,
        isProtected: Bool? = nil, properties: [String: String] = [:]
    ) {
        (self.name, self.diskFormat, self.containerFormat, self.visibility) = (name, diskFormat, containerFormat, visibility)
        (self.isProtected, self.properties) = (isProtected, properties)
    }

    public func encode(to encoder: any Encoder) throws {
        var json = encoder.container(keyedBy: JSONKey.self)
        // A property of an attribute's name is sent as given (the API then says what it makes of it); each key once.
        for (key, value) in [("name", name), ("disk_format", diskFormat), ("container_format", containerFormat), ("visibility", visibility)]
        where properties[key] == nil {
            try json.encodeIfPresent(value, forKey: JSONKey(key))
        }
        if properties["protected"] == nil { try json.encodeIfPresent(isProtected, forKey: JSONKey("protected")) }
        for (key, value) in properties { try json.encode(value, forKey: JSONKey(key)) }
    }
}

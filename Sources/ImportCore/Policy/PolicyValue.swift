// What a policy check reads: credentials and targets as the Python values oslo.policy sees, and the caller's credentials.

/// A JSON-like Python value (str, int, bool, None, list, dict) in a credential or a target.
public indirect enum PolicyValue: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case bool(Bool)
    case null
    case list([PolicyValue])
    case mapping(PolicyMapping)

    /// Python's `str()` of the value; nil when StagingFS cannot reproduce it exactly (non-ASCII text inside `repr`).
    var pythonString: String? {
        if case let .string(text) = self { return text }
        return pythonRepr
    }

    /// Python's `repr()`, for values inside containers.
    var pythonRepr: String? {
        switch self {
        case let .string(text): return PythonLiteral.repr(text)
        case let .integer(number): return String(number)
        case let .bool(flag): return flag ? "True" : "False"
        case .null: return "None"
        case let .list(items):
            var parts: [String] = []
            for item in items {
                guard let part = item.pythonRepr else { return nil }
                parts.append(part)
            }
            return "[" + parts.joined(separator: ", ") + "]"
        case let .mapping(mapping):
            var parts: [String] = []
            for entry in mapping.entries {
                guard let key = PythonLiteral.repr(entry.key), let value = entry.value.pythonRepr else { return nil }
                parts.append(key + ": " + value)
            }
            return "{" + parts.joined(separator: ", ") + "}"
        }
    }
}

/// A Python dict: insertion-ordered, keys compared by code points (a Swift `Dictionary` would merge equivalent keys).
public struct PolicyMapping: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var value: PolicyValue
        public init(key: String, value: PolicyValue) {
            self.key = key
            self.value = value
        }
    }

    public var entries: [Entry]

    public init(_ entries: [Entry] = []) { self.entries = entries }

    /// A target of text values (what the API and the mount pass), in key order.
    public init(strings: [String: String]) {
        entries = strings.keys.sorted().map { Entry(key: $0, value: .string(strings[$0]!)) }
    }

    public subscript(key: String) -> PolicyValue? {
        get { entries.first { PythonText.equal($0.key, key) }?.value }
        set {
            let index = entries.firstIndex { PythonText.equal($0.key, key) }
            switch (index, newValue) {
            case let (index?, value?): entries[index].value = value
            case let (nil, value?): entries.append(Entry(key: key, value: value))
            case let (index?, nil): entries.remove(at: index)
            case (nil, nil): break
            }
        }
    }
}

/// What the policy sees of the caller: the credentials Glance builds (oslo.context's `to_policy_values()`).
public struct PolicyCredentials: Sendable, Equatable {
    public var userID: String?
    public var projectID: String?
    /// Lower-cased (Python's `lower()`), with Keystone's implied roles added (admin → member → reader).
    public var roles: Set<String>
    /// StagingFS's own notion of an administrator (visibility, `policy-check --as`); not a policy credential, as in Glance.
    public var isAdmin: Bool

    public var userDomainID: String?
    public var projectDomainID: String?
    public var systemScope: String?

    public init(
        userID: String?, projectID: String?, roles: [String], isAdmin: Bool? = nil,
        userDomainID: String? = nil, projectDomainID: String? = nil, systemScope: String? = nil
    ) {
        self.userID = userID
        self.projectID = projectID
        self.userDomainID = userDomainID
        self.projectDomainID = projectDomainID
        self.systemScope = systemScope
        var expanded = Set(roles.map(PythonText.lower))
        if expanded.contains("admin") { expanded.insert("member") }
        if expanded.contains("member") { expanded.insert("reader") }
        self.roles = expanded
        self.isAdmin = isAdmin ?? expanded.contains("admin")
    }

    /// The credentials of a caller: the service user is an admin without a project.
    public init(_ caller: CallerIdentity) {
        switch caller {
        case .service: self.init(userID: "service", projectID: nil, roles: ["admin"], isAdmin: true)
        case let .mapped(identity):
            self.init(
                userID: identity.userID, projectID: identity.systemScope == nil ? identity.projectID : nil, roles: identity.roles,
                userDomainID: identity.userDomainID, projectDomainID: identity.projectDomainID, systemScope: identity.systemScope)
        case .unknown: self.init(userID: nil, projectID: nil, roles: [], isAdmin: false)
        }
    }

    /// The mapping oslo.policy checks against: the keys of oslo.context's `to_policy_values()`, which has no `is_admin`
    /// and no `tenant`; what StagingFS does not know (domain-scoped tokens, service tokens) is None as in a project token.
    public var mapping: PolicyMapping {
        func text(_ value: String?) -> PolicyValue { value.map(PolicyValue.string) ?? .null }
        let none: [String] = [
            "domain_id", "service_user_id",
            "service_user_domain_id", "service_project_id", "service_project_domain_id",
        ]
        var entries = [
            PolicyMapping.Entry(key: "user_id", value: text(userID)),
            PolicyMapping.Entry(key: "project_id", value: text(projectID)),
            PolicyMapping.Entry(key: "user_domain_id", value: text(userDomainID)),
            PolicyMapping.Entry(key: "project_domain_id", value: text(projectDomainID)),
            PolicyMapping.Entry(key: "system_scope", value: text(systemScope)),
            PolicyMapping.Entry(key: "roles", value: .list(roles.sorted().map(PolicyValue.string))),
            PolicyMapping.Entry(key: "is_admin_project", value: .bool(true)),
            PolicyMapping.Entry(key: "service_roles", value: .list([])),
        ]
        entries += none.map { PolicyMapping.Entry(key: $0, value: .null) }
        return PolicyMapping(entries)
    }
}

extension PolicyValue {
    /// Python truthiness.
    var isTruthy: Bool {
        switch self {
        case let .string(text): return !text.isEmpty
        case let .integer(number): return number != 0
        case let .bool(flag): return flag
        case .null: return false
        case let .list(items): return !items.isEmpty
        case let .mapping(mapping): return !mapping.entries.isEmpty
        }
    }
}

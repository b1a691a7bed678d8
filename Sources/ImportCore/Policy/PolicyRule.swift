// oslo.policy's rule language: a parsed rule, its canonical text, and how it is evaluated.
import Foundation

/// A policy rule, as oslo.policy understands it.
public indirect enum PolicyRule: Sendable, Equatable, CustomStringConvertible {
    /// `""` or `@`: always allowed.
    case always
    /// `!`: never allowed.
    case never
    /// `role:NAME`: the caller has the role (case-insensitive).
    case role(String)
    /// `rule:NAME`: another named rule.
    case rule(String)
    /// `kind:match`: a credential (or a quoted literal) compared with a literal or a `%(key)s` from the target.
    case check(kind: String, match: String)
    case and([PolicyRule])
    case or([PolicyRule])
    case not(PolicyRule)

    /// Canonical text: parsing it gives back the same rule.
    public var description: String {
        switch self {
        case .always: return "@"
        case .never: return "!"
        case let .role(name): return "role:\(name)"
        case let .rule(name): return "rule:\(name)"
        case let .check(kind, match): return "\(kind):\(match)"
        case let .and(rules): return "(" + rules.map(\.description).joined(separator: " and ") + ")"
        case let .or(rules): return "(" + rules.map(\.description).joined(separator: " or ") + ")"
        case let .not(rule): return "not \(rule)"
        }
    }
}

/// What the policy sees of the caller (oslo.policy's credentials).
public struct PolicyCredentials: Sendable, Equatable {
    public var userID: String?
    public var projectID: String?
    /// Lower-cased, with Keystone's implied roles added (admin → member → reader).
    public var roles: Set<String>
    public var isAdmin: Bool

    public init(userID: String?, projectID: String?, roles: [String], isAdmin: Bool? = nil) {
        self.userID = userID
        self.projectID = projectID
        var expanded = Set(roles.map { $0.lowercased() })
        if expanded.contains("admin") { expanded.insert("member") }
        if expanded.contains("member") { expanded.insert("reader") }
        self.roles = expanded
        self.isAdmin = isAdmin ?? expanded.contains("admin")
    }

    /// The credentials of a caller: the service user is an admin without a project.
    public init(_ caller: CallerIdentity) {
        switch caller {
        case .service: self.init(userID: "service", projectID: nil, roles: ["admin"], isAdmin: true)
        case let .mapped(identity): self.init(userID: identity.userID, projectID: identity.projectID, roles: identity.roles)
        case .unknown: self.init(userID: nil, projectID: nil, roles: [], isAdmin: false)
        }
    }

    func value(_ key: String) -> String? {
        switch key {
        case "user_id": return userID
        case "project_id", "tenant", "tenant_id": return projectID
        case "is_admin": return isAdmin ? "True" : "False"
        default: return nil
        }
    }
}

/// Evaluates rules against credentials and a target, resolving `rule:` references with cycle detection.
struct PolicyEvaluator {
    let rules: [String: PolicyRule]
    /// Called for a `rule:` reference to an undefined name (it denies).
    let undefined: (String) -> Void

    func allows(_ rule: PolicyRule, _ credentials: PolicyCredentials, _ target: [String: String], visiting: Set<String> = []) -> Bool {
        switch rule {
        case .always: return true
        case .never: return false
        case let .role(name): return credentials.roles.contains(Self.substitute(name, target)?.lowercased() ?? "\u{0}")
        case let .rule(name):
            guard !visiting.contains(name) else { return false }  // a cycle denies
            guard let referenced = rules[name] else {
                undefined(name)
                return false
            }
            return allows(referenced, credentials, target, visiting: visiting.union([name]))
        case let .check(kind, match):
            guard let expected = Self.substitute(match, target) else { return false }
            if let literal = Self.literal(kind) { return literal == expected }
            guard let actual = credentials.value(kind) else { return false }
            return actual == expected
        case let .and(rules): return rules.allSatisfy { allows($0, credentials, target, visiting: visiting) }
        case let .or(rules): return rules.contains { allows($0, credentials, target, visiting: visiting) }
        case let .not(rule): return !allows(rule, credentials, target, visiting: visiting)
        }
    }

    /// Python's `%(key)s` substitution from the target; nil when a key is missing (the check then fails).
    static func substitute(_ text: String, _ target: [String: String]) -> String? {
        var result = ""
        var rest = Substring(text)
        while let start = rest.range(of: "%(") {
            result += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].range(of: ")s") else { return nil }
            guard let value = target[String(rest[start.upperBound..<end.lowerBound])] else { return nil }
            result += value
            rest = rest[end.upperBound...]
        }
        return result + rest
    }

    /// A quoted literal on the left of a check (`'public':%(visibility)s`), or `True`/`False`.
    static func literal(_ kind: String) -> String? {
        if kind.count >= 2, let first = kind.first, first == kind.last, first == "'" || first == "\"" {
            return String(kind.dropFirst().dropLast())
        }
        return nil
    }
}

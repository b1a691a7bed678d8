// Who is asking: the kernel's uid/gid of a caller, and the identity the configuration maps it to.
import Foundation

/// A caller as the kernel reports it (FUSE request context or SO_PEERCRED). Never taken from the client.
public struct Caller: Sendable, CustomStringConvertible {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    /// Supplementary groups, read only when a group rule must be consulted (reading them costs a /proc lookup).
    public var supplementaryGroups: @Sendable () -> [UInt32]
    /// Set for a caller over TCP: the identity a Keystone-validated token (or the noauth option) gave it. The
    /// identity map is then not consulted; uid and gid are `nobody`'s, the owner its staged files show.
    public var authenticated: Identity?

    public init(uid: UInt32, gid: UInt32, pid: Int32, supplementaryGroups: @escaping @Sendable () -> [UInt32] = { [] }) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.supplementaryGroups = supplementaryGroups
    }

    /// A caller whose identity was established by the network API, not by the kernel.
    public static func authenticated(_ identity: Identity) -> Caller {
        var caller = Caller(uid: 65534, gid: 65534, pid: 0)
        caller.authenticated = identity
        return caller
    }

    public var description: String {
        if let authenticated { return "token(\(authenticated))" }
        return "uid=\(uid) gid=\(gid) pid=\(pid)"
    }
}

/// The OpenStack-style identity of a mapped caller, as the policy sees it.
/// A mapped caller has only ids and roles; a Keystone token also gives the domains and a system scope.
public struct Identity: Sendable, Hashable, CustomStringConvertible {
    public var userID: String
    public var projectID: String
    public var roles: [String]
    /// The token's user domain, project domain and system scope (`"all"`), as oslo.context gives them to policy.
    public var userDomainID: String?
    public var projectDomainID: String?
    public var systemScope: String?

    public init(
        userID: String, projectID: String, roles: [String],
        userDomainID: String? = nil, projectDomainID: String? = nil, systemScope: String? = nil
    ) {
        self.userID = userID
        self.projectID = projectID
        self.roles = roles
        self.userDomainID = userDomainID
        self.projectDomainID = projectDomainID
        self.systemScope = systemScope
    }

    /// oslo.policy's `context_is_admin` default: the admin role.
    public var isAdmin: Bool { roles.contains("admin") }

    public var description: String { "user_id=\(userID) project_id=\(projectID) roles=\(roles.joined(separator: ","))" }
}

/// What a caller is to StagingFS.
public enum CallerIdentity: Sendable, Equatable, CustomStringConvertible {
    /// The configured glance service user: may do everything Glance does in its staging directory.
    case service
    /// A caller the identity map knows.
    case mapped(Identity)
    /// A caller the identity map does not know: refused.
    case unknown

    public var description: String {
        switch self {
        case .service: return "service"
        case let .mapped(identity): return identity.description
        case .unknown: return "unmapped"
        }
    }

    public var projectID: String? {
        if case let .mapped(identity) = self { return identity.projectID }
        return nil
    }
}

/// One `[identity:NAME]` section: which callers it matches and the identity it gives them.
public struct IdentityRule: Sendable, Equatable {
    public enum Match: Sendable, Equatable {
        case uid(UInt32)
        case gid(UInt32)
    }

    public var name: String
    public var match: Match
    public var identity: Identity

    public init(name: String, match: Match, identity: Identity) {
        self.name = name
        self.match = match
        self.identity = identity
    }
}

/// Maps callers to identities: the service user first, then user rules, then group rules (primary group,
/// then supplementary groups), each in the order the configuration lists them.
public struct IdentityMap: Sendable, Equatable {
    public var serviceUID: UInt32
    public var rules: [IdentityRule]

    public init(serviceUID: UInt32, rules: [IdentityRule]) {
        self.serviceUID = serviceUID
        self.rules = rules
    }

    public func resolve(_ caller: Caller) -> CallerIdentity {
        if let identity = caller.authenticated { return .mapped(identity) }
        if caller.uid == serviceUID { return .service }
        for rule in rules {
            if case let .uid(uid) = rule.match, uid == caller.uid { return .mapped(rule.identity) }
        }
        let groupRules = rules.filter { if case .gid = $0.match { return true } else { return false } }
        guard !groupRules.isEmpty else { return .unknown }
        for rule in groupRules {
            if case let .gid(gid) = rule.match, gid == caller.gid { return .mapped(rule.identity) }
        }
        let groups = Set(caller.supplementaryGroups())
        for rule in groupRules {
            if case let .gid(gid) = rule.match, groups.contains(gid) { return .mapped(rule.identity) }
        }
        return .unknown
    }
}

/// Looks up users and groups in the system's databases (passwd, group).
public enum SystemAccounts {
    public static func uid(ofUser name: String) -> UInt32? {
        if let uid = UInt32(name) { return uid }
        return getpwnam(name).map { $0.pointee.pw_uid }
    }

    public static func gid(ofGroup name: String) -> UInt32? {
        if let gid = UInt32(name) { return gid }
        return getgrnam(name).map { $0.pointee.gr_gid }
    }

    /// The caller a user would be (its uid, primary group and supplementary groups), for `policy-check --as`.
    public static func caller(forUser name: String) -> Caller? {
        guard let entry = (UInt32(name).flatMap { getpwuid($0) }) ?? getpwnam(name) else { return nil }
        let uid = entry.pointee.pw_uid, gid = entry.pointee.pw_gid
        let user = String(cString: entry.pointee.pw_name)
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(user, gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(user, gid, &groups, &count)
        }
        let supplementary = Array(groups.prefix(Int(max(count, 0))))
        return Caller(uid: uid, gid: gid, pid: 0) { supplementary }
    }

    public static func userName(of uid: UInt32) -> String? {
        getpwuid(uid).map { String(cString: $0.pointee.pw_name) }
    }
}

// The one seam where "may this caller do this to this file?" is decided; the policy engine plugs in here.

/// What a caller wants to do in the staging area.
public enum StagingAction: String, Sendable, CaseIterable {
    case list, lookup, read, create, write, truncate, remove, rename, setTimes, setMode, readExtendedAttributes
}

/// The decision, with the rule that made it so denials can be logged and explained.
public enum AccessDecision: Sendable, Equatable {
    case allow
    case deny(rule: String)
}

/// Decides every staging operation. `file` is nil for operations on the staging directory itself.
public protocol StagingAccessPolicy: Sendable {
    func decide(_ action: StagingAction, caller: CallerIdentity, file: StagedFile?) -> AccessDecision
}

/// The staging area's built-in rules: the service user may do everything; a mapped caller may create files and
/// see, read, change and remove only its own project's; an unmapped caller may do nothing.
public struct ProjectOwnershipPolicy: StagingAccessPolicy {
    public init() {}

    public func decide(_ action: StagingAction, caller: CallerIdentity, file: StagedFile?) -> AccessDecision {
        switch caller {
        case .service:
            return .allow
        case .unknown:
            return .deny(rule: "caller is not in the identity map")
        case let .mapped(identity):
            guard let file else { return .allow }  // list the directory, create a new file
            guard let owner = file.projectID else { return .deny(rule: "file belongs to the service user") }
            return owner == identity.projectID ? .allow : .deny(rule: "file belongs to another project")
        }
    }
}

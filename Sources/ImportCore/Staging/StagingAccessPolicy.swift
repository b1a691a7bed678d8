// The one seam where "may this caller do this to this file?" is decided; the policy engine plugs in here.
import Foundation

/// What a caller wants to do in the staging area.
public enum StagingAction: String, Sendable, CaseIterable {
    case list, lookup, read, create, write, truncate, remove, rename, setTimes, setMode, readExtendedAttributes
}

/// The decision, with the rule that made it so denials can be logged and explained.
public enum AccessDecision: Sendable, Equatable {
    case allow
    case deny(rule: String)
}

/// Decides every staging operation. `file` is nil for operations on the staging directory itself and for
/// creating a new file; `name` is the file's name when there is one.
public protocol StagingAccessPolicy: Sendable {
    func decide(_ action: StagingAction, caller: CallerIdentity, file: StagedFile?, name: String?) -> AccessDecision
}

/// The staging area's built-in rules: the service user may do everything; a mapped caller may create files and
/// see, read, change and remove only its own project's; an unmapped caller may do nothing.
public struct ProjectOwnershipPolicy: StagingAccessPolicy {
    public init() {}

    public func decide(_ action: StagingAction, caller: CallerIdentity, file: StagedFile?, name: String?) -> AccessDecision {
        switch caller {
        case .service:
            return .allow
        case .unknown:
            return .deny(rule: "caller is not in the identity map")
        case let .mapped(identity):
            if action == .create, let name, Self.isIntermediate(name) {
                return .deny(rule: "names <image_id>.<ext> are the import flow's intermediates")
            }
            guard let file else { return .allow }  // list the directory, create a new file
            guard let owner = file.projectID else { return .deny(rule: "file belongs to the service user") }
            return ExactText.same(owner, identity.projectID) ? .allow : .deny(rule: "file belongs to another project")
        }
    }

    /// Glance's layout for what an import's plugins write beside the staged data: `<image_id>.<ext>`.
    public static func isIntermediate(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return bytes.count > 37 && bytes[36] == UInt8(ascii: ".") && imageIDPrefix(of: name) != nil
    }

    /// The image a name belongs to when it is one of Glance's: `<image_id>` itself or an intermediate
    /// `<image_id>.<ext>`; nil for a free name, however much it looks like an id (`<image_id>x`, a combining mark
    /// after the id, a space before it): those are in the caller's project namespace (StagedName.swift).
    static func imageIDPrefix(of name: String) -> String? {
        let bytes = Array(name.utf8)
        guard bytes.count == 36 || (bytes.count > 37 && bytes[36] == UInt8(ascii: ".")), ImageID.isValid(bytes.prefix(36)) else { return nil }
        return String(decoding: bytes.prefix(36), as: UTF8.self)
    }
}

/// Project ownership, and then the oslo.policy engine for what Glance would check: creating a free-named file is
/// `add_image`; creating or writing a file named after an image is `upload_image` on that image, which must exist.
public struct PolicyStagingAccess: StagingAccessPolicy {
    let ownership = ProjectOwnershipPolicy()
    let engine: PolicyEngine
    /// The image a staged file's name stands for, if any.
    let image: @Sendable (String) -> Image?

    public init(engine: PolicyEngine, image: @escaping @Sendable (String) -> Image?) {
        self.engine = engine
        self.image = image
    }

    public func decide(_ action: StagingAction, caller: CallerIdentity, file: StagedFile?, name: String?) -> AccessDecision {
        let owned = ownership.decide(action, caller: caller, file: file, name: name)
        guard owned == .allow, case .mapped = caller, [.create, .write, .truncate].contains(action), let name else { return owned }
        let credentials = PolicyCredentials(caller)
        let decision: PolicyDecision
        let id = ProjectOwnershipPolicy.imageIDPrefix(of: name)
        if let id, let image = image(id), image.status != .deleted {
            decision = engine.enforce("upload_image", credentials: credentials, target: image.policyTarget)
        } else if let id, name.utf8.count == id.utf8.count {
            // Glance stages only for an image that exists (404 otherwise): data under a future image's id would
            // be waiting for whoever creates that image.
            return .deny(rule: "a file named after an image id holds that image's data, and no image \(id) exists")
        } else {
            let project = credentials.projectID ?? ""
            decision = engine.enforce("add_image", credentials: credentials, target: ["project_id": project, "owner": project])
        }
        return decision.allowed ? .allow : .deny(rule: "\(decision.ruleName): \(decision.ruleText)")
    }
}

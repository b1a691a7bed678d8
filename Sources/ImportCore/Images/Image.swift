// Images and import tasks, with Glance's states and the rules for which call is allowed in which state.
import Foundation

/// Glance's image states.
public enum ImageStatus: String, Sendable, Codable, CaseIterable {
    case queued, saving, uploading, importing, active, killed, deleted, deactivated
}

/// An image record, with Glance's fields for the import subset.
public struct Image: Sendable, Equatable {
    public var id: String
    public var name: String?
    public var status: ImageStatus
    public var diskFormat: String?
    public var containerFormat: String?
    public var size: Int64?
    public var virtualSize: Int64?
    public var checksum: String?
    public var osHashAlgo: String?
    public var osHashValue: String?
    /// The owning project (nil: owned by the service).
    public var owner: String?
    public var visibility: String
    public var isProtected: Bool
    /// Glance's `os_glance_import_task` lock: the id of the import task that holds the image.
    public var importTask: String?
    /// Other properties (`os_glance_*` and user properties), as Glance shows them at the top level.
    public var properties: [String: String]
    /// Glance's tags (a set, in the order first given), boot minimums (GB of disk, MB of RAM), and `os_hidden`
    /// (left out of the default image list).
    public var tags: [String] = []
    public var minDisk = 0
    public var minRam = 0
    public var isHidden = false
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String = UUID().uuidString.lowercased(), name: String?, status: ImageStatus = .queued, diskFormat: String? = nil,
        containerFormat: String? = nil, owner: String?, visibility: String = "shared", isProtected: Bool = false,
        properties: [String: String] = [:], createdAt: Date = Date()
    ) {
        self.id = id
        self.name = name
        self.status = status
        self.diskFormat = diskFormat
        self.containerFormat = containerFormat
        self.owner = owner
        self.visibility = visibility
        self.isProtected = isProtected
        self.properties = properties
        self.createdAt = createdAt
        self.updatedAt = createdAt
    }
}

extension Image {
    /// What Glance's image policies see of an image: its owner as `project_id` and `owner`, and its visibility.
    public var policyTarget: [String: String] {
        ["project_id": owner ?? "", "owner": owner ?? "", "visibility": visibility, "id": id]
    }
}

/// Glance's task states.
public enum TaskStatus: String, Sendable, Codable, CaseIterable {
    case pending, processing, success, failure
}

/// An import task (Glance's `api_image_import`).
public struct ImportTask: Sendable, Equatable {
    public var id: String
    public var type: String
    public var status: TaskStatus
    public var input: [String: String]
    public var result: [String: String]?
    public var message: String
    public var owner: String?
    public var imageID: String
    public var userID: String?
    public var requestID: String
    public var bytesDone: Int64
    public var bytesTotal: Int64
    public var expiresAt: Date?
    public var createdAt: Date
    public var updatedAt: Date
    /// The node holding the task while it is unfinished, until when, and the claim's epoch (ClusterCatalog).
    public var leaseHolder: String?
    public var leaseExpiresAt: Date?
    public var leaseEpoch = 0

    public var lease: TaskLease? { leaseHolder.map { TaskLease(taskID: id, holder: $0, epoch: leaseEpoch) } }

    public init(imageID: String, method: String, owner: String?, userID: String?, createdAt: Date = Date()) {
        id = UUID().uuidString.lowercased()
        type = "api_image_import"
        status = .pending
        input = ["import_req": method, "image_id": imageID]
        message = ""
        self.owner = owner
        self.imageID = imageID
        self.userID = userID
        requestID = "req-" + UUID().uuidString.lowercased()
        bytesDone = 0
        bytesTotal = 0
        self.createdAt = createdAt
        updatedAt = createdAt
    }
}

/// Why an image or import call is refused; each case knows the HTTP status Glance answers with.
/// Glance's image ids: exactly 8-4-4-4-12 hex digits (the pattern of Glance's image schema). Foundation's UUID
/// parser is not the check: it also takes surrounding whitespace, which made such names look like image ids.
public enum ImageID {
    public static func isValid(_ text: String) -> Bool { isValid(text.utf8) }

    public static func isValid(_ bytes: some Collection<UInt8>) -> Bool {
        guard bytes.count == 36 else { return false }
        for (index, byte) in bytes.enumerated() {
            let dash = index == 8 || index == 13 || index == 18 || index == 23
            let hex = (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x66)
            guard dash ? byte == UInt8(ascii: "-") : hex else { return false }
        }
        return true
    }
}

public enum ImageError: Error, Equatable, CustomStringConvertible {
    case notFound(String)
    case forbidden(String)
    case conflict(String)
    case badRequest(String)
    case unavailable(String)
    /// A per-project limit (Glance answers its image_count_uploading limit with 413).
    case overLimit(String)

    public var description: String {
        switch self {
        case let .notFound(message), let .forbidden(message), let .conflict(message), let .badRequest(message), let .unavailable(message),
            let .overLimit(message):
            return message
        }
    }
}

// Tasks, nodes, errors and the small answers of the API, as Codable types (GlanceImage.swift says why).
import Foundation

/// An import task's input as Glance writes it: `{"image_id": …, "import_req": {"method": {"name": …, "uri": …}},
/// "backend": [null]}` (`backend` lists the stores of a multi-store import; here always the one default).
public struct GlanceTaskInput: Codable, Sendable, Equatable {
    public struct Method: Codable, Sendable, Equatable {
        public var name: String
        public var uri: String?
        public init(name: String, uri: String?) { (self.name, self.uri) = (name, uri) }
    }
    struct Request: Codable, Equatable { var method: Method }

    public var imageID: String?
    public var method: Method?

    public init(imageID: String?, method: String?, uri: String?) {
        self.imageID = imageID
        self.method = method.map { Method(name: $0, uri: uri) }
    }

    enum CodingKeys: String, CodingKey { case imageID = "image_id", importRequest = "import_req", backend }

    public func encode(to encoder: any Encoder) throws {
        var json = encoder.container(keyedBy: CodingKeys.self)
        try json.encodeIfPresent(imageID, forKey: .imageID)
        try json.encodeIfPresent(method.map { Request(method: $0) }, forKey: .importRequest)
        try json.encode([String?.none], forKey: .backend)
    }

    public init(from decoder: any Decoder) throws {
        let json = try decoder.container(keyedBy: CodingKeys.self)
        imageID = try json.decodeIfPresent(String.self, forKey: .imageID)
        method = try json.decodeIfPresent(Request.self, forKey: .importRequest)?.method
    }
}

/// A task as `GET /v2/tasks/{id}` shows it, with StagingFS's progress.
public struct GlanceTask: Codable, Sendable, Equatable {
    public struct Progress: Codable, Sendable, Equatable {
        public var bytesDone: Int64
        public var bytesTotal: Int64

        public init(bytesDone: Int64, bytesTotal: Int64) { (self.bytesDone, self.bytesTotal) = (bytesDone, bytesTotal) }

        enum CodingKeys: String, CodingKey { case bytesDone = "bytes_done", bytesTotal = "bytes_total" }
    }

    public var id: String
    public var type: String
    public var status: String
    public var input: GlanceTaskInput
    public var result: [String: String]?
    public var owner: String?
    public var message: String
    public var imageID: String
    public var userID: String?
    public var requestID: String
    public var expiresAt: String?
    public var createdAt: String
    public var updatedAt: String
    public var progress: Progress
    /// Set for `GET /v2/images/{id}/tasks`, whose rows Glance shows with their `deleted` and `deleted_at` (tasks
    /// here are purged, never soft-deleted: always false and null).
    public var listedForImage = false

    public init(
        id: String, type: String, status: String, input: GlanceTaskInput, result: [String: String]?, owner: String?,
        message: String, imageID: String, userID: String?, requestID: String, expiresAt: String?, createdAt: String,
        updatedAt: String, progress: Progress
    ) {
        (self.id, self.type, self.status, self.input, self.result, self.owner) = (id, type, status, input, result, owner)
        (self.message, self.imageID, self.userID, self.requestID) = (message, imageID, userID, requestID)
        (self.expiresAt, self.createdAt, self.updatedAt, self.progress) = (expiresAt, createdAt, updatedAt, progress)
    }

    enum CodingKeys: String, CodingKey {
        case id, type, status, input, result, owner, message, imageID = "image_id", userID = "user_id", requestID = "request_id"
        case expiresAt = "expires_at", createdAt = "created_at", updatedAt = "updated_at", progress = "stagingfs_progress"
        case selfLink = "self", schema, deleted, deletedAt = "deleted_at"
    }

    public func encode(to encoder: any Encoder) throws {
        var json = encoder.container(keyedBy: CodingKeys.self)
        // Glance shows absent values as null.
        try json.encode(id, forKey: .id)
        try json.encode(type, forKey: .type)
        try json.encode(status, forKey: .status)
        try json.encode(input, forKey: .input)
        try json.encode(result, forKey: .result)
        try json.encode(owner, forKey: .owner)
        try json.encode(message, forKey: .message)
        try json.encode(imageID, forKey: .imageID)
        try json.encode(userID, forKey: .userID)
        try json.encode(requestID, forKey: .requestID)
        try json.encode(expiresAt, forKey: .expiresAt)
        try json.encode(createdAt, forKey: .createdAt)
        try json.encode(updatedAt, forKey: .updatedAt)
        try json.encode("/v2/tasks/\(id)", forKey: .selfLink)
        try json.encode("/v2/schemas/task", forKey: .schema)
        try json.encode(progress, forKey: .progress)
        if listedForImage {
            try json.encode(false, forKey: .deleted)
            try json.encode(String?.none, forKey: .deletedAt)
        }
    }

    public init(from decoder: any Decoder) throws {
        let json = try decoder.container(keyedBy: CodingKeys.self)
        id = try json.decode(String.self, forKey: .id)
        type = try json.decodeIfPresent(String.self, forKey: .type) ?? "api_image_import"
        status = try json.decode(String.self, forKey: .status)
        input = try json.decodeIfPresent(GlanceTaskInput.self, forKey: .input) ?? GlanceTaskInput(imageID: nil, method: nil, uri: nil)
        result = try json.decodeIfPresent([String: String].self, forKey: .result)
        owner = try json.decodeIfPresent(String.self, forKey: .owner)
        message = try json.decodeIfPresent(String.self, forKey: .message) ?? ""
        imageID = try json.decodeIfPresent(String.self, forKey: .imageID) ?? ""
        userID = try json.decodeIfPresent(String.self, forKey: .userID)
        requestID = try json.decodeIfPresent(String.self, forKey: .requestID) ?? ""
        expiresAt = try json.decodeIfPresent(String.self, forKey: .expiresAt)
        createdAt = try json.decodeIfPresent(String.self, forKey: .createdAt) ?? ""
        updatedAt = try json.decodeIfPresent(String.self, forKey: .updatedAt) ?? ""
        progress = try json.decodeIfPresent(Progress.self, forKey: .progress) ?? Progress(bytesDone: 0, bytesTotal: 0)
    }
}

/// `GET /v2/tasks` and `GET /v2/images/{id}/tasks`.
public struct GlanceTaskList: Codable, Sendable {
    public var tasks: [GlanceTask]
    public var first: String?
    public var schema: String?

    public init(tasks: [GlanceTask], first: String? = nil, schema: String? = nil) { (self.tasks, self.first, self.schema) = (tasks, first, schema) }
}

/// A webob-style error body, as Glance sends with JSON: `{"code": "409 Conflict", "title": "Conflict", "message": "…"}`.
public struct GlanceError: Codable, Sendable {
    public var code: String
    public var title: String
    public var message: String

    public init(status: Int, title: String, message: String) { (code, self.title, self.message) = ("\(status) \(title)", title, message) }
}

/// Ours: a node of a shared staging area (`GET /v2/stagingfs/nodes`).
public struct StagingNode: Codable, Sendable {
    public var id: String
    public var host: String
    public var mountpoint: String
    public var startedAt: String
    public var heartbeatAt: String
    public var status: String
    public var tasks: [String]

    public init(id: String, host: String, mountpoint: String, startedAt: String, heartbeatAt: String, status: String, tasks: [String]) {
        (self.id, self.host, self.mountpoint, self.startedAt, self.heartbeatAt, self.status, self.tasks) = (
            id, host, mountpoint, startedAt, heartbeatAt, status, tasks
        )
    }

    enum CodingKeys: String, CodingKey { case id, host, mountpoint, startedAt = "started_at", heartbeatAt = "heartbeat_at", status, tasks }
}

public struct StagingNodeList: Codable, Sendable {
    public var nodes: [StagingNode]
    public init(nodes: [StagingNode]) { self.nodes = nodes }
}

/// The encoder both sides use: sorted keys, slashes as they are.
public enum GlanceCoding {
    public static func encode(_ value: some Encodable, pretty: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted] : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try JSONDecoder().decode(type, from: data)
    }
}

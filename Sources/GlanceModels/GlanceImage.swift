// Glance v2's JSON shapes, as `Codable` types that the API encodes and importctl decodes: one definition of
// each, no `[String: Any]` on either side.
import Foundation

/// A key of a JSON object known only at run time (an image's extra properties).
struct JSONKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// An image as `GET /v2/images/{id}` shows it: Glance's fields, with every other property at the top level.
public struct GlanceImage: Codable, Sendable, Equatable {
    public var id: String
    public var name: String?
    public var status: String
    public var diskFormat: String?
    public var containerFormat: String?
    public var size: Int64?
    public var virtualSize: Int64?
    public var checksum: String?
    public var osHashAlgo: String?
    public var osHashValue: String?
    public var owner: String?
    public var visibility: String
    public var isProtected: Bool
    public var osHidden = false
    public var tags: [String] = []
    public var minDisk = 0
    public var minRam = 0
    public var createdAt: String
    public var updatedAt: String
    /// `os_glance_import_task`: the task holding the image's import lock.
    public var importTask: String?
    /// The image's other properties (Glance's extra properties), at the top level in JSON.
    public var properties: [String: String] = [:]

    public init(
        id: String, name: String?, status: String, diskFormat: String?, containerFormat: String?, size: Int64?,
        virtualSize: Int64?, checksum: String?, osHashAlgo: String?, osHashValue: String?, owner: String?,
        visibility: String, isProtected: Bool, createdAt: String, updatedAt: String, importTask: String?,
        properties: [String: String]
    ) {
        (self.id, self.name, self.status, self.diskFormat, self.containerFormat) = (id, name, status, diskFormat, containerFormat)
        (self.size, self.virtualSize, self.checksum, self.osHashAlgo, self.osHashValue) = (size, virtualSize, checksum, osHashAlgo, osHashValue)
        (self.owner, self.visibility, self.isProtected, self.createdAt, self.updatedAt) = (owner, visibility, isProtected, createdAt, updatedAt)
        (self.importTask, self.properties) = (importTask, properties)
    }

    private static let fields = [
        "id", "name", "status", "disk_format", "container_format", "size", "virtual_size", "checksum",
        "os_hash_algo", "os_hash_value", "owner", "visibility", "protected", "os_hidden", "tags", "min_disk",
        "min_ram", "created_at", "updated_at", "self", "file", "schema", "os_glance_import_task",
    ]

    public func encode(to encoder: any Encoder) throws {
        var json = encoder.container(keyedBy: JSONKey.self)
        // Glance shows absent values as null, not as missing keys.
        try json.encode(id, forKey: JSONKey("id"))
        try json.encode(name, forKey: JSONKey("name"))
        try json.encode(status, forKey: JSONKey("status"))
        try json.encode(diskFormat, forKey: JSONKey("disk_format"))
        try json.encode(containerFormat, forKey: JSONKey("container_format"))
        try json.encode(size, forKey: JSONKey("size"))
        try json.encode(virtualSize, forKey: JSONKey("virtual_size"))
        try json.encode(checksum, forKey: JSONKey("checksum"))
        try json.encode(osHashAlgo, forKey: JSONKey("os_hash_algo"))
        try json.encode(osHashValue, forKey: JSONKey("os_hash_value"))
        try json.encode(owner, forKey: JSONKey("owner"))
        try json.encode(visibility, forKey: JSONKey("visibility"))
        try json.encode(isProtected, forKey: JSONKey("protected"))
        try json.encode(osHidden, forKey: JSONKey("os_hidden"))
        try json.encode(tags, forKey: JSONKey("tags"))
        try json.encode(minDisk, forKey: JSONKey("min_disk"))
        try json.encode(minRam, forKey: JSONKey("min_ram"))
        try json.encode(createdAt, forKey: JSONKey("created_at"))
        try json.encode(updatedAt, forKey: JSONKey("updated_at"))
        try json.encode("/v2/images/\(id)", forKey: JSONKey("self"))
        try json.encode("/v2/images/\(id)/file", forKey: JSONKey("file"))
        try json.encode("/v2/schemas/image", forKey: JSONKey("schema"))
        try json.encodeIfPresent(importTask, forKey: JSONKey("os_glance_import_task"))
        for (key, value) in properties where !Self.fields.contains(key) { try json.encode(value, forKey: JSONKey(key)) }
    }

    public init(from decoder: any Decoder) throws {
        let json = try decoder.container(keyedBy: JSONKey.self)
        func value<T: Decodable>(_ key: String) throws -> T? { try json.decodeIfPresent(T.self, forKey: JSONKey(key)) }
        id = try json.decode(String.self, forKey: JSONKey("id"))
        status = try json.decode(String.self, forKey: JSONKey("status"))
        (name, diskFormat, containerFormat) = (try value("name"), try value("disk_format"), try value("container_format"))
        (size, virtualSize, checksum) = (try value("size"), try value("virtual_size"), try value("checksum"))
        (osHashAlgo, osHashValue, owner) = (try value("os_hash_algo"), try value("os_hash_value"), try value("owner"))
        visibility = try value("visibility") ?? "shared"
        isProtected = try value("protected") ?? false
        osHidden = try value("os_hidden") ?? false
        tags = try value("tags") ?? []
        (minDisk, minRam) = (try value("min_disk") ?? 0, try value("min_ram") ?? 0)
        (createdAt, updatedAt) = (try value("created_at") ?? "", try value("updated_at") ?? "")
        importTask = try value("os_glance_import_task")
        for key in json.allKeys where !Self.fields.contains(key.stringValue) {
            if let text = try? json.decode(String.self, forKey: key) { properties[key.stringValue] = text }
        }
    }
}

/// `GET /v2/images`.
public struct GlanceImageList: Codable, Sendable {
    public var images: [GlanceImage]
    public var first = "/v2/images"
    public var schema = "/v2/schemas/images"
    /// The next page, when this one is full (`limit` images).
    public var next: String?

    public init(images: [GlanceImage], first: String = "/v2/images", next: String? = nil) {
        (self.images, self.first, self.next) = (images, first, next)
    }
}

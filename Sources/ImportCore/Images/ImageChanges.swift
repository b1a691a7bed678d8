// What a client may set on an image, at create (`POST /v2/images`) and by JSON patch (`PATCH /v2/images/{id}`),
// and Glance's rules for each attribute: read-only, reserved, typed, bounded.
import Foundation

/// What `POST /v2/images` may set.
public struct ImageCreation: Sendable {
    public var name: String?
    public var diskFormat: String?
    public var containerFormat: String?
    public var visibility: String?
    public var isProtected: Bool?
    public var id: String?
    public var tags: [String] = []
    public var minDisk: Int?
    public var minRam: Int?
    public var isHidden: Bool?
    public var properties: [String: String]

    public init(
        name: String? = nil, diskFormat: String? = nil, containerFormat: String? = nil, visibility: String? = nil,
        isProtected: Bool? = nil, id: String? = nil, properties: [String: String] = [:]
    ) {
        self.name = name
        self.diskFormat = diskFormat
        self.containerFormat = containerFormat
        self.visibility = visibility
        self.isProtected = isProtected
        self.id = id
        self.properties = properties
    }
}

/// A JSON-patch operation on an image (`PATCH /v2/images/{id}`).
public struct ImagePatch: Sendable {
    public enum Operation: String, Sendable, CaseIterable { case add, replace, remove }

    /// A patch's value, in the JSON type it was sent as.
    public enum Value: Sendable, Equatable {
        case text(String), flag(Bool), number(Int), list([String])
    }

    public var operation: Operation
    /// The attribute the patch's path names (its JSON pointer decoded).
    public var attribute: String
    /// nil for `remove`.
    public var value: Value?

    public init(operation: Operation, attribute: String, value: Value? = nil) {
        self.operation = operation
        self.attribute = attribute
        self.value = value
    }
}

extension Image {
    /// Glance's `image_tag_quota` default and its tag length.
    static let maximumTags = 128
    static let maximumTagLength = 255
    static let readOnlyAttributes = [
        "id", "status", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value", "owner",
        "created_at", "updated_at", "self", "file", "schema", "os_glance_import_task", "direct_url", "locations",
    ]

    /// Tags as Glance keeps them: a set in the order first given, each at most 255 characters, at most 128.
    /// Linear in the list (a request may send a hundred thousand): this runs inside the catalog's write.
    static func checkedTags(_ tags: [String]) throws(ImageError) -> [String] {
        var seen = Set<String>()
        let kept = tags.filter { seen.insert($0).inserted }
        guard kept.count <= maximumTags else { throw .overLimit("an image may have at most \(maximumTags) tags; it would have \(kept.count)") }
        if let long = kept.first(where: { $0.count > maximumTagLength }) {
            throw .badRequest("tag '\(long.prefix(40))…' is longer than \(maximumTagLength) characters")
        }
        return kept
    }

    /// Glance's `image_property_quota` default: at most 128 properties of the caller's own (not os_glance_*, stagingfs_*).
    static let maximumProperties = 128

    static func checkPropertyCount(_ properties: [String: String]) throws(ImageError) {
        let own = properties.keys.filter { !$0.hasPrefix("os_glance_") && !$0.hasPrefix("stagingfs_") }.count
        guard own <= maximumProperties else {
            throw .overLimit("Maximum number of properties exceeded: an image may have at most \(maximumProperties); it would have \(own)")
        }
    }

    /// Glance's schema: a name of at most 255 characters (Python's, code points).
    static func checkedName(_ name: String?) throws(ImageError) -> String? {
        guard let name, name.unicodeScalars.count > 255 else { return name }
        throw .badRequest("name is \(name.unicodeScalars.count) characters long; Glance allows at most 255")
    }

    static func checkedMinimum(_ value: Int?, _ name: String) throws(ImageError) -> Int {
        guard let value else { return 0 }
        guard value >= 0 else { throw .badRequest("Invalid value '\(value)' for parameter '\(name)': Cannot be a negative value") }
        return value
    }

    /// Applies one patch, as Glance's image domain does.
    mutating func apply(_ patch: ImagePatch) throws(ImageError) {
        let field = patch.attribute
        guard !Self.readOnlyAttributes.contains(field), !field.isEmpty else { throw .forbidden("Attribute '\(field)' is read-only.") }
        // Glance's namespace and ours: users neither set nor remove them.
        if field.hasPrefix("os_glance_") || field.hasPrefix("stagingfs_") { throw .forbidden("Attribute '\(field)' is reserved.") }
        let value = patch.operation == .remove ? nil : patch.value
        func text() throws(ImageError) -> String? {
            switch value {
            case nil: return nil
            case let .text(text)?: return text
            case let other?: throw .badRequest("the value for /\(field) must be a string, not \(other)")
            }
        }
        switch field {
        case "name": name = try Self.checkedName(try text())
        case "disk_format", "container_format":
            guard status == .queued else {
                throw .conflict("\(field) can only be changed while the image is queued; it is \(status.rawValue)")
            }
            let format = try text()
            let allowed = field == "disk_format" ? ImportController.diskFormats : ImportController.containerFormats
            if let format, !allowed.contains(format) { throw .badRequest("invalid \(field) '\(format)'") }
            if field == "disk_format" { diskFormat = format } else { containerFormat = format }
        case "visibility":
            guard let visibility = try text(), ["public", "private", "shared", "community"].contains(visibility) else {
                throw .badRequest("invalid visibility: expected public, private, shared or community")
            }
            self.visibility = visibility
        case "protected", "os_hidden":
            guard case let .flag(flag)? = value else { throw .badRequest("\(field) must be true or false") }
            if field == "protected" { isProtected = flag } else { isHidden = flag }
        case "tags":
            switch value {
            case nil: tags = []
            case let .list(list)?: tags = try Self.checkedTags(list)
            default: throw .badRequest("tags must be a list of strings")
            }
        case "min_disk", "min_ram":
            guard case let .number(number)? = value else {
                throw .badRequest(patch.operation == .remove ? "\(field) cannot be removed; replace it with 0" : "\(field) must be an integer")
            }
            if field == "min_disk" { minDisk = try Self.checkedMinimum(number, field) } else { minRam = try Self.checkedMinimum(number, field) }
        default:
            if let property = try text() {
                properties[field] = property
                try Self.checkPropertyCount(properties)
            } else if properties.removeValue(forKey: field) == nil, patch.operation == .remove {
                throw .conflict("property '\(field)' does not exist")
            }
        }
    }
}

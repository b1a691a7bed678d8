// How the router reads an image's create and patch bodies: each field in the JSON type Glance's schema gives it,
// a wrongly typed one a 400 that says so, never silently dropped.
import Foundation
import ImportCore

extension APIRouter {
    /// A field of the request body: absent (or null) is nil; present with another type is a 400 that says so,
    /// never silently dropped.
    func field<T>(_ json: [String: Any], _ key: String, as type: T.Type, expected: String) throws -> T? {
        guard let value = json[key], !(value is NSNull) else { return nil }
        if T.self == Bool.self, Self.jsonBool(value) == nil {
            throw ImageError.badRequest("'\(key)' must be \(expected), not \(value)")
        }
        guard let typed = value as? T, !(T.self == String.self && value is NSNumber) else {
            throw ImageError.badRequest("'\(key)' must be \(expected), not \(value)")
        }
        return typed
    }

    func creation(_ json: [String: Any]) throws -> ImageCreation {
        var request = ImageCreation()
        request.name = try field(json, "name", as: String.self, expected: "a string")
        request.diskFormat = try field(json, "disk_format", as: String.self, expected: "a string")
        request.containerFormat = try field(json, "container_format", as: String.self, expected: "a string")
        request.visibility = try field(json, "visibility", as: String.self, expected: "a string")
        request.isProtected = try field(json, "protected", as: Bool.self, expected: "true or false")
        request.id = try field(json, "id", as: String.self, expected: "a UUID string")
        if let tags = try field(json, "tags", as: [Any].self, expected: "a list of strings") {
            guard let strings = tags as? [String] else { throw ImageError.badRequest("'tags' must be a list of strings") }
            request.tags = strings
        }
        request.minDisk = try integer(json, "min_disk")
        request.minRam = try integer(json, "min_ram")
        request.isHidden = try field(json, "os_hidden", as: Bool.self, expected: "true or false")
        // Glance's read-only attributes: 403 at create as at PATCH, never stored as properties.
        for key in [
            "status", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value", "created_at", "updated_at",
            "self", "file", "schema", "direct_url", "locations",
        ] where json[key] != nil {
            throw ImageError.forbidden("Attribute '\(key)' is read-only.")
        }
        let known: Set = ["name", "disk_format", "container_format", "visibility", "protected", "id", "tags", "min_disk", "min_ram", "os_hidden"]
        for (key, value) in json where !known.contains(key) {
            guard let text = value as? String else { throw ImageError.badRequest("property '\(key)' must be a string") }
            // Glance reserves os_glance_*; stagingfs_* are what this daemon records on images.
            if key.hasPrefix("os_glance_") || key.hasPrefix("stagingfs_") { throw ImageError.forbidden("property '\(key)' is reserved") }
            request.properties[key] = text
        }
        return request
    }

    /// Glance's two patch media types: RFC 6902 operations (v2.1) and the older `{"replace": "/name", "value": …}` (v2.0).
    enum PatchFormat { case v20, v21 }
    static let patchFormats: [String: PatchFormat] = [
        "application/openstack-images-v2.1-json-patch": .v21,
        "application/openstack-images-v2.0-json-patch": .v20,
    ]

    func patches(_ body: some APIRequestBody, format: PatchFormat) throws -> [ImagePatch] {
        let data = try body.readAll(limit: 1 << 20)
        guard let operations = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw ImageError.badRequest("the body must be a JSON patch: [{\"op\": \"replace\", \"path\": \"/name\", \"value\": \"…\"}]")
        }
        return try operations.map { operation in
            // v2.0 names the operation by its key: {"replace": "/name", "value": …}.
            let named = format == .v20 ? ImagePatch.Operation.allCases.first { operation[$0.rawValue] is String } : nil
            let op = named ?? (format == .v21 ? (operation["op"] as? String).flatMap(ImagePatch.Operation.init) : nil)
            guard let op, let pointer = (format == .v20 ? operation[op.rawValue] : operation["path"]) as? String else {
                throw ImageError.badRequest(
                    format == .v21
                        ? "each patch needs op (add, replace, remove) and path"
                        : "each v2.0 patch needs one of add, replace, remove naming the path")
            }
            let attribute = try Self.attribute(atPointer: pointer)
            guard op == .remove || operation["value"] != nil else { throw ImageError.badRequest("\(op.rawValue) of \(pointer) needs a value") }
            guard op != .remove else { return ImagePatch(operation: op, attribute: attribute) }
            guard let value = Self.patchValue(operation["value"]) else {
                throw ImageError.badRequest(
                    "the value for \(pointer) must be a string, true/false, an integer or a list of strings, not \(operation["value"] ?? "null")")
            }
            return ImagePatch(operation: op, attribute: attribute, value: value)
        }
    }

    /// A JSON true/false: JSONSerialization gives numbers and booleans alike as NSNumber; only a boolean's type is "c".
    static func jsonBool(_ value: Any?) -> Bool? {
        guard let number = value as? NSNumber, String(cString: number.objCType) == "c" else { return nil }
        return number.boolValue
    }

    /// A JSON integer (not a boolean, not a fraction, within Int).
    static func jsonInteger(_ value: Any?) -> Int? {
        guard let number = value as? NSNumber, jsonBool(value) == nil, let integer = Int(exactly: number.doubleValue),
            Double(integer) == number.doubleValue
        else { return nil }
        return integer
    }

    /// A patch value in the JSON type it was sent as; nil for null, objects and mixed lists.
    static func patchValue(_ value: Any?) -> ImagePatch.Value? {
        if let text = value as? String, !(value is NSNumber) { return .text(text) }
        if let flag = jsonBool(value) { return .flag(flag) }
        if let integer = jsonInteger(value) { return .number(integer) }
        if let list = value as? [String] { return .list(list) }
        return nil
    }

    /// `min_disk` / `min_ram` at create: absent, null, or an integer (Glance's schema); a string or fraction is a 400.
    func integer(_ json: [String: Any], _ key: String) throws -> Int? {
        guard let value = json[key], !(value is NSNull) else { return nil }
        guard let integer = Self.jsonInteger(value) else { throw ImageError.badRequest("'\(key)' must be an integer, not \(value)") }
        return integer
    }

    /// The attribute a JSON pointer (RFC 6901) names: one reference token, `~1` for `/` and `~0` for `~`.
    /// Deeper paths name nothing an image has here (Glance's `/locations/…` is not supported).
    static func attribute(atPointer pointer: String) throws -> String {
        guard pointer.hasPrefix("/"), !pointer.dropFirst().contains("/") else {
            throw ImageError.badRequest("path '\(pointer)' must name one attribute: /name, /visibility, /my_property…")
        }
        var token = ""
        var escape = false
        for character in pointer.dropFirst() {
            if escape {
                guard character == "0" || character == "1" else { throw ImageError.badRequest("path '\(pointer)': '~' must be followed by 0 or 1") }
                token.append(character == "0" ? "~" : "/")
                escape = false
            } else if character == "~" {
                escape = true
            } else {
                token.append(character)
            }
        }
        guard !escape else { throw ImageError.badRequest("path '\(pointer)' ends in an unfinished '~' escape") }
        return token
    }
}

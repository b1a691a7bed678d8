// Glance v2's JSON schemas (`/v2/schemas/…`): glanceclient builds its models from them and validates every image
// and task it shows against them, so each field here must describe what GlanceJSON sends.
import Foundation
import ImportCore

enum GlanceSchemas {
    private static func nullable(_ type: String, _ description: String, maxLength: Int? = nil) -> [String: Any] {
        var property: [String: Any] = ["type": ["null", type], "readOnly": true, "description": description]
        if let maxLength { property["maxLength"] = maxLength }
        return property
    }

    private static func readOnly(_ type: String, _ description: String) -> [String: Any] {
        ["type": type, "readOnly": true, "description": description]
    }

    static let uuidPattern = "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"

    /// `/v2/schemas/image`.
    static var image: [String: Any] {
        let properties: [String: Any] = [
            "id": ["type": "string", "pattern": uuidPattern, "description": "An identifier for the image"],
            "name": ["type": ["null", "string"], "maxLength": 255, "description": "Descriptive name for the image"],
            "status": [
                "type": "string", "readOnly": true, "enum": ImageStatus.allCases.map(\.rawValue),
                "description": "Status of the image",
            ],
            "visibility": [
                "type": "string", "enum": ["community", "public", "private", "shared"],
                "description": "Scope of image accessibility",
            ],
            "protected": ["type": "boolean", "description": "If true, image will not be deletable."],
            "os_hidden": ["type": "boolean", "description": "If true, image will not appear in default image list response."],
            "checksum": nullable("string", "md5 hash of image contents.", maxLength: 32),
            "os_hash_algo": nullable("string", "Algorithm to calculate the os_hash_value", maxLength: 64),
            "os_hash_value": nullable("string", "Hexdigest of the image contents using the algorithm specified by the os_hash_algo", maxLength: 128),
            "owner": ["type": ["null", "string"], "maxLength": 255, "description": "Owner of the image"],
            "size": nullable("integer", "Size of image file in bytes"),
            "virtual_size": nullable("integer", "Virtual size of image in bytes"),
            "container_format": [
                "type": ["null", "string"], "enum": ImportController.containerFormats as [Any] + [NSNull()],
                "description": "Format of the container",
            ],
            "disk_format": [
                "type": ["null", "string"], "enum": ImportController.diskFormats as [Any] + [NSNull()],
                "description": "Format of the disk",
            ],
            "created_at": readOnly("string", "Date and time of image registration"),
            "updated_at": readOnly("string", "Date and time of the last image modification"),
            "tags": ["type": "array", "items": ["type": "string", "maxLength": 255], "description": "List of strings related to the image"],
            "min_ram": ["type": "integer", "description": "Amount of ram (in MB) required to boot image."],
            "min_disk": ["type": "integer", "description": "Amount of disk space (in GB) required to boot image."],
            "self": readOnly("string", "An image self url"),
            "file": readOnly("string", "An image file url"),
            "schema": readOnly("string", "An image schema url"),
        ]
        return [
            "name": "image", "properties": properties, "additionalProperties": ["type": "string"],
            "links": [["rel": "self", "href": "{self}"], ["rel": "enclosure", "href": "{file}"], ["rel": "describedby", "href": "{schema}"]],
        ]
    }

    /// `/v2/schemas/images`.
    static var images: [String: Any] {
        [
            "name": "images",
            "properties": [
                "images": ["type": "array", "items": image], "schema": ["type": "string"], "first": ["type": "string"],
                "next": ["type": "string"],
            ],
            "links": [["rel": "first", "href": "{first}"], ["rel": "next", "href": "{next}"], ["rel": "describedby", "href": "{schema}"]],
        ]
    }

    /// `/v2/schemas/task`.
    static var task: [String: Any] {
        let properties: [String: Any] = [
            "id": ["type": "string", "pattern": uuidPattern, "description": "An identifier for the task"],
            "type": ["type": "string", "enum": ["import", "api_image_import"], "description": "The type of task represented by this content"],
            "status": ["type": "string", "enum": ["pending", "processing", "success", "failure"], "description": "The current status of this task"],
            "input": ["type": ["null", "object"], "description": "The parameters required by task, JSON blob"],
            "result": ["type": ["null", "object"], "description": "The result of current task, JSON blob"],
            "owner": ["type": ["null", "string"], "description": "An identifier for the owner of this task"],
            "message": ["type": "string", "description": "Human-readable informative message only included when appropriate (usually on failure)"],
            "image_id": ["type": ["null", "string"], "readOnly": true, "description": "Image associated with the task"],
            "request_id": ["type": ["null", "string"], "readOnly": true, "description": "Human-readable informative request-id"],
            "user_id": ["type": ["null", "string"], "readOnly": true, "description": "User associated with the task"],
            "expires_at": ["type": ["null", "string"], "description": "Datetime when this resource would be subject to removal"],
            "created_at": ["type": "string", "description": "Datetime when this resource was created"],
            "updated_at": ["type": "string", "description": "Datetime when this resource was updated"],
            "self": ["type": "string"],
            "schema": ["type": "string"],
        ]
        return [
            "name": "task", "properties": properties,
            "links": [["rel": "self", "href": "{self}"], ["rel": "describedby", "href": "{schema}"]],
        ]
    }

    /// `/v2/schemas/tasks`.
    static var tasks: [String: Any] {
        [
            "name": "tasks",
            "properties": [
                "tasks": ["type": "array", "items": task], "schema": ["type": "string"], "first": ["type": "string"],
                "next": ["type": "string"],
            ],
            "links": [["rel": "first", "href": "{first}"], ["rel": "next", "href": "{next}"], ["rel": "describedby", "href": "{schema}"]],
        ]
    }

    /// The schema at `/v2/schemas/NAME`, if there is one.
    static func named(_ name: String) -> [String: Any]? {
        switch name {
        case "image": return image
        case "images": return images
        case "task": return task
        case "tasks": return tasks
        default: return nil
        }
    }
}

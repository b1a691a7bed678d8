// Glance v2's JSON shapes for images, tasks, versions and errors.
import Foundation
import ImportCore

enum GlanceJSON {
    /// Glance's timestamps: `2026-11-30T19:35:52Z`.
    static func date(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    static func image(_ image: Image) -> [String: Any] {
        var json: [String: Any] = [
            "id": image.id, "name": image.name ?? NSNull(), "status": image.status.rawValue,
            "disk_format": image.diskFormat ?? NSNull(), "container_format": image.containerFormat ?? NSNull(),
            "size": image.size.map { $0 as Any } ?? NSNull(), "virtual_size": image.virtualSize.map { $0 as Any } ?? NSNull(),
            "checksum": image.checksum ?? NSNull(), "os_hash_algo": image.osHashAlgo ?? NSNull(), "os_hash_value": image.osHashValue ?? NSNull(),
            "owner": image.owner ?? NSNull(), "visibility": image.visibility, "protected": image.isProtected, "os_hidden": false,
            "tags": [String](), "min_disk": 0, "min_ram": 0,
            "created_at": date(image.createdAt), "updated_at": date(image.updatedAt),
            "self": "/v2/images/\(image.id)", "file": "/v2/images/\(image.id)/file", "schema": "/v2/schemas/image",
        ]
        if let task = image.importTask { json["os_glance_import_task"] = task }
        for (key, value) in image.properties where json[key] == nil { json[key] = value }
        return json
    }

    /// Ours: a node of a shared staging area (`GET /v2/stagingfs/nodes`).
    static func node(_ node: NodeStatus) -> [String: Any] {
        ["id": node.record.id, "host": node.record.host, "mountpoint": node.record.mountpoint, "started_at": date(node.record.startedAt),
         "heartbeat_at": date(node.record.heartbeatAt), "status": node.isUp ? "up" : "down", "tasks": node.tasks]
    }

    static func task(_ task: ImportTask) -> [String: Any] {
        [
            "id": task.id, "type": task.type, "status": task.status.rawValue, "input": task.input,
            "result": task.result.map { $0 as Any } ?? NSNull(), "owner": task.owner ?? NSNull(), "message": task.message,
            "image_id": task.imageID, "user_id": task.userID ?? NSNull(), "request_id": task.requestID,
            "expires_at": task.expiresAt.map { date($0) as Any } ?? NSNull(),
            "created_at": date(task.createdAt), "updated_at": date(task.updatedAt),
            "self": "/v2/tasks/\(task.id)", "schema": "/v2/schemas/task",
            "stagingfs_progress": ["bytes_done": task.bytesDone, "bytes_total": task.bytesTotal],
        ]
    }

    /// Glance's version list; without import (enable_image_import = false) the import-capable versions (2.6 on) are left out.
    static func versions(importEnabled: Bool, host: String) -> [String: Any] {
        let numbers = importEnabled
            ? [("2.17", "CURRENT"), ("2.15", "SUPPORTED"), ("2.9", "SUPPORTED"), ("2.7", "SUPPORTED"), ("2.6", "SUPPORTED"),
               ("2.5", "SUPPORTED"), ("2.4", "SUPPORTED"), ("2.3", "SUPPORTED"), ("2.2", "SUPPORTED"), ("2.1", "SUPPORTED"), ("2.0", "SUPPORTED")]
            : [("2.5", "CURRENT"), ("2.4", "SUPPORTED"), ("2.3", "SUPPORTED"), ("2.2", "SUPPORTED"), ("2.1", "SUPPORTED"), ("2.0", "SUPPORTED")]
        return ["versions": numbers.map { number, status in
            ["id": "v\(number)", "status": status, "links": [["rel": "self", "href": "http://\(host)/v2/"]]] as [String: Any]
        }]
    }

    /// A webob-style error body, as Glance sends with JSON: `{"code": "409 Conflict", "title": "Conflict", "message": "…"}`.
    static func error(status: Int, title: String, message: String) -> [String: Any] {
        ["code": "\(status) \(title)", "title": title, "message": message]
    }
}

// ImportCore's images, tasks and nodes as Glance v2's JSON shapes (GlanceModels), and the version list.
import Foundation
import GlanceModels
import ImportCore

enum GlanceJSON {
    /// Glance's timestamps: `2026-11-30T19:35:52Z`.
    static func date(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    static func image(_ image: Image) -> GlanceImage {
        var shown = GlanceImage(
            id: image.id, name: image.name, status: image.status.rawValue, diskFormat: image.diskFormat,
            containerFormat: image.containerFormat, size: image.size, virtualSize: image.virtualSize, checksum: image.checksum,
            osHashAlgo: image.osHashAlgo, osHashValue: image.osHashValue, owner: image.owner, visibility: image.visibility,
            isProtected: image.isProtected, createdAt: date(image.createdAt), updatedAt: date(image.updatedAt),
            importTask: image.importTask, properties: image.properties)
        (shown.tags, shown.minDisk, shown.minRam, shown.osHidden) = (image.tags, image.minDisk, image.minRam, image.isHidden)
        return shown
    }

    static func node(_ node: NodeStatus) -> StagingNode {
        StagingNode(
            id: node.record.id, host: node.record.host, mountpoint: node.record.mountpoint, startedAt: date(node.record.startedAt),
            heartbeatAt: date(node.record.heartbeatAt), status: node.isUp ? "up" : "down", tasks: node.tasks)
    }

    static func task(_ task: ImportTask) -> GlanceTask {
        GlanceTask(
            id: task.id, type: task.type, status: task.status.rawValue,
            input: GlanceTaskInput(imageID: task.input["image_id"], method: task.input["import_req"], uri: task.input["uri"]), result: task.result,
            owner: task.owner,
            message: task.message, imageID: task.imageID, userID: task.userID, requestID: task.requestID,
            expiresAt: task.expiresAt.map(date), createdAt: date(task.createdAt), updatedAt: date(task.updatedAt),
            progress: GlanceTask.Progress(bytesDone: task.bytesDone, bytesTotal: task.bytesTotal))
    }

    /// Glance's version list; without import (enable_image_import = false) the import-capable versions (2.6 on) are left out.
    static func versions(importEnabled: Bool, host: String) -> GlanceVersionList {
        let numbers =
            importEnabled
            ? [
                ("2.17", "CURRENT"), ("2.15", "SUPPORTED"), ("2.9", "SUPPORTED"), ("2.7", "SUPPORTED"), ("2.6", "SUPPORTED"),
                ("2.5", "SUPPORTED"), ("2.4", "SUPPORTED"), ("2.3", "SUPPORTED"), ("2.2", "SUPPORTED"), ("2.1", "SUPPORTED"), ("2.0", "SUPPORTED"),
            ]
            : [("2.5", "CURRENT"), ("2.4", "SUPPORTED"), ("2.3", "SUPPORTED"), ("2.2", "SUPPORTED"), ("2.1", "SUPPORTED"), ("2.0", "SUPPORTED")]
        return GlanceVersionList(versions: numbers.map { GlanceVersionList.Version(id: "v\($0)", status: $1, selfLink: "http://\(host)/v2/") })
    }
}

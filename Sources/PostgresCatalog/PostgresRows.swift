// Rows of the PostgreSQL catalog's tables → the model (the mirror of SQLiteCatalog's row mapping, for PostgresNIO's rows).
import FormatInspection
import Foundation
import ImportCore
import PostgresNIO

enum PostgresRows {
    static func file(_ row: PostgresRow) throws -> StagedFile {
        let row = row.makeRandomAccess()
        return StagedFile(
            name: try row["name"].decode(String.self),
            state: StagedFileState(rawValue: try row["state"].decode(String.self)) ?? .incomplete,
            projectID: try row["project_id"].decode(String?.self),
            userID: try row["user_id"].decode(String?.self),
            ownerUID: UInt32(truncatingIfNeeded: try row["owner_uid"].decode(Int64.self)),
            ownerGID: UInt32(truncatingIfNeeded: try row["owner_gid"].decode(Int64.self)),
            size: try row["size"].decode(Int64.self),
            hashAlgorithm: DigestAlgorithm(rawValue: try row["hash_algo"].decode(String.self)) ?? .sha512,
            hashValue: try row["hash_value"].decode(String?.self),
            checksum: try row["checksum"].decode(String?.self),
            message: try row["message"].decode(String?.self),
            createdAt: try date(row["created_at"]),
            updatedAt: try date(row["updated_at"]),
            sealedModification: try row["sealed_mtime_ns"].decode(Int64?.self),
            sealedInode: try row["sealed_inode"].decode(Int64?.self).map { UInt64(bitPattern: $0) },
            inspection: try row["format"].decode(String?.self).flatMap(ImageFormat.init(rawValue:)).map {
                InspectedImage(format: $0, virtualSize: try row["virtual_size"].decode(Int64?.self) ?? 0)
            },
            writerNode: try row["writer_node"].decode(String?.self))
    }

    static func image(_ row: PostgresRow) throws -> Image {
        let row = row.makeRandomAccess()
        var image = Image(
            id: try row["id"].decode(String.self), name: try row["name"].decode(String?.self),
            status: ImageStatus(rawValue: try row["status"].decode(String.self)) ?? .killed,
            diskFormat: try row["disk_format"].decode(String?.self), containerFormat: try row["container_format"].decode(String?.self),
            owner: try row["owner"].decode(String?.self), visibility: try row["visibility"].decode(String.self),
            isProtected: try row["protected"].decode(Bool.self), properties: CatalogJSON.decode(try row["properties"].decode(String.self)),
            createdAt: try date(row["created_at"]))
        image.size = try row["size"].decode(Int64?.self)
        image.virtualSize = try row["virtual_size"].decode(Int64?.self)
        image.checksum = try row["checksum"].decode(String?.self)
        image.osHashAlgo = try row["os_hash_algo"].decode(String?.self)
        image.osHashValue = try row["os_hash_value"].decode(String?.self)
        image.importTask = try row["import_task"].decode(String?.self)
        image.tags = CatalogJSON.decodeList(try row["tags"].decode(String.self))
        image.minDisk = Int(try row["min_disk"].decode(Int64.self))
        image.minRam = Int(try row["min_ram"].decode(Int64.self))
        image.isHidden = try row["os_hidden"].decode(Bool.self)
        image.updatedAt = try date(row["updated_at"])
        return image
    }

    static func task(_ row: PostgresRow) throws -> ImportTask {
        let row = row.makeRandomAccess()
        var task = ImportTask(
            imageID: try row["image_id"].decode(String.self), method: "", owner: try row["owner"].decode(String?.self),
            userID: try row["user_id"].decode(String?.self), createdAt: try date(row["created_at"]))
        task.id = try row["id"].decode(String.self)
        task.type = try row["type"].decode(String.self)
        task.status = TaskStatus(rawValue: try row["status"].decode(String.self)) ?? .failure
        task.input = CatalogJSON.decode(try row["input"].decode(String.self))
        task.result = try row["result"].decode(String?.self).map(CatalogJSON.decode)
        task.message = try row["message"].decode(String.self)
        task.requestID = try row["request_id"].decode(String.self)
        task.bytesDone = try row["bytes_done"].decode(Int64.self)
        task.bytesTotal = try row["bytes_total"].decode(Int64.self)
        task.expiresAt = try optionalDate(row["expires_at"])
        task.leaseHolder = try row["lease_holder"].decode(String?.self)
        task.leaseExpiresAt = try optionalDate(row["lease_expires_at"])
        task.leaseEpoch = try row["lease_epoch"].decode(Int.self)
        task.updatedAt = try date(row["updated_at"])
        return task
    }

    static func node(_ row: PostgresRow) throws -> NodeRecord {
        let row = row.makeRandomAccess()
        return NodeRecord(
            id: try row["id"].decode(String.self), host: try row["host"].decode(String.self),
            mountpoint: try row["mountpoint"].decode(String.self), startedAt: try date(row["started_at"]),
            heartbeatAt: try date(row["heartbeat_at"]))
    }

    private static func date(_ cell: PostgresCell) throws -> Date {
        Date(timeIntervalSince1970: try cell.decode(Double.self))
    }

    private static func optionalDate(_ cell: PostgresCell) throws -> Date? {
        try cell.decode(Double?.self).map(Date.init(timeIntervalSince1970:))
    }
}

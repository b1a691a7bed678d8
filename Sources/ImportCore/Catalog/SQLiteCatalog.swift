// The embedded catalog: a SQLite file in WAL mode with versioned migrations.
import FormatInspection
import Foundation
import GRDB

/// The SQLite catalog (`[database] connection = sqlite:///…`, or `catalog.sqlite` in the state directory).
public final class SQLiteCatalog: StagedFileCatalog, ImageCatalog, ClusterCatalog {
    private let pool: DatabasePool
    public let path: String

    /// One daemon's own (StagingFSCommand holds `<path>.lock` while it runs): nobody else writes these records.
    public var isShared: Bool { false }

    public init(path: String) throws {
        self.path = path
        do {
            var configuration = Configuration()
            configuration.busyMode = .timeout(10)
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch {
            throw CatalogError.cannotOpen(path: path, reason: String(describing: error))
        }
    }

    public func allStagedFiles() throws -> [StagedFile] {
        try wrap { try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM staged_files ORDER BY name").map(Self.file) } }
    }

    /// Read on every lookup (the multi-node refresh): one statement, consistent by itself, so no transaction
    /// around it, and prepared once per connection instead of compiled (and authorized by GRDB) at every call.
    public func stagedFile(named name: String) throws -> StagedFile? {
        try wrap {
            try pool.unsafeRead { db in
                try Row.fetchOne(try db.cachedStatement(sql: "SELECT * FROM staged_files WHERE name = ?"), arguments: [name]).map(Self.file)
            }
        }
    }

    public func save(_ file: StagedFile) throws {
        try wrap { try pool.write { db in try Self.write(file, db) } }
    }

    public func save(_ file: StagedFile, if condition: StagedFileCondition) throws -> Bool {
        try wrap {
            // A write transaction: SQLite admits one writer at a time, so nothing changes the row in between.
            try pool.write { db in
                let stored = try Row.fetchOne(db, sql: "SELECT * FROM staged_files WHERE name = ?", arguments: [file.name]).map(Self.file)
                guard condition.holds(for: stored) else { return false }
                try Self.write(file, db)
                return true
            }
        }
    }

    private static func write(_ file: StagedFile, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO staged_files
                  (name, state, project_id, user_id, owner_uid, owner_gid, size, hash_algo, hash_value, checksum, message, created_at, updated_at,
                   sealed_mtime_ns, sealed_inode, format, virtual_size, writer_node)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                file.name, file.state.rawValue, file.projectID, file.userID, Int64(file.ownerUID), Int64(file.ownerGID),
                file.size, file.hashAlgorithm.rawValue, file.hashValue, file.checksum, file.message,
                file.createdAt.timeIntervalSince1970, file.updatedAt.timeIntervalSince1970, file.sealedModification,
                file.sealedInode.map { Int64(bitPattern: $0) }, file.inspection?.format.rawValue, file.inspection?.virtualSize,
                file.writerNode,
            ])
    }

    public func removeStagedFile(named name: String) throws {
        try wrap { try pool.write { db in try db.execute(sql: "DELETE FROM staged_files WHERE name = ?", arguments: [name]) } }
    }

    public func renameStagedFile(from source: String, to target: String) throws {
        try wrap {
            try pool.write { db in
                try db.execute(sql: "DELETE FROM staged_files WHERE name = ?", arguments: [target])
                try db.execute(sql: "UPDATE staged_files SET name = ? WHERE name = ?", arguments: [target, source])
            }
        }
    }

    // MARK: - Images and tasks

    public func image(_ id: String) throws -> Image? {
        try wrap { try pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM images WHERE id = ?", arguments: [id]).map(Self.image) } }
    }

    public func images() throws -> [Image] {
        try wrap {
            try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM images WHERE status != 'deleted' ORDER BY created_at DESC").map(Self.image)
            }
        }
    }

    public func insert(_ image: Image) throws {
        try wrap { try pool.write { db in try Self.write(image, db) } }
    }

    public func updateImage(_ id: String, _ change: (inout Image) throws -> Void) throws -> Image {
        try wrap { try pool.write { db in try Self.update(id, db, change) } }
    }

    private static func update(_ id: String, _ db: Database, _ change: (inout Image) throws -> Void) throws -> Image {
        guard var image = try Row.fetchOne(db, sql: "SELECT * FROM images WHERE id = ?", arguments: [id]).map(Self.image) else {
            throw ImageError.notFound("no image with ID \(id)")
        }
        try change(&image)
        image.updatedAt = Date()
        try Self.write(image, db)
        return image
    }

    public func task(_ id: String) throws -> ImportTask? {
        try wrap { try pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM tasks WHERE id = ?", arguments: [id]).map(Self.task) } }
    }

    public func tasks(imageID: String?) throws -> [ImportTask] {
        try wrap {
            try pool.read { db in
                let rows =
                    if let imageID {
                        try Row.fetchAll(db, sql: "SELECT * FROM tasks WHERE image_id = ? ORDER BY created_at DESC", arguments: [imageID])
                    } else {
                        try Row.fetchAll(db, sql: "SELECT * FROM tasks ORDER BY created_at DESC")
                    }
                return rows.map(Self.task)
            }
        }
    }

    public func tasks(status: TaskStatus) throws -> [ImportTask] {
        try wrap { try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM tasks WHERE status = ?", arguments: [status.rawValue]).map(Self.task) } }
    }

    public func save(_ task: ImportTask) throws {
        try wrap {
            try pool.write { db in
                // The lease is written when the task is first saved, then only by claims and heartbeats: a save of
                // a task read earlier must not undo another node's claim.
                try db.execute(
                    sql: """
                        INSERT INTO tasks (id, type, status, input, result, message, owner, image_id, user_id, request_id,
                          bytes_done, bytes_total, expires_at, created_at, updated_at, lease_holder, lease_expires_at, lease_epoch)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT(id) DO UPDATE SET status = excluded.status, input = excluded.input, result = excluded.result,
                          message = excluded.message, bytes_done = excluded.bytes_done, bytes_total = excluded.bytes_total,
                          expires_at = excluded.expires_at, updated_at = excluded.updated_at
                        """,
                    arguments: [
                        task.id, task.type, task.status.rawValue, CatalogJSON.encode(task.input), task.result.map(CatalogJSON.encode), task.message,
                        task.owner, task.imageID, task.userID, task.requestID, task.bytesDone, task.bytesTotal,
                        task.expiresAt?.timeIntervalSince1970, task.createdAt.timeIntervalSince1970, task.updatedAt.timeIntervalSince1970,
                        task.leaseHolder, task.leaseExpiresAt?.timeIntervalSince1970, task.leaseEpoch,
                    ])
            }
        }
    }

    public func purgeTasks(expiredBefore date: Date) throws -> Int {
        try wrap {
            try pool.write { db in
                try db.execute(sql: "DELETE FROM tasks WHERE expires_at IS NOT NULL AND expires_at < ?", arguments: [date.timeIntervalSince1970])
                return db.changesCount
            }
        }
    }

    private static func write(_ image: Image, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO images (id, name, status, disk_format, container_format, size, virtual_size, checksum, os_hash_algo,
                  os_hash_value, owner, visibility, protected, import_task, properties, tags, min_disk, min_ram, os_hidden, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                image.id, image.name, image.status.rawValue, image.diskFormat, image.containerFormat, image.size, image.virtualSize,
                image.checksum, image.osHashAlgo, image.osHashValue, image.owner, image.visibility, image.isProtected,
                image.importTask, CatalogJSON.encode(image.properties), CatalogJSON.encode(image.tags), image.minDisk, image.minRam,
                image.isHidden, image.createdAt.timeIntervalSince1970, image.updatedAt.timeIntervalSince1970,
            ])
    }

    private static func image(_ row: Row) -> Image {
        var image = Image(
            id: row["id"], name: row["name"], status: ImageStatus(rawValue: row["status"]) ?? .killed,
            diskFormat: row["disk_format"], containerFormat: row["container_format"], owner: row["owner"],
            visibility: row["visibility"], isProtected: row["protected"], properties: CatalogJSON.decode(row["properties"]),
            createdAt: Date(timeIntervalSince1970: row["created_at"]))
        image.size = row["size"]
        image.virtualSize = row["virtual_size"]
        image.checksum = row["checksum"]
        image.osHashAlgo = row["os_hash_algo"]
        image.osHashValue = row["os_hash_value"]
        image.importTask = row["import_task"]
        image.tags = CatalogJSON.decodeList(row["tags"])
        image.minDisk = row["min_disk"]
        image.minRam = row["min_ram"]
        image.isHidden = row["os_hidden"]
        image.updatedAt = Date(timeIntervalSince1970: row["updated_at"])
        return image
    }

    private static func task(_ row: Row) -> ImportTask {
        var task = ImportTask(
            imageID: row["image_id"], method: "", owner: row["owner"], userID: row["user_id"],
            createdAt: Date(timeIntervalSince1970: row["created_at"]))
        task.id = row["id"]
        task.type = row["type"]
        task.status = TaskStatus(rawValue: row["status"]) ?? .failure
        task.input = CatalogJSON.decode(row["input"])
        task.result = (row["result"] as String?).map(CatalogJSON.decode)
        task.message = row["message"]
        task.requestID = row["request_id"]
        task.bytesDone = row["bytes_done"]
        task.bytesTotal = row["bytes_total"]
        task.expiresAt = (row["expires_at"] as Double?).map(Date.init(timeIntervalSince1970:))
        task.leaseHolder = row["lease_holder"]
        task.leaseExpiresAt = (row["lease_expires_at"] as Double?).map(Date.init(timeIntervalSince1970:))
        task.leaseEpoch = row["lease_epoch"]
        task.updatedAt = Date(timeIntervalSince1970: row["updated_at"])
        return task
    }

    // MARK: - Nodes and leases

    public func register(_ node: NodeRecord) throws {
        try wrap {
            try pool.write { db in
                try db.execute(
                    sql: "INSERT OR REPLACE INTO nodes (id, host, mountpoint, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)",
                    arguments: [node.id, node.host, node.mountpoint, node.startedAt.timeIntervalSince1970, node.heartbeatAt.timeIntervalSince1970])
            }
        }
    }

    public func heartbeat(node: String, now: Date, leaseUntil: Date) throws -> [String] {
        try wrap {
            try pool.write { db in
                try db.execute(sql: "UPDATE nodes SET heartbeat_at = ? WHERE id = ?", arguments: [now.timeIntervalSince1970, node])
                try db.execute(
                    sql: "UPDATE tasks SET lease_expires_at = ? WHERE lease_holder = ? AND status IN ('pending', 'processing')",
                    arguments: [leaseUntil.timeIntervalSince1970, node])
                return try String.fetchAll(
                    db, sql: "SELECT id FROM tasks WHERE lease_holder = ? AND status IN ('pending', 'processing')",
                    arguments: [node])
            }
        }
    }

    public func nodes() throws -> [NodeRecord] {
        try wrap {
            try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM nodes ORDER BY id").map { row in
                    NodeRecord(
                        id: row["id"], host: row["host"], mountpoint: row["mountpoint"],
                        startedAt: Date(timeIntervalSince1970: row["started_at"]), heartbeatAt: Date(timeIntervalSince1970: row["heartbeat_at"]))
                }
            }
        }
    }

    public func removeNode(_ id: String) throws {
        try wrap { try pool.write { db in try db.execute(sql: "DELETE FROM nodes WHERE id = ?", arguments: [id]) } }
    }

    public func claim(taskID: String, node: String, now: Date, leaseUntil: Date) throws -> ImportTask? {
        try wrap {
            try pool.write { db in
                try db.execute(
                    sql: """
                        UPDATE tasks SET lease_holder = ?, lease_expires_at = ?, lease_epoch = lease_epoch + 1
                        WHERE id = ? AND status IN ('pending', 'processing')
                          AND (lease_holder IS NULL OR lease_holder = ? OR lease_expires_at IS NULL OR lease_expires_at < ?)
                        """, arguments: [node, leaseUntil.timeIntervalSince1970, taskID, node, now.timeIntervalSince1970])
                guard db.changesCount == 1 else { return nil }
                return try Row.fetchOne(db, sql: "SELECT * FROM tasks WHERE id = ?", arguments: [taskID]).map(Self.task)
            }
        }
    }

    public func claimableTasks(now: Date) throws -> [ImportTask] {
        try wrap {
            try pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT * FROM tasks WHERE status IN ('pending', 'processing')
                          AND (lease_holder IS NULL OR lease_expires_at IS NULL OR lease_expires_at < ?) ORDER BY created_at
                        """, arguments: [now.timeIntervalSince1970]
                ).map(Self.task)
            }
        }
    }

    public func updateImage(_ id: String, holding lease: TaskLease, _ change: (inout Image) throws -> Void) throws -> Image {
        try wrap {
            try pool.write { db in
                let row = try Row.fetchOne(db, sql: "SELECT lease_holder, lease_epoch FROM tasks WHERE id = ?", arguments: [lease.taskID])
                guard let row, row["lease_holder"] as String? == lease.holder, row["lease_epoch"] as Int == lease.epoch else {
                    throw CatalogError.leaseLost(taskID: lease.taskID)
                }
                return try Self.update(id, db, change)
            }
        }
    }

    private func wrap<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as DatabaseError { throw CatalogError.query(reason: error.description) }
    }

    private static func file(_ row: Row) -> StagedFile {
        StagedFile(
            name: row["name"],
            state: StagedFileState(rawValue: row["state"]) ?? .incomplete,
            projectID: row["project_id"],
            userID: row["user_id"],
            ownerUID: UInt32(truncatingIfNeeded: row["owner_uid"] as Int64),
            ownerGID: UInt32(truncatingIfNeeded: row["owner_gid"] as Int64),
            size: row["size"],
            hashAlgorithm: DigestAlgorithm(rawValue: row["hash_algo"]) ?? .sha512,
            hashValue: row["hash_value"],
            checksum: row["checksum"],
            message: row["message"],
            createdAt: Date(timeIntervalSince1970: row["created_at"]),
            updatedAt: Date(timeIntervalSince1970: row["updated_at"]),
            sealedModification: row["sealed_mtime_ns"],
            sealedInode: (row["sealed_inode"] as Int64?).map { UInt64(bitPattern: $0) },
            inspection: (row["format"] as String?).flatMap(ImageFormat.init(rawValue:)).map {
                InspectedImage(format: $0, virtualSize: row["virtual_size"] ?? 0)
            },
            writerNode: row["writer_node"])
    }
}

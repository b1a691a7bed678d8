// The shared catalog of several nodes: SQLiteCatalog's semantics on a PostgreSQL server, for synchronous callers.
import Foundation
import ImportCore
import Logging
import PostgresNIO

/// The PostgreSQL catalog (`[database] connection = postgresql://…`). Every method is one transaction on a connection
/// borrowed from a small pool and blocks its caller, which must not be a NIO event loop thread (FUSE workers, import
/// executor and API threads are not).
public final class PostgresCatalog: StagedFileCatalog, ImageCatalog, ClusterCatalog {
    /// Where the catalog lives, without the password.
    public let server: String
    private let pool: BlockingConnectionPool

    /// Connects to `url` (`postgresql://user[:password]@host[:port]/dbname`), at most `connections` at a time, and
    /// applies the migrations the database lacks.
    public init(url: String, connections: Int = 8, logger: Logger) throws {
        let parsed: PostgresURL
        do { parsed = try PostgresURL(url) } catch {
            throw CatalogError.cannotConnect(server: "postgresql://…", reason: error.description)
        }
        server = parsed.description
        pool = BlockingConnectionPool(url: parsed, limit: connections, logger: logger)
        do { try PostgresSchema.migrate(pool) } catch {
            pool.shutdown()
            throw error
        }
    }

    /// Closes the connections; calls after this one fail.
    public func shutdown() { pool.shutdown() }

    deinit { pool.shutdown() }

    // MARK: - Staged files

    public func allStagedFiles() throws -> [StagedFile] {
        try rows("SELECT * FROM staged_files ORDER BY name", PostgresRows.file)
    }

    public func stagedFile(named name: String) throws -> StagedFile? {
        try rows("SELECT * FROM staged_files WHERE name = \(name)", PostgresRows.file).first
    }

    public func save(_ file: StagedFile) throws {
        try pool.withConnection { session in try Self.write(file, session) }
    }

    public func save(_ file: StagedFile, if condition: StagedFileCondition) throws -> Bool {
        try pool.transaction { session in
            // FOR UPDATE: another node's conditional save of the same row waits for this transaction.
            let stored = try session.query("SELECT * FROM staged_files WHERE name = \(file.name) FOR UPDATE").first.map(PostgresRows.file)
            guard condition.holds(for: stored) else { return false }
            try Self.write(file, session)
            return true
        }
    }

    private static func write(_ file: StagedFile, _ session: PostgresSession) throws {
        try session.execute(
            """
            INSERT INTO staged_files (name, state, project_id, user_id, owner_uid, owner_gid, size, hash_algo, hash_value, checksum,
              message, created_at, updated_at, sealed_mtime_ns, sealed_inode, format, virtual_size, writer_node)
            VALUES (\(file.name), \(file.state.rawValue), \(file.projectID), \(file.userID), \(Int64(file.ownerUID)),
              \(Int64(file.ownerGID)), \(file.size), \(file.hashAlgorithm.rawValue), \(file.hashValue), \(file.checksum),
              \(file.message), \(file.createdAt.timeIntervalSince1970), \(file.updatedAt.timeIntervalSince1970),
              \(file.sealedModification), \(file.sealedInode.map { Int64(bitPattern: $0) }), \(file.inspection?.format.rawValue), \(file.inspection?.virtualSize), \(file.writerNode))
            ON CONFLICT (name) DO UPDATE SET state = excluded.state, project_id = excluded.project_id, user_id = excluded.user_id,
              owner_uid = excluded.owner_uid, owner_gid = excluded.owner_gid, size = excluded.size, hash_algo = excluded.hash_algo,
              hash_value = excluded.hash_value, checksum = excluded.checksum, message = excluded.message,
              created_at = excluded.created_at, updated_at = excluded.updated_at, sealed_mtime_ns = excluded.sealed_mtime_ns,
              sealed_inode = excluded.sealed_inode,
              format = excluded.format, virtual_size = excluded.virtual_size, writer_node = excluded.writer_node
            """)
    }

    public func removeStagedFile(named name: String) throws {
        try pool.withConnection { session in try session.execute("DELETE FROM staged_files WHERE name = \(name)") }
    }

    public func renameStagedFile(from source: String, to target: String) throws {
        try pool.transaction { session in
            try session.execute("DELETE FROM staged_files WHERE name = \(target)")
            try session.execute("UPDATE staged_files SET name = \(target) WHERE name = \(source)")
        }
    }

    // MARK: - Images and tasks

    public func image(_ id: String) throws -> Image? {
        try rows("SELECT * FROM images WHERE id = \(id)", PostgresRows.image).first
    }

    public func images() throws -> [Image] {
        try rows("SELECT * FROM images WHERE status != 'deleted' ORDER BY created_at DESC", PostgresRows.image)
    }

    public func insert(_ image: Image) throws {
        try pool.withConnection { session in try Self.write(image, session) }
    }

    public func updateImage(_ id: String, _ change: (inout Image) throws -> Void) throws -> Image {
        try pool.transaction { session in try Self.update(id, session, change) }
    }

    public func task(_ id: String) throws -> ImportTask? {
        try rows("SELECT * FROM tasks WHERE id = \(id)", PostgresRows.task).first
    }

    public func tasks(imageID: String?) throws -> [ImportTask] {
        if let imageID {
            return try rows("SELECT * FROM tasks WHERE image_id = \(imageID) ORDER BY created_at DESC", PostgresRows.task)
        }
        return try rows("SELECT * FROM tasks ORDER BY created_at DESC", PostgresRows.task)
    }

    public func tasks(status: TaskStatus) throws -> [ImportTask] {
        try rows("SELECT * FROM tasks WHERE status = \(status.rawValue)", PostgresRows.task)
    }

    public func save(_ task: ImportTask) throws {
        try pool.withConnection { session in
            // The lease is written when the task is first saved, then only by claims and heartbeats: a save of a task
            // read earlier must not undo another node's claim.
            try session.execute(
                """
                INSERT INTO tasks (id, type, status, input, result, message, owner, image_id, user_id, request_id,
                  bytes_done, bytes_total, expires_at, created_at, updated_at, lease_holder, lease_expires_at, lease_epoch)
                VALUES (\(task.id), \(task.type), \(task.status.rawValue), \(CatalogJSON.encode(task.input)),
                  \(task.result.map(CatalogJSON.encode)), \(task.message), \(task.owner), \(task.imageID), \(task.userID), \(task.requestID),
                  \(task.bytesDone), \(task.bytesTotal), \(task.expiresAt?.timeIntervalSince1970), \(task.createdAt.timeIntervalSince1970),
                  \(task.updatedAt.timeIntervalSince1970), \(task.leaseHolder), \(task.leaseExpiresAt?.timeIntervalSince1970),
                  \(Int64(task.leaseEpoch)))
                ON CONFLICT (id) DO UPDATE SET status = excluded.status, input = excluded.input, result = excluded.result,
                  message = excluded.message, bytes_done = excluded.bytes_done, bytes_total = excluded.bytes_total,
                  expires_at = excluded.expires_at, updated_at = excluded.updated_at
                """)
        }
    }

    public func purgeTasks(expiredBefore date: Date) throws -> Int {
        try pool.withConnection { session in
            try session.execute("DELETE FROM tasks WHERE expires_at IS NOT NULL AND expires_at < \(date.timeIntervalSince1970)")
        }
    }

    // MARK: - Nodes and leases

    public func register(_ node: NodeRecord) throws {
        try pool.withConnection { session in
            try session.execute(
                """
                INSERT INTO nodes (id, host, mountpoint, started_at, heartbeat_at)
                VALUES (\(node.id), \(node.host), \(node.mountpoint), \(node.startedAt.timeIntervalSince1970), \(node.heartbeatAt.timeIntervalSince1970))
                ON CONFLICT (id) DO UPDATE SET host = excluded.host, mountpoint = excluded.mountpoint, started_at = excluded.started_at,
                  heartbeat_at = excluded.heartbeat_at
                """)
        }
    }

    public func heartbeat(node: String, now: Date, leaseUntil: Date) throws -> [String] {
        try pool.transaction { session in
            try session.execute("UPDATE nodes SET heartbeat_at = \(now.timeIntervalSince1970) WHERE id = \(node)")
            return try session.query(
                """
                UPDATE tasks SET lease_expires_at = \(leaseUntil.timeIntervalSince1970)
                WHERE lease_holder = \(node) AND status IN ('pending', 'processing') RETURNING id
                """
            ).map { try $0.decode(String.self) }
        }
    }

    public func nodes() throws -> [NodeRecord] {
        try rows("SELECT * FROM nodes ORDER BY id", PostgresRows.node)
    }

    public func removeNode(_ id: String) throws {
        try pool.withConnection { session in try session.execute("DELETE FROM nodes WHERE id = \(id)") }
    }

    public func claim(taskID: String, node: String, now: Date, leaseUntil: Date) throws -> ImportTask? {
        // One statement: a concurrent claim waits for this row's lock, then re-checks the condition against the new lease.
        try rows(
            """
            UPDATE tasks SET lease_holder = \(node), lease_expires_at = \(leaseUntil.timeIntervalSince1970), lease_epoch = lease_epoch + 1
            WHERE id = \(taskID) AND status IN ('pending', 'processing')
              AND (lease_holder IS NULL OR lease_holder = \(node) OR lease_expires_at IS NULL OR lease_expires_at < \(now.timeIntervalSince1970))
            RETURNING *
            """, PostgresRows.task
        ).first
    }

    public func claimableTasks(now: Date) throws -> [ImportTask] {
        try rows(
            """
            SELECT * FROM tasks WHERE status IN ('pending', 'processing')
              AND (lease_holder IS NULL OR lease_expires_at IS NULL OR lease_expires_at < \(now.timeIntervalSince1970)) ORDER BY created_at
            """, PostgresRows.task)
    }

    public func updateImage(_ id: String, holding lease: TaskLease, _ change: (inout Image) throws -> Void) throws -> Image {
        try pool.transaction { session in
            // FOR SHARE keeps a claim (an UPDATE of this row) out until the image is written; several updates under
            // one lease still run side by side up to the image's own lock.
            let row = try session.query("SELECT lease_holder, lease_epoch FROM tasks WHERE id = \(lease.taskID) FOR SHARE").first
            guard let (holder, epoch) = try row?.decode((String?, Int).self), holder == lease.holder, epoch == lease.epoch else {
                throw CatalogError.leaseLost(taskID: lease.taskID)
            }
            return try Self.update(id, session, change)
        }
    }

    // MARK: - Helpers

    private func rows<T>(_ query: PostgresQuery, _ map: (PostgresRow) throws -> T) throws -> [T] {
        try pool.withConnection { session in
            let result = try session.query(query)
            do { return try result.map(map) } catch { throw CatalogError.query(reason: "unreadable row: \(error)") }
        }
    }

    private static func update(_ id: String, _ session: PostgresSession, _ change: (inout Image) throws -> Void) throws -> Image {
        guard var image = try session.query("SELECT * FROM images WHERE id = \(id) FOR UPDATE").first.map(PostgresRows.image) else {
            throw ImageError.notFound("no image with ID \(id)")
        }
        try change(&image)
        image.updatedAt = Date()
        try write(image, session)
        return image
    }

    private static func write(_ image: Image, _ session: PostgresSession) throws {
        try session.execute(
            """
            INSERT INTO images (id, name, status, disk_format, container_format, size, virtual_size, checksum, os_hash_algo,
              os_hash_value, owner, visibility, protected, import_task, properties, tags, min_disk, min_ram, os_hidden, created_at, updated_at)
            VALUES (\(image.id), \(image.name), \(image.status.rawValue), \(image.diskFormat), \(image.containerFormat), \(image.size),
              \(image.virtualSize), \(image.checksum), \(image.osHashAlgo), \(image.osHashValue), \(image.owner), \(image.visibility),
              \(image.isProtected), \(image.importTask), \(CatalogJSON.encode(image.properties)), \(CatalogJSON.encode(image.tags)),
              \(Int64(image.minDisk)), \(Int64(image.minRam)), \(image.isHidden), \(image.createdAt.timeIntervalSince1970),
              \(image.updatedAt.timeIntervalSince1970))
            ON CONFLICT (id) DO UPDATE SET name = excluded.name, status = excluded.status, disk_format = excluded.disk_format,
              container_format = excluded.container_format, size = excluded.size, virtual_size = excluded.virtual_size,
              checksum = excluded.checksum, os_hash_algo = excluded.os_hash_algo, os_hash_value = excluded.os_hash_value,
              owner = excluded.owner, visibility = excluded.visibility, protected = excluded.protected, import_task = excluded.import_task,
              properties = excluded.properties, tags = excluded.tags, min_disk = excluded.min_disk, min_ram = excluded.min_ram,
              os_hidden = excluded.os_hidden, created_at = excluded.created_at, updated_at = excluded.updated_at
            """)
    }
}

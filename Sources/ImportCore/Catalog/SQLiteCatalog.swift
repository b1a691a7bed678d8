// The embedded catalog: a SQLite file in WAL mode with versioned migrations.
import Foundation
import GRDB

/// Errors opening or using the catalog database.
public enum CatalogError: Error, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case query(reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "cannot open the catalog database \(path): \(reason); check that the state directory exists and is writable"
        case let .query(reason):
            return "catalog database error: \(reason)"
        }
    }
}

/// The SQLite catalog (`[database] connection = sqlite:///…`, or `catalog.sqlite` in the state directory).
public final class SQLiteCatalog: StagedFileCatalog {
    private let pool: DatabasePool
    public let path: String

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

    /// Schema versions, applied in order and recorded in the database; never edit a shipped migration.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-staged-files") { db in
            try db.create(table: "staged_files") { t in
                t.primaryKey("name", .text)
                t.column("state", .text).notNull()
                t.column("project_id", .text)
                t.column("user_id", .text)
                t.column("owner_uid", .integer).notNull()
                t.column("owner_gid", .integer).notNull()
                t.column("size", .integer).notNull().defaults(to: 0)
                t.column("hash_algo", .text).notNull()
                t.column("hash_value", .text)
                t.column("checksum", .text)
                t.column("message", .text)
                t.column("created_at", .double).notNull()
                t.column("updated_at", .double).notNull()
            }
            try db.create(index: "staged_files_by_project", on: "staged_files", columns: ["project_id"])
        }
        return migrator
    }

    public func allStagedFiles() throws -> [StagedFile] {
        try wrap { try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM staged_files ORDER BY name").map(Self.file) } }
    }

    public func stagedFile(named name: String) throws -> StagedFile? {
        try wrap { try pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM staged_files WHERE name = ?", arguments: [name]).map(Self.file) } }
    }

    public func save(_ file: StagedFile) throws {
        try wrap {
            try pool.write { db in
                try db.execute(sql: """
                    INSERT OR REPLACE INTO staged_files
                      (name, state, project_id, user_id, owner_uid, owner_gid, size, hash_algo, hash_value, checksum, message, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    arguments: [file.name, file.state.rawValue, file.projectID, file.userID, Int64(file.ownerUID), Int64(file.ownerGID),
                                file.size, file.hashAlgorithm.rawValue, file.hashValue, file.checksum, file.message,
                                file.createdAt.timeIntervalSince1970, file.updatedAt.timeIntervalSince1970])
            }
        }
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
            updatedAt: Date(timeIntervalSince1970: row["updated_at"]))
    }
}

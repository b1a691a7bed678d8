// The PostgreSQL catalog's tables: versioned migrations, applied once, whichever of several starting daemons comes first.
import Foundation
import PostgresNIO

/// The same tables and columns as SQLiteCatalog's (dates as double precision epoch seconds, as there), created in one
/// step since PostgreSQL databases start at the current schema. Never edit a shipped migration: append one.
enum PostgresSchema {
    static let migrations: [(version: String, statements: [PostgresQuery])] = [
        (
            "v1-catalog",
            [
                """
                CREATE TABLE staged_files (
                  name text PRIMARY KEY, state text NOT NULL, project_id text, user_id text,
                  owner_uid bigint NOT NULL, owner_gid bigint NOT NULL, size bigint NOT NULL DEFAULT 0,
                  hash_algo text NOT NULL, hash_value text, checksum text, message text,
                  created_at double precision NOT NULL, updated_at double precision NOT NULL,
                  sealed_mtime_ns bigint, format text, virtual_size bigint, writer_node text)
                """,
                "CREATE INDEX staged_files_by_project ON staged_files (project_id)",
                """
                CREATE TABLE images (
                  id text PRIMARY KEY, name text, status text NOT NULL, disk_format text, container_format text,
                  size bigint, virtual_size bigint, checksum text, os_hash_algo text, os_hash_value text, owner text,
                  visibility text NOT NULL, protected boolean NOT NULL, import_task text, properties text NOT NULL,
                  created_at double precision NOT NULL, updated_at double precision NOT NULL)
                """,
                """
                CREATE TABLE tasks (
                  id text PRIMARY KEY, type text NOT NULL, status text NOT NULL, input text NOT NULL, result text,
                  message text NOT NULL, owner text, image_id text NOT NULL, user_id text, request_id text NOT NULL,
                  bytes_done bigint NOT NULL, bytes_total bigint NOT NULL, expires_at double precision,
                  created_at double precision NOT NULL, updated_at double precision NOT NULL,
                  lease_holder text, lease_expires_at double precision, lease_epoch bigint NOT NULL DEFAULT 0)
                """,
                "CREATE INDEX tasks_by_image ON tasks (image_id)",
                """
                CREATE TABLE nodes (
                  id text PRIMARY KEY, host text NOT NULL, mountpoint text NOT NULL,
                  started_at double precision NOT NULL, heartbeat_at double precision NOT NULL)
                """,
            ]
        ),
        ("v2-sealed-identity", ["ALTER TABLE staged_files ADD COLUMN sealed_inode bigint"]),
        (
            "v3-image-tags-and-minimums",
            [
                """
                ALTER TABLE images ADD COLUMN tags text NOT NULL DEFAULT '[]', ADD COLUMN min_disk bigint NOT NULL DEFAULT 0,
                  ADD COLUMN min_ram bigint NOT NULL DEFAULT 0, ADD COLUMN os_hidden boolean NOT NULL DEFAULT false
                """
            ]
        ),
    ]

    /// Any constant shared by every stagingfs: the advisory lock that serializes migrations across daemons.
    private static let migrationLock: Int64 = 0x5354_4147_4653  // "STAGFS"

    /// Applies the migrations this database lacks, in one transaction under the advisory lock: a daemon that starts
    /// while another migrates waits, then finds the work done.
    static func migrate(_ pool: BlockingConnectionPool) throws {
        try pool.transaction { session in
            try session.execute("SELECT pg_advisory_xact_lock(\(migrationLock))")
            try session.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at double precision NOT NULL)")
            let applied = try Set(session.query("SELECT version FROM schema_migrations").map { try $0.decode(String.self) })
            for migration in migrations where !applied.contains(migration.version) {
                for statement in migration.statements { try session.execute(statement) }
                try session.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (\(migration.version), \(Date().timeIntervalSince1970))")
            }
        }
    }
}

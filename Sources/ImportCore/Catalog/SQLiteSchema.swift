// The SQLite catalog's schema: its versions, in order.
import GRDB

extension SQLiteCatalog {
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
        migrator.registerMigration("v2-images-and-tasks") { db in
            try db.alter(table: "staged_files") { t in t.add(column: "sealed_mtime_ns", .integer) }
            try db.create(table: "images") { t in
                t.primaryKey("id", .text)
                t.column("name", .text)
                t.column("status", .text).notNull()
                t.column("disk_format", .text)
                t.column("container_format", .text)
                t.column("size", .integer)
                t.column("virtual_size", .integer)
                t.column("checksum", .text)
                t.column("os_hash_algo", .text)
                t.column("os_hash_value", .text)
                t.column("owner", .text)
                t.column("visibility", .text).notNull()
                t.column("protected", .boolean).notNull()
                t.column("import_task", .text)
                t.column("properties", .text).notNull()
                t.column("created_at", .double).notNull()
                t.column("updated_at", .double).notNull()
            }
            try db.create(table: "tasks") { t in
                t.primaryKey("id", .text)
                t.column("type", .text).notNull()
                t.column("status", .text).notNull()
                t.column("input", .text).notNull()
                t.column("result", .text)
                t.column("message", .text).notNull()
                t.column("owner", .text)
                t.column("image_id", .text).notNull().indexed()
                t.column("user_id", .text)
                t.column("request_id", .text).notNull()
                t.column("bytes_done", .integer).notNull()
                t.column("bytes_total", .integer).notNull()
                t.column("expires_at", .double)
                t.column("created_at", .double).notNull()
                t.column("updated_at", .double).notNull()
            }
        }
        migrator.registerMigration("v3-detected-format") { db in
            try db.alter(table: "staged_files") { t in
                t.add(column: "format", .text)
                t.add(column: "virtual_size", .integer)
            }
        }
        migrator.registerMigration("v4-nodes-and-leases") { db in
            try db.alter(table: "staged_files") { t in t.add(column: "writer_node", .text) }
            try db.alter(table: "tasks") { t in
                t.add(column: "lease_holder", .text)
                t.add(column: "lease_expires_at", .double)
                t.add(column: "lease_epoch", .integer).notNull().defaults(to: 0)
            }
            try db.create(table: "nodes") { t in
                t.primaryKey("id", .text)
                t.column("host", .text).notNull()
                t.column("mountpoint", .text).notNull()
                t.column("started_at", .double).notNull()
                t.column("heartbeat_at", .double).notNull()
            }
        }
        migrator.registerMigration("v5-sealed-identity") { db in
            try db.alter(table: "staged_files") { t in t.add(column: "sealed_inode", .integer) }
        }
        migrator.registerMigration("v6-image-tags-and-minimums") { db in
            try db.alter(table: "images") { t in
                t.add(column: "tags", .text).notNull().defaults(to: "[]")
                t.add(column: "min_disk", .integer).notNull().defaults(to: 0)
                t.add(column: "min_ram", .integer).notNull().defaults(to: 0)
                t.add(column: "os_hidden", .boolean).notNull().defaults(to: false)
            }
        }
        return migrator
    }
}

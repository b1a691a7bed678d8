// glance-api.conf parsing and the typed configuration built from it.
import Foundation
import Testing

@testable import ImportCore

@Suite("INI files, oslo.config style")
struct INIFileTests {
    @Test("sections, comments, both separators, continuation lines, and later files winning")
    func parsesAndMerges() throws {
        var ini = INIFile()
        try ini.merge(
            text: """
                # glance-api.conf
                [DEFAULT]
                node_staging_uri = file:///var/lib/glance/staging
                ; another comment
                hashing_algorithm: sha256
                [stagingfs]
                mountpoint = /mnt/staging
                state-dir = /var/lib/stagingfs
                   continued
                """, file: "a.conf")
        try ini.merge(text: "[DEFAULT]\nhashing_algorithm = sha384\n", file: "b.conf")
        #expect(ini.entry("DEFAULT", "node_staging_uri")?.value == "file:///var/lib/glance/staging")
        #expect(ini.entry("DEFAULT", "hashing_algorithm")?.value == "sha384")
        #expect(ini.entry("DEFAULT", "hashing_algorithm")?.file == "b.conf")
        #expect(ini.entry("stagingfs", "state_dir")?.value == "/var/lib/stagingfs\ncontinued")
        #expect(ini.entry("stagingfs", "STATE_DIR")?.line == 8)
        #expect(ini.sectionOrder == ["DEFAULT", "stagingfs"])
    }

    @Test(
        "malformed lines name the file and line",
        arguments: [
            ("key = value\n", 1, "before any [section]"),
            ("[ok]\n[broken\n", 2, "section header"),
            ("[ok]\njust words\n", 2, "expected 'option = value'"),
            ("[]\n", 1, "[name]"),
            ("[ok]\n = value\n", 2, "option name is empty"),
        ])
    func malformed(text: String, line: Int, reason: String) {
        var ini = INIFile()
        #expect {
            try ini.merge(text: text, file: "/etc/glance/glance-api.conf")
        } throws: { error in
            let message = String(describing: error)
            return message.hasPrefix("/etc/glance/glance-api.conf:\(line): ") && message.contains(reason)
        }
    }

    @Test("an unreadable file is named with the reason")
    func unreadable() {
        #expect {
            _ = try INIFile(paths: ["/nonexistent/glance-api.conf"])
        } throws: { error in
            String(describing: error).contains("/nonexistent/glance-api.conf")
        }
    }
}

@Suite("StagingConfiguration")
struct StagingConfigurationTests {
    func configuration(_ text: String) throws -> StagingConfiguration {
        var ini = INIFile()
        try ini.merge(text: text, file: "test.conf")
        return try StagingConfiguration(ini: ini)
    }

    @Test("defaults follow Glance where Glance has one")
    func defaults() throws {
        let config = try configuration("[DEFAULT]\n")
        #expect(config.backingDirectory == "/tmp/staging")
        #expect(config.hashingAlgorithm == .sha512)
        #expect(config.hashOnWrite)
        #expect(config.defaultQuota == .unlimited)
        #expect(config.identityMap.serviceUID == getuid())
    }

    @Test("[database] connection: a SQLite path or a PostgreSQL URL, never showing its password")
    func databaseConnection() throws {
        let sqlite = try configuration("[database]\nconnection = sqlite:////srv/catalog.sqlite\n")
        #expect(sqlite.databasePath == "/srv/catalog.sqlite" && sqlite.imports.databaseURL == nil)
        let url = "postgresql://glance:s3cret@db.example:6543/staging?sslmode=disable"
        let postgres = try configuration("[database]\nconnection = \(url)\n")
        #expect(postgres.imports.databaseURL == url)
        #expect(postgres.databaseDescription == "postgresql://glance:***@db.example:6543/staging")
        let parsed = try PostgresURL("postgres://u@[::1]/d")
        #expect(parsed.host == "::1" && parsed.port == 5432 && parsed.database == "d" && parsed.password == nil)
        for bad in ["postgresql://db.example/staging", "postgresql://u:s3cret@db.example/", "postgresql://u:s3cret@h/d?sslmode=require"] {
            do {
                _ = try configuration("[DEFAULT]\n[database]\nconnection = \(bad)\n")
                Issue.record("\(bad) was accepted")
            } catch {
                #expect("\(error)".hasPrefix("test.conf:3: invalid value 'postgresql://…' for option [database] connection"))
                #expect(!"\(error)".contains("s3cret"))
            }
        }
        #expect(throws: ConfigurationError.self) { try configuration("[database]\nconnection = mysql://u@h/d\n") }
    }

    @Test("every option is read with its type")
    func readsOptions() throws {
        let config = try configuration(
            """
            [DEFAULT]
            node_staging_uri = file:///srv/staging
            hashing_algorithm = SHA256
            [stagingfs]
            mountpoint = /mnt/s
            state_dir = /srv/state
            service_user = root
            hash_on_write = no
            fuse_threads = 8
            free_space_reserve = 2G
            stage_quota_bytes = 10GiB
            stage_quota_files = 50
            [quota:p1]
            stage_quota_bytes = 512M
            """)
        #expect(config.backingDirectory == "/srv/staging")
        #expect(config.hashingAlgorithm == .sha256)
        #expect(config.mountpoint == "/mnt/s")
        #expect(config.stateDirectory == "/srv/state")
        #expect(config.identityMap.serviceUID == 0)
        #expect(!config.hashOnWrite)
        #expect(config.fuseThreads == 8)
        #expect(config.freeSpaceReserve == 2 << 30)
        #expect(config.defaultQuota == StagingQuota(bytes: 10 << 30, files: 50))
        #expect(config.quota(forProject: "p1") == StagingQuota(bytes: 512 << 20, files: 50))
        #expect(config.quota(forProject: "other") == StagingQuota(bytes: 10 << 30, files: 50))
    }

    @Test(
        "bad values name file, line, option and what was expected",
        arguments: [
            ("[DEFAULT]\nnode_staging_uri = swift+https://x/y\n", "node_staging_uri"),
            ("[DEFAULT]\nhashing_algorithm = crc32\n", "hashing_algorithm"),
            ("[stagingfs]\nhash_on_write = maybe\n", "hash_on_write"),
            ("[stagingfs]\nfuse_threads = 0\n", "fuse_threads"),
            ("[stagingfs]\nfree_space_reserve = lots\n", "free_space_reserve"),
            ("[stagingfs]\nstage_quota_files = -1\n", "stage_quota_files"),
            ("[stagingfs]\nstage_quota_bytes = 99999999999T\n", "stage_quota_bytes"),
            ("[task]\ntask_time_to_live = inf\n", "task_time_to_live"),
            ("[identity:x]\nproject_id = " + String(repeating: "/", count: 90) + "\nmatch = uid:1\n", "project_id"),
        ])
    func badValues(text: String, option: String) {
        #expect {
            _ = try configuration(text)
        } throws: { error in
            let message = String(describing: error)
            return message.hasPrefix("test.conf:2: ") && message.contains(option) && message.contains("expected")
        }
    }

    @Test("identity sections: user rules win over group rules, file order otherwise")
    func identities() throws {
        let config = try configuration(
            """
            [identity:ops]
            match = gid:500
            project_id = ops
            roles = admin, member
            [identity:alice]
            match = uid:1001
            user_id = alice
            project_id = proj-a
            [identity:devs]
            match = gid:600
            project_id = devs
            """)
        let map = config.identityMap
        #expect(map.rules.map(\.name) == ["alice", "ops", "devs"])
        #expect(map.resolve(Caller(uid: 1001, gid: 500, pid: 1)) == .mapped(Identity(userID: "alice", projectID: "proj-a", roles: ["member"])))
        #expect(map.resolve(Caller(uid: 1002, gid: 500, pid: 1)).projectID == "ops")
        #expect(map.resolve(Caller(uid: 1002, gid: 7, pid: 1) { [600] }).projectID == "devs")
        #expect(map.resolve(Caller(uid: 1002, gid: 7, pid: 1) { [9] }) == .unknown)
        #expect(map.resolve(Caller(uid: map.serviceUID, gid: 7, pid: 1)) == .service)
        if case let .mapped(identity) = map.resolve(Caller(uid: 3, gid: 500, pid: 1)) {
            #expect(identity.isAdmin)
        } else {
            Issue.record("gid 500 should map to ops")
        }
    }

    @Test(
        "identity sections need a valid match and a project",
        arguments: [
            ("[identity:x]\nproject_id = p\n", "match"),
            ("[identity:x]\nmatch = uid:abc\nproject_id = p\n", "uid:abc"),
            ("[identity:x]\nmatch = host:foo\nproject_id = p\n", "host:foo"),
            ("[identity:x]\nmatch = uid:5\n", "project_id"),
            ("[identity:x]\nmatch = user:no-such-user-anywhere\nproject_id = p\n", "no-such-user-anywhere"),
            ("[stagingfs]\nservice_user = no-such-user-anywhere\n", "service_user"),
        ])
    func badIdentities(text: String, mention: String) {
        #expect {
            _ = try configuration(text)
        } throws: { error in
            String(describing: error).contains(mention)
        }
    }

    @Test("glance-api.conf forms: Glance's unimplemented import methods are kept aside, multi-store layouts are read, hashlib names are taken")
    func glanceForms() throws {
        let methods = try configuration("[DEFAULT]\nenabled_import_methods = ['glance-direct', 'copy-image', 'glance-download']\n")
        #expect(methods.imports.enabledImportMethods == ["glance-direct"])
        #expect(methods.imports.unimplementedImportMethods == ["copy-image", "glance-download"])
        #expect(throws: ConfigurationError.self) { try configuration("[DEFAULT]\nenabled_import_methods = glance-direct, bogus\n") }
        let stores = try configuration(
            """
            [DEFAULT]
            node_staging_uri = file:///ignored
            enabled_backends = fast:file, slow:file
            [glance_store]
            default_backend = slow
            [slow]
            filesystem_store_datadir = /srv/slow
            [os_glance_staging_store]
            filesystem_store_datadir = /srv/staging
            """)
        #expect(stores.backingDirectory == "/srv/staging" && stores.imports.storeDirectory == "/srv/slow")
        #expect(stores.imports.stores?.defaultBackend == "slow" && stores.imports.stores?.otherBackends == ["fast"])
        for broken in [
            "[DEFAULT]\nenabled_backends = a:file, b:file\n", "[DEFAULT]\nenabled_backends = ceph:rbd\n",
            "[DEFAULT]\nenabled_backends = a:file\n", "[DEFAULT]\nenabled_backends = nonsense\n",
            "[DEFAULT]\nenabled_backends = a:file\n[glance_store]\ndefault_backend = b\n[a]\nfilesystem_store_datadir = /a\n",
        ] {
            #expect(throws: ConfigurationError.self, "\(broken)") { try configuration(broken) }
        }
        for name in ["sha3_512", "BLAKE2S", "sha512_224", "md5"] {
            #expect(try configuration("[DEFAULT]\nhashing_algorithm = \(name)\n").hashingAlgorithm.rawValue == name.lowercased())
        }
        #expect(throws: ConfigurationError.self) { try configuration("[DEFAULT]\nhashing_algorithm = shake_128\n") }
    }
}

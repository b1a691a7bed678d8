// Unmodified python-glanceclient and python-openstackclient (from PyPI) against the TCP API with real Keystone
// tokens: they find StagingFS through Keystone's catalog (the image endpoint 127.0.0.1:59292), as an operator's do.
import Foundation
import StagingTestSupport
import Testing

@Suite("glance and openstack clients against the TCP API", .serialized)
struct OpenStackClientTests {
    static func withCatalogMount(extraConfig: String = "", _ body: (StagingMount) throws -> Void) throws {
        let config = KeystoneAuthTests.config(port: TestKeystone.imagePort, keystone: try TestKeystone.authtokenConfig()) + extraConfig
        try withStagingMount(config: config) { mount throws in
            #expect(mount.log.contains("API listening on TCP"), "\(mount.log)")
            try body(mount)
        }
    }

    /// `glance`'s two-column table (`| Property | Value |`) as a dictionary; a long value continues on rows
    /// with an empty property cell.
    static func table(_ output: String) -> [String: String] {
        var rows: [String: String] = [:]
        var last: String?
        for line in output.split(separator: "\n") where line.hasPrefix("|") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3, cells[1] != "Property" else { continue }
            if cells[1].isEmpty, let last { rows[last, default: ""] += cells[2] } else { rows[cells[1]] = cells[2]; last = cells[1] }
        }
        return rows
    }

    static func glance(_ arguments: [String], as user: String) throws -> CommandResult {
        try TestKeystone.client("glance", arguments, as: user)
    }

    static func openstackJSON(_ arguments: [String], as user: String) throws -> Any {
        let result = try TestKeystone.client("openstack", arguments + ["-f", "json"], as: user)
        guard result.succeeded else { throw TestSetupError("openstack \(arguments) failed: \(result)") }
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    }

    /// Polls `glance image-show` until the image is active (or the time is up); returns its last table.
    static func waitActive(_ id: String, as user: String) throws -> [String: String] {
        var shown: [String: String] = [:]
        _ = waitFor(60) {
            shown = (try? glance(["image-show", id], as: user)).map { table($0.stdout) } ?? [:]
            return shown["status"] == "active" || shown["status"] == "killed"
        }
        return shown
    }

    @Test(
        "glance image-create-via-import --file, image-stage + image-import, image-create --file and image-download: every image is active with the source's sha512"
    )
    func glanceDirect() throws {
        try Self.withCatalogMount { mount throws in
            let source = mount.sourcePath("cirros.raw")
            try makeRandomFile(source, bytes: 3 << 20)
            let sha512 = try digest("sha512sum", of: source)
            let info = try Self.glance(["import-info"], as: "alice")
            #expect(info.succeeded && info.stdout.contains("web-download"), "\(info)")
            let created = try Self.glance(
                [
                    "image-create-via-import", "--name", "via-import", "--disk-format", "raw", "--container-format", "bare",
                    "--import-method", "glance-direct", "--file", source,
                ], as: "alice")
            #expect(created.succeeded, "\(created)")
            let id = try #require(Self.table(created.stdout)["id"], "\(created)")
            let first = try Self.waitActive(id, as: "alice")
            #expect(first["status"] == "active" && first["os_hash_value"] == sha512, "\(first)")

            let empty = try Self.glance(["image-create", "--name", "staged", "--disk-format", "raw", "--container-format", "bare"], as: "alice")
            let second = try #require(Self.table(empty.stdout)["id"], "\(empty)")
            let staged = try Self.glance(["image-stage", "--file", source, second], as: "alice")
            #expect(staged.succeeded, "\(staged)")
            let imported = try Self.glance(["image-import", "--import-method", "glance-direct", second], as: "alice")
            #expect(imported.succeeded, "\(imported)")
            let shown = try Self.waitActive(second, as: "alice")
            #expect(shown["status"] == "active" && shown["os_hash_value"] == sha512 && shown["size"] == "\(3 << 20)", "\(shown)")

            // glance image-create --file uploads with PUT …/file; image-download reads it back.
            let uploaded = try Self.glance(
                [
                    "image-create", "--name", "uploaded", "--disk-format", "raw", "--container-format", "bare",
                    "--file", source,
                ], as: "alice")
            #expect(uploaded.succeeded && Self.table(uploaded.stdout)["status"] == "active", "\(uploaded)")
            let uploadedID = try #require(Self.table(uploaded.stdout)["id"], "\(uploaded)")
            let copy = mount.sourcePath("downloaded.raw")
            let downloaded = try Self.glance(["image-download", "--file", copy, uploadedID], as: "alice")
            #expect(downloaded.succeeded, "\(downloaded)")
            #expect(try digest("sha512sum", of: copy) == sha512)
        }
    }

    @Test("glance task-list and task-show work for an admin; a member gets HTTP 403; another project's member gets 404 on alice's image")
    func tasksAndIsolation() throws {
        try Self.withCatalogMount { mount throws in
            let source = mount.sourcePath("small.raw")
            try makeRandomFile(source, bytes: 1 << 20)
            let created = try Self.glance(
                [
                    "image-create-via-import", "--name", "for-tasks", "--disk-format", "raw", "--container-format", "bare",
                    "--import-method", "glance-direct", "--file", source,
                ], as: "alice")
            let id = try #require(Self.table(created.stdout)["id"], "\(created)")
            _ = try Self.waitActive(id, as: "alice")
            let tasks = try Self.glance(["task-list"], as: "sfs-admin")
            #expect(tasks.succeeded, "\(tasks)")
            let taskID = try #require(
                tasks.stdout.split(separator: "\n").compactMap { line -> String? in
                    let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
                    return cells.count > 2 && cells[0].count == 36 ? cells[0] : nil
                }.first, "\(tasks)")
            let task = try Self.glance(["task-show", taskID], as: "sfs-admin")
            #expect(task.succeeded && Self.table(task.stdout)["status"] == "success", "\(task)")
            let member = try Self.glance(["task-list"], as: "alice")
            #expect(!member.succeeded && member.stderr.contains("403"), "\(member)")
            let memberShow = try Self.glance(["task-show", taskID], as: "alice")
            #expect(!memberShow.succeeded && memberShow.stderr.contains("403"), "\(memberShow)")
            let bobShow = try Self.glance(["image-show", id], as: "bob")
            #expect(!bobShow.succeeded && bobShow.stderr.contains("404"), "\(bobShow)")
            let bobDelete = try Self.glance(["image-delete", id], as: "bob")
            #expect(!bobDelete.succeeded, "\(bobDelete)")
            let bobList = try Self.glance(["image-list"], as: "bob")
            #expect(bobList.succeeded && !bobList.stdout.contains(id), "\(bobList)")
            #expect(Self.table(try Self.glance(["image-show", id], as: "alice").stdout)["status"] == "active")
        }
    }

    @Test("openstack image create --import, list across pages with a filter, show, save and delete; bob sees none of it")
    func openstackClient() throws {
        try Self.withCatalogMount { mount throws in
            let source = mount.sourcePath("osc.raw")
            try makeRandomFile(source, bytes: 2 << 20)
            let created = try #require(
                try Self.openstackJSON(
                    [
                        "image", "create", "--import", "--disk-format", "raw", "--container-format", "bare",
                        "--file", source, "osc-import",
                    ], as: "alice") as? [String: Any])
            let id = try #require(created["id"] as? String)
            let active = waitFor(60) {
                ((try? Self.openstackJSON(["image", "show", id], as: "alice")) as? [String: Any])?["status"] as? String == "active"
            }
            #expect(active != nil, "the image became active")
            let shown = try #require(try Self.openstackJSON(["image", "show", id], as: "alice") as? [String: Any])
            // openstack shows the fields it has no column for under "properties".
            let hash = shown["os_hash_value"] ?? (shown["properties"] as? [String: Any])?["os_hash_value"]
            #expect(hash as? String == (try digest("sha512sum", of: source)), "\(shown)")
            // More images than one page (Glance's default limit is 25): the client follows `next` to the end.
            let token = "X-Auth-Token: " + (try TestKeystone.token(for: "alice", project: "project-a"))
            for index in 0..<27 {
                let made = try curl(
                    "POST", "http://127.0.0.1:\(TestKeystone.imagePort)/v2/images", headers: [token],
                    json: #"{"name": "page-\#(index)", "disk_format": "raw", "container_format": "bare"}"#)
                #expect(made.status == 201, "\(made)")
            }
            let listed = try #require(try Self.openstackJSON(["image", "list"], as: "alice") as? [[String: Any]])
            #expect(listed.count == 28, "\(listed.count) images listed")
            let queued = try #require(try Self.openstackJSON(["image", "list", "--status", "queued"], as: "alice") as? [[String: Any]])
            #expect(queued.count == 27 && !queued.contains { $0["ID"] as? String == id }, "\(queued.count)")
            let saved = mount.sourcePath("saved.raw")
            let save = try TestKeystone.client("openstack", ["image", "save", "--file", saved, id], as: "alice")
            #expect(save.succeeded, "\(save)")
            #expect(try digest("sha512sum", of: saved) == (try digest("sha512sum", of: source)), "openstack image save gets the bytes back")
            let bobSave = try TestKeystone.client("openstack", ["image", "save", "--file", saved + ".bob", id], as: "bob")
            #expect(!bobSave.succeeded, "\(bobSave)")
            let bobs = try #require(try Self.openstackJSON(["image", "list"], as: "bob") as? [[String: Any]])
            #expect(bobs.isEmpty, "\(bobs)")
            let bobShow = try TestKeystone.client("openstack", ["image", "show", id], as: "bob")
            #expect(!bobShow.succeeded, "\(bobShow)")
            let deleted = try TestKeystone.client("openstack", ["image", "delete", id], as: "alice")
            #expect(deleted.succeeded, "\(deleted)")
            let gone = try TestKeystone.client("openstack", ["image", "show", id], as: "alice")
            #expect(!gone.succeeded, "\(gone)")
        }
    }

    @Test("without Keystone, glance --os-image-url reaches a loopback noauth listener: create, upload, list as its one identity")
    func glanceWithoutKeystone() throws {
        try TCPListenerTests.withTCPMount { mount, base, _ throws in
            let source = mount.sourcePath("noauth.raw")
            try makeRandomFile(source, bytes: 1 << 20)
            let glance = TestKeystone.command("glance") + ["--os-image-url", base, "--os-auth-token", "not-checked"]
            let created = try run(glance + ["image-create", "--name", "noauth", "--disk-format", "raw", "--container-format", "bare", "--file", source])
            #expect(created.succeeded && Self.table(created.stdout)["status"] == "active" && Self.table(created.stdout)["owner"] == "project-a", "\(created)")
            let listed = try run(glance + ["image-list"])
            #expect(listed.succeeded && listed.stdout.contains("noauth"), "\(listed)")
        }
    }

    @Test("glance image-create-via-import --import-method web-download --uri: the image is fetched from the server and active with its sha512")
    func glanceWebDownload() throws {
        let source = "/tmp/stagingfs-tests/glance-web-\(UUID().uuidString.prefix(8)).raw"
        try FileManager.default.createDirectory(atPath: "/tmp/stagingfs-tests", withIntermediateDirectories: true)
        try makeRandomFile(source, bytes: 2 << 20)
        defer { try? FileManager.default.removeItem(atPath: source) }
        chmod(source, 0o644)
        let server = try LoopbackHTTPServer(serving: source)
        defer { server.stop() }
        let filtering = "\n[import_filtering_opts]\nallowed_hosts = 127.0.0.1\nallowed_ports = \(server.port)\n"
        try Self.withCatalogMount(extraConfig: filtering) { _ throws in
            let created = try Self.glance(
                [
                    "image-create-via-import", "--name", "fetched", "--disk-format", "raw", "--container-format", "bare",
                    "--import-method", "web-download", "--uri", server.url("/file"),
                ], as: "alice")
            #expect(created.succeeded, "\(created)")
            let id = try #require(Self.table(created.stdout)["id"], "\(created)")
            let shown = try Self.waitActive(id, as: "alice")
            let sha512 = try digest("sha512sum", of: source)
            #expect(shown["status"] == "active" && shown["os_hash_value"] == sha512, "\(shown)")
            // A URI the filter refuses is a 400 the client prints, and the image stays queued.
            let refused = try Self.glance(
                [
                    "image-create-via-import", "--name", "refused", "--disk-format", "raw", "--container-format", "bare",
                    "--import-method", "web-download", "--uri", "http://127.0.0.1:1/x",
                ], as: "alice")
            #expect(!refused.succeeded && refused.stderr.contains("400"), "\(refused)")
        }
    }
}

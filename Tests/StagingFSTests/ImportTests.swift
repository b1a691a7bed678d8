// Imports end to end: the real mount, the real API socket, real users, and faults injected at every step.
import Foundation
import StagingTestSupport
import Testing

func storeFiles(_ mount: StagingMount) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: mount.store)) ?? []).sorted()
}

/// Runs `body` with a started mount whose image store is a tmpfs (another filesystem than staging), and always
/// tears both down.
func withStoreOnTmpfs(size: String, readOnly: Bool = false, _ body: (StagingMount) throws -> Void) throws {
    let mount = try StagingMount()
    defer {
        mount.tearDown()
        _ = try? run(["umount", "-l", mount.store])
    }
    let options = "size=\(size),mode=0755" + (readOnly ? ",ro" : "")
    let mounted = try run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", mount.store])
    guard mounted.succeeded else { throw TestSetupError("cannot mount a tmpfs store: \(mounted)") }
    try mount.start()
    try body(mount)
}

@Suite("Imports through the mount and the API", .serialized)
struct ImportTests {
    @Test("copy into the mount, import: active with the source's sha512 in the store, staging emptied, O(1) rename")
    func importThroughMount() throws {
        let alice = try TestUser.alice
        try withStagingMount { mount throws in
            let source = mount.sourcePath("disk.raw")
            try makeRandomFile(source, bytes: 5_000_000)
            let id = try createImage(mount, as: alice)
            #expect(try run(["cp", source, mount.path(id)], as: alice).succeeded)
            #expect(try imageStatus(mount, id, as: alice) == "uploading", "data staged through the mount stages the image")
            let imported = try mount.importctlJSON(["import", id, "--wait"], as: alice)
            let sha512 = try digest("sha512sum", of: source)
            #expect(imported["status"] as? String == "active")
            #expect(imported["os_hash_algo"] as? String == "sha512")
            #expect(imported["os_hash_value"] as? String == sha512)
            #expect(imported["checksum"] as? String == (try digest("md5sum", of: source)))
            #expect(imported["size"] as? Int == 5_000_000)
            #expect(try digest("sha512sum", of: mount.store + "/" + id) == sha512)
            #expect(!FileManager.default.fileExists(atPath: mount.backingPath(id)), "staged data is removed after import")
            let tasks = try mount.importctl(["task-list", "--image", id, "--json"], as: alice)
            #expect(tasks.stdout.contains("\"success\""))
            #expect(tasks.stdout.contains("\"promotion\" : \"renamed\""), "\(tasks.stdout)")
        }
    }

    @Test("stage through the API as a member; other projects see nothing; the tasks API is for admins")
    func importThroughAPI() throws {
        let alice = try TestUser.alice, bob = try TestUser.bob
        try withStagingMount { mount throws in
            let source = mount.sourcePath("disk.raw")
            try makeRandomFile(source, bytes: 3_000_000)
            let id = try createImage(mount, as: alice)
            #expect(try mount.importctl(["stage", id, "--file", source], as: alice).succeeded)
            let staged = try stagingAttributes(mount.path(id), as: alice)
            #expect(staged["user.staging.os_hash_value"] == (try digest("sha512sum", of: source)), "the API stages through the same hashing write path")
            #expect(try mount.importctl(["image-show", id], as: bob).status == 4)
            #expect(try mount.importctl(["import", id], as: bob).status == 4)
            #expect(try mount.importctl(["task-list"], as: alice).status == 5)
            let imported = try mount.importctlJSON(["import", id, "--wait"], as: alice)
            #expect(imported["status"] as? String == "active")
            #expect(imported["owner"] as? String == "project-a")
            #expect(try mount.importctl(["task-list"]).stdout.contains(id), "the service user (admin) lists every task")
            #expect(!(try mount.importctl(["image-list"], as: bob).stdout.contains(id)))
        }
    }

    @Test("with hash_on_write = false the import computes the hashes from the staged file, as Glance does")
    func importWithoutWriteTimeHashing() throws {
        try withStagingMount(extraArguments: ["--hash-on-write", "false"]) { mount throws in
            let source = mount.sourcePath("disk.raw")
            try makeRandomFile(source, bytes: 3_000_000)
            let id = try createImage(mount)
            #expect(try run(["cp", source, mount.path(id)]).succeeded)
            #expect(try stagingAttributes(mount.path(id))["user.staging.os_hash_value"] == nil)
            let imported = try mount.importctlJSON(["import", id, "--wait"])
            #expect(imported["os_hash_value"] as? String == (try digest("sha512sum", of: source)))
            #expect(imported["checksum"] as? String == (try digest("md5sum", of: source)))
        }
    }

    @Test("image-create-via-import creates, stages through the mount, imports and waits")
    func createViaImport() throws {
        try withStagingMount { mount throws in
            let source = mount.sourcePath("disk.raw")
            try makeRandomFile(source, bytes: 2_000_000)
            let result = try mount.importctlJSON(["image-create-via-import", "--file", source, "--name", "via"], as: try TestUser.alice)
            #expect(result["status"] as? String == "active")
            #expect(result["os_hash_value"] as? String == (try digest("sha512sum", of: source)))
            let api = try mount.importctlJSON(["image-create-via-import", "--file", source, "--via", "api"], as: try TestUser.alice)
            #expect(api["status"] as? String == "active")
        }
    }

    @Test("illegal calls answer 409 (exit 6) with the state that forbids them")
    func illegalTransitions() throws {
        let alice = try TestUser.alice
        try withStagingMount { mount throws in
            let source = mount.sourcePath("disk.raw")
            try makeRandomFile(source, bytes: 1_000_000)
            let id = try createImage(mount, as: alice)
            let noData = try mount.importctl(["import", id], as: alice)
            #expect(noData.status == 6 && noData.stderr.contains("no staged data"), "\(noData)")
            #expect(try mount.importctl(["stage", id, "--file", source], as: alice).succeeded)
            let twice = try mount.importctl(["stage", id, "--file", source], as: alice)
            #expect(twice.status == 6 && twice.stderr.contains("uploading"), "\(twice)")
            #expect(try mount.importctl(["import", id, "--wait"], as: alice).succeeded)
            let again = try mount.importctl(["import", id], as: alice)
            #expect(again.status == 6 && again.stderr.contains("active"), "\(again)")
            let stageActive = try mount.importctl(["stage", id, "--file", source], as: alice)
            #expect(stageActive.status == 6 && stageActive.stderr.contains("active"))
            let unformatted = try createImage(mount, as: alice, formats: false)
            #expect(try run(["cp", source, mount.path(unformatted)], as: alice).succeeded)
            let needsFormats = try mount.importctl(["import", unformatted], as: alice)
            #expect(needsFormats.status == 6 && needsFormats.stderr.contains("disk_format"))
            #expect(try mount.importctl(["import", "--method", "copy-image", unformatted], as: alice).status == 7, "an unknown method is a bad request")
            #expect(try mount.importctl(["import", "--method", "web-download", unformatted], as: alice).status == 64, "web-download needs --uri")
        }
    }

    @Test("importing while an import runs answers 409; writers are refused while the data is imported")
    func importWhileImporting() throws {
        // The import copies 2 GiB to another filesystem and verifies it (seconds): the refusals below are asked
        // while it runs, the delete first (500 MiB once finished before a loaded CI machine got to it).
        try withStoreOnTmpfs(size: "3g") { mount throws in
            let source = mount.sourcePath("big.raw")
            try makeRandomFile(source, bytes: 2048 * 1_048_576)
            let id = try createImage(mount)
            #expect(try run(["cp", source, mount.path(id)]).succeeded)
            #expect(try mount.importctl(["import", id]).succeeded)
            let delete = try mount.importctl(["image-delete", id])
            #expect(delete.status == 6, "\(delete)")
            let second = try mount.importctl(["import", id])
            #expect(second.status == 6 && second.stderr.contains("being imported"), "\(second)")
            let stage = try mount.importctl(["stage", id, "--file", source])
            #expect(stage.status == 6 && stage.stderr.contains("importing"), "\(stage)")
            let write = try run(["sh", "-c", "echo x >> \(mount.path(id))"])
            #expect(write.stderr.contains("busy"), "\(write)")
            #expect(try run(["rm", mount.path(id)]).stderr.contains("busy"))
            #expect(try run(["mv", mount.path(id), mount.path("elsewhere")]).stderr.contains("busy"))
            try waitFor(120) { try imageStatus(mount, id) != "importing" }
            #expect(try imageStatus(mount, id) == "active")
            #expect(try digest("sha512sum", of: mount.store + "/" + id) == (try digest("sha512sum", of: source)))
            #expect(mount.log.contains("import.promotion=copied"))
        }
    }
}

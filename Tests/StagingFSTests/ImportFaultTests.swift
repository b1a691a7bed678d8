// Faults at every step of an import: afterwards no image is active with wrong data, none is stuck importing,
// no orphan is in the store, and intact staged data is kept for a retry.
import Foundation
import StagingTestSupport
import Testing

@Suite("Import faults", .serialized)
struct ImportFaultTests {
    /// An image of `bytes` staged through the mount by the service user.
    func stagedImage(_ mount: StagingMount, bytes: Int) throws -> (id: String, source: String) {
        let source = mount.sourcePath("source-\(UUID().uuidString.prefix(6)).raw")
        try makeRandomFile(source, bytes: bytes)
        let id = try createImage(mount)
        #expect(try run(["cp", source, mount.path(id)]).succeeded)
        return (id, source)
    }

    /// The task message of the image's newest import task.
    func lastTaskMessage(_ mount: StagingMount, _ id: String) throws -> String {
        let result = try mount.importctl(["task-list", "--image", id, "--json"])
        let tasks = (try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]) ?? []
        return tasks.first?["message"] as? String ?? ""
    }

    @Test("staged data deleted, truncated or changed after sealing: the import refuses, the image goes back to queued")
    func stagedDataTamperedWith() throws {
        try withStagingMount { mount throws in
            let deleted = try stagedImage(mount, bytes: 1_000_000)
            try FileManager.default.removeItem(atPath: mount.backingPath(deleted.id))
            let first = try mount.importctl(["import", deleted.id, "--wait"])
            #expect(first.status == 8 && first.stderr.contains("no staged data"), "\(first)")
            #expect(try imageStatus(mount, deleted.id) == "queued")

            let truncated = try stagedImage(mount, bytes: 1_000_000)
            #expect(truncate(mount.backingPath(truncated.id), 500_000) == 0)
            let second = try mount.importctl(["import", truncated.id, "--wait"])
            #expect(second.status == 8 && second.stderr.contains("changed after it was staged"), "\(second)")
            #expect(try imageStatus(mount, truncated.id) == "queued")
            #expect(FileManager.default.fileExists(atPath: mount.backingPath(truncated.id)), "the staged data is kept for inspection")

            let changed = try stagedImage(mount, bytes: 1_000_000)
            usleep(10_000)
            #expect(try run(["sh", "-c", "printf X | dd of=\(mount.backingPath(changed.id)) bs=1 seek=100 conv=notrunc status=none"]).succeeded)
            let third = try mount.importctl(["import", changed.id, "--wait"])
            #expect(third.status == 8 && third.stderr.contains("modified after it was sealed"), "\(third)")
            #expect(try imageStatus(mount, changed.id) == "queued")
            #expect(try lastTaskMessage(mount, changed.id).contains("stage it again"), "the task message says what to do")
            #expect(storeFiles(mount).isEmpty)

            // Re-staging and re-importing works.
            #expect(try run(["cp", changed.source, mount.path(changed.id)]).succeeded)
            let retried = try mount.importctlJSON(["import", changed.id, "--wait"])
            #expect(retried["os_hash_value"] as? String == (try digest("sha512sum", of: changed.source)))
        }
    }

    @Test("a full store: the copy fails, no partial file remains, the staged data is kept and a retry succeeds")
    func storeFull() throws {
        try withStoreOnTmpfs(size: "8m") { mount throws in
            let (id, source) = try stagedImage(mount, bytes: 12 * 1_048_576)
            let result = try mount.importctl(["import", id, "--wait"])
            #expect(result.status == 8 && result.stderr.contains("No space left on device"), "\(result)")
            #expect(result.stderr.contains("filesystem_store_datadir"), "the message says where to look")
            #expect(try imageStatus(mount, id) == "queued")
            #expect(storeFiles(mount).isEmpty, "no partial file: \(storeFiles(mount))")
            #expect(try stagingAttributes(mount.path(id))["user.staging.state"] == "staged")
            #expect(try run(["mount", "-o", "remount,size=64m", mount.store]).succeeded)
            let retried = try mount.importctlJSON(["import", id, "--wait"])
            #expect(retried["status"] as? String == "active")
            #expect(try digest("sha512sum", of: mount.store + "/" + id) == (try digest("sha512sum", of: source)))
        }
    }
    @Test("an unwritable store: the import fails clearly and leaves everything as it was")
    func storeUnwritable() throws {
        try withStoreOnTmpfs(size: "64m", readOnly: true) { mount throws in
            let (id, _) = try stagedImage(mount, bytes: 1_000_000)
            let result = try mount.importctl(["import", id, "--wait"])
            #expect(result.status == 8 && result.stderr.contains("Read-only file system"), "\(result)")
            #expect(try imageStatus(mount, id) == "queued")
            #expect(try stagingAttributes(mount.path(id))["user.staging.state"] == "staged")
        }
    }
    @Test("kill -9 mid-import, restart: the import is reverted, nothing is in the store, a re-import succeeds")
    func crashMidImport() throws {
        try withStoreOnTmpfs(size: "1g") { mount throws in
            let (id, source) = try stagedImage(mount, bytes: 400 * 1_048_576)
            #expect(try mount.importctl(["import", id]).succeeded)
            waitFor(30) { FileManager.default.fileExists(atPath: mount.store + "/.\(id).partial") }
            mount.crash()
            try mount.start()
            #expect(try imageStatus(mount, id) == "queued", "never left importing")
            #expect(storeFiles(mount).isEmpty, "no orphan or partial file: \(storeFiles(mount))")
            #expect(try lastTaskMessage(mount, id).contains("interrupted by a restart"))
            #expect(try stagingAttributes(mount.path(id))["user.staging.state"] == "staged")
            let retried = try mount.importctlJSON(["import", id, "--wait"])
            #expect(retried["os_hash_value"] as? String == (try digest("sha512sum", of: source)))
        }
    }
    @Test("a deleted image's staged data is removed, at delete and at the next start")
    func stagingResidue() throws {
        let mount = try StagingMount()
        defer { mount.tearDown() }
        try mount.start()
        let (id, _) = try stagedImage(mount, bytes: 10_000)
        #expect(try mount.importctl(["image-delete", id]).succeeded)
        #expect(!FileManager.default.fileExists(atPath: mount.backingPath(id)), "removed with the image")
        // Data staged under a deleted image's id afterwards, and a plugin intermediate, go at the next start.
        #expect(try run(["sh", "-c", "echo late > \(mount.path(id)) && echo x > \(mount.path(id + ".qcow2"))"]).succeeded)
        #expect(mount.stop() == 0)
        try mount.start()
        #expect(!FileManager.default.fileExists(atPath: mount.backingPath(id)))
        #expect(!FileManager.default.fileExists(atPath: mount.backingPath(id + ".qcow2")))
        #expect(mount.log.contains("removed staging residue of a deleted image"))
    }

    @Test("finished tasks expire after task_time_to_live and are purged")
    func taskExpiry() throws {
        let config = StagingMount.defaultConfig + "\n[task]\ntask_time_to_live = 0\n"
        let mount = try StagingMount(config: config)
        defer { mount.tearDown() }
        try mount.start()
        let (id, _) = try stagedImage(mount, bytes: 100_000)
        #expect(try mount.importctl(["import", id, "--wait"]).succeeded)
        #expect(try mount.importctl(["task-list"]).stdout.contains(id))
        #expect(mount.stop() == 0)
        try mount.start()
        #expect(!(try mount.importctl(["task-list"]).stdout.contains(id)), "expired tasks are purged")
        #expect(mount.log.contains("expired tasks purged"))
    }

    @Test("with enable_image_import = False the import calls answer 404 and /versions stops before v2.6")
    func importDisabled() throws {
        let config = StagingMount.defaultConfig + "\n[DEFAULT]\nenable_image_import = False\n"
        try withStagingMount(config: config) { mount throws in
            let versions = try mount.importctl(["versions"]).stdout
            #expect(versions.contains("v2.5") && !versions.contains("v2.6") && !versions.contains("v2.17"), "\(versions)")
            #expect(try mount.importctl(["import-info"]).status == 4)
            let id = try createImage(mount)
            let source = mount.sourcePath("x.raw")
            try makeRandomFile(source, bytes: 1000)
            #expect(try mount.importctl(["stage", id, "--file", source]).status == 4)
            #expect(try mount.importctl(["import", id]).status == 4)
        }
    }

    @Test("an API upload cut short leaves the image queued and the staged file incomplete")
    func truncatedUpload() throws {
        try withStagingMount { mount throws in
            let id = try createImage(mount)
            let program = """
                import socket
                s = socket.socket(socket.AF_UNIX)
                s.connect("\(mount.socket)")
                s.sendall(b"PUT /v2/images/\(id)/stage HTTP/1.1\\r\\nContent-Length: 1000000\\r\\n\\r\\n" + b"x" * 4000)
                s.shutdown(socket.SHUT_WR)
                print(s.recv(4096).decode().split("\\r\\n")[0])
                """
            let result = try python(program)
            #expect(result.stdout.contains("400"), "\(result)")
            #expect(try imageStatus(mount, id) == "queued")
            #expect(try stagingAttributes(mount.path(id))["user.staging.state"] == "incomplete")
            #expect(try mount.importctl(["import", id]).status == 6)
        }
    }
}

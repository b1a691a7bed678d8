// The format inspector on the real write path and in real imports: refusals at the write, at import, and the
// detected format in the xattrs and the API.
import Foundation
import StagingTestSupport
import Testing

/// Creates an image with `diskFormat` as `user` and returns its id.
func createImage(_ mount: StagingMount, as user: TestUser?, diskFormat: String) throws -> String {
    let created = try mount.importctlJSON(["image-create", "--name", diskFormat, "--disk-format", diskFormat, "--container-format", "bare"], as: user)
    guard let id = created["id"] as? String else { throw TestSetupError("no id in \(created)") }
    return id
}

/// Copies `source` into the mount as image `id`'s data, expects the write refused with EMEDIUMTYPE, and returns
/// what the image says about it (`stagingfs_staging_message`).
func refusedCopy(_ mount: StagingMount, _ source: String, as user: TestUser, image id: String) throws -> String {
    let copy = try run(["cp", source, mount.path(id)], as: user)
    #expect(!copy.succeeded && copy.stderr.contains("Wrong medium type"), "\(copy)")
    return try mount.importctlJSON(["image-show", id], as: user)["stagingfs_staging_message"] as? String ?? ""
}

@Suite("Format inspection on the write path and at import", .serialized)
struct InspectionTests {
    @Test("the format shows in the xattrs and the API while the file is still being written, then after the seal")
    func detectedWhileWriting() throws {
        let alice = try TestUser.alice
        try withStagingMount { mount throws in
            let image = mount.sourcePath("disk.qcow2")
            try makeQcow2(image, rawBytes: 3_000_000)
            let id = try createImage(mount, as: alice, diskFormat: "qcow2")
            // Write the first 64 KiB, look while the file is open (no fork: a child closing its copy of the
            // descriptor would flush, and a flush by the only writer seals), then write the rest.
            let probe = try python(
                """
                import os
                data = open('\(image)', 'rb').read()
                with open('\(mount.path(id))', 'wb') as f:
                    f.write(data[:65536]); f.flush()
                    print(os.getxattr('\(mount.path(id))', 'user.staging.state').decode(), os.getxattr('\(mount.path(id))', 'user.staging.format').decode())
                    f.write(data[65536:])
                """, as: alice)
            #expect(probe.succeeded, "\(probe)")
            #expect(probe.stdout.contains("writing qcow2"), "detected from the header while writing: \(probe)")
            let attributes = try stagingAttributes(mount.path(id), as: alice)
            #expect(attributes["user.staging.format"] == "qcow2")
            let info = try run(["qemu-img", "info", "--output=json", image])
            let virtualSize = try #require((try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])?["virtual-size"] as? Int)
            #expect(attributes["user.staging.virtual_size"] == String(virtualSize))
            let shown = try mount.importctlJSON(["image-show", id], as: alice)
            #expect(shown["stagingfs_detected_format"] as? String == "qcow2")
            let imported = try mount.importctlJSON(["import", id, "--wait"], as: alice)
            #expect(imported["status"] as? String == "active")
            #expect(imported["virtual_size"] as? Int == virtualSize)
            #expect(imported["os_hash_value"] as? String == (try digest("sha512sum", of: image)))
        }
    }

    @Test("qcow2 data under a raw image: the write fails with EMEDIUMTYPE, the image says why, nothing reaches the store")
    func mismatchRefusedAtWrite() throws {
        let alice = try TestUser.alice
        try withStagingMount { mount throws in
            let image = mount.sourcePath("disk.qcow2")
            try makeQcow2(image, rawBytes: 2_000_000)
            let id = try createImage(mount, as: alice, diskFormat: "raw")
            let message = try refusedCopy(mount, image, as: alice, image: id)
            #expect(message.contains("qcow2") && message.contains("disk_format is raw"), "\(message)")
            #expect(try imageStatus(mount, id, as: alice) == "queued")
            #expect(mount.log.contains("write refused by the format inspector"))
            #expect(try mount.importctl(["import", id, "--wait"], as: alice).status != 0)
            #expect(storeFiles(mount).isEmpty)
            #expect(FileManager.default.fileExists(atPath: mount.backingPath(id)), "what was written is kept for inspection")
        }
    }

    @Test("a virtual size above [stagingfs] max_virtual_size is refused at the write and at import; one at the limit is accepted")
    func virtualSizeBound() throws {
        let alice = try TestUser.alice
        let config = StagingMount.defaultConfig + "\n[stagingfs]\nmax_virtual_size = 1G\n"
        try withStagingMount(config: config) { mount throws in
            let huge = mount.sourcePath("huge.qcow2")
            try qemuImg(["create", "-q", "-f", "qcow2", huge, "\((1 << 30) + 65536)"])
            let id = try createImage(mount, as: alice, diskFormat: "qcow2")
            let message = try refusedCopy(mount, huge, as: alice, image: id)
            #expect(message.contains("virtual size 1073807360 bytes") && message.contains("max_virtual_size (1073741824 bytes)"), "\(message)")
            #expect(try mount.importctl(["import", id, "--wait"], as: alice).status != 0)
            #expect(storeFiles(mount).isEmpty)
            let limit = mount.sourcePath("limit.qcow2")
            try qemuImg(["create", "-q", "-f", "qcow2", limit, "1G"])
            let accepted = try createImage(mount, as: alice, diskFormat: "qcow2")
            #expect(try run(["cp", limit, mount.path(accepted)], as: alice).succeeded)
            let imported = try mount.importctlJSON(["import", accepted, "--wait"], as: alice)
            #expect(imported["status"] as? String == "active" && imported["virtual_size"] as? Int == 1 << 30, "\(imported)")
        }
        // Unchecked at the write, the import's own inspection refuses it.
        try withStagingMount(config: config, extraArguments: ["--inspect-on-write", "false"]) { mount throws in
            let huge = mount.sourcePath("huge.qcow2")
            try qemuImg(["create", "-q", "-f", "qcow2", huge, "\((1 << 30) + 65536)"])
            let id = try createImage(mount, as: alice, diskFormat: "qcow2")
            #expect(try run(["cp", huge, mount.path(id)], as: alice).succeeded)
            #expect(try mount.importctl(["import", id, "--wait"], as: alice).status != 0)
            let tasks = try mount.importctl(["task-list", "--image", id, "--json"], as: alice).stdout
            #expect(tasks.contains("max_virtual_size"), "\(tasks)")
            #expect(storeFiles(mount).isEmpty)
        }
    }

    @Test("a qcow2 with a backing file is refused at the write even under disk_format qcow2")
    func backingFileRefusedAtWrite() throws {
        let alice = try TestUser.alice
        try withStagingMount { mount throws in
            let image = mount.sourcePath("evil.qcow2")
            try makeQcow2WithBackingFile(image, backing: "/etc/shadow")
            let id = try createImage(mount, as: alice, diskFormat: "qcow2")
            #expect(try refusedCopy(mount, image, as: alice, image: id).contains("backing file"))
        }
    }

    @Test("with inspect_on_write off, the import's inspection refuses: task message, image queued, data kept, store empty")
    func refusedAtImport() throws {
        let alice = try TestUser.alice
        try withStagingMount(config: StagingMount.defaultConfig, extraArguments: ["--inspect-on-write", "false"]) { mount throws in
            let image = mount.sourcePath("evil.qcow2")
            try makeQcow2WithBackingFile(image, backing: "/etc/passwd")
            let id = try createImage(mount, as: alice, diskFormat: "qcow2")
            #expect(try run(["cp", image, mount.path(id)], as: alice).succeeded, "nothing inspects the write")
            let result = try mount.importctl(["import", id, "--wait", "--json"], as: alice)
            #expect(result.status != 0)
            let tasks = try mount.importctl(["task-list", "--image", id, "--json"], as: alice).stdout
            #expect(tasks.contains("\"failure\"") && tasks.contains("backing file"), "\(tasks)")
            #expect(try imageStatus(mount, id, as: alice) == "queued")
            #expect(storeFiles(mount).isEmpty)
            #expect(try digest("sha512sum", of: mount.backingPath(id)) == (try digest("sha512sum", of: image)), "the staged data is kept intact")
        }
    }
}

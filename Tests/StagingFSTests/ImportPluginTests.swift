// Glance's import plugins in real imports: qemu-img conversion, decompression, metadata injection, no_op.
import Foundation
import StagingTestSupport
import Testing

/// The test identities plus `[image_import_opts] image_import_plugins` and any other sections.
func pluginConfig(_ plugins: [String], _ more: String = "") -> String {
    StagingMount.defaultConfig + """

        [image_import_opts]
        image_import_plugins = [\(plugins.map { "'\($0)'" }.joined(separator: ", "))]

        """ + more
}

@Suite("Import plugins", .serialized)
struct ImportPluginTests {
    @Test("image_conversion: qcow2 staged, raw stored; size, hashes and disk_format describe the stored data")
    func conversionToRaw() throws {
        let alice = try TestUser.alice
        try withStagingMount(config: pluginConfig(["image_conversion"], "[image_conversion]\noutput_format = raw\n")) { mount throws in
            let image = mount.sourcePath("disk.qcow2")
            try makeQcow2(image, rawBytes: 4_000_000)
            let expected = mount.sourcePath("expected.raw")
            try qemuImg(["convert", "-f", "qcow2", "-O", "raw", image, expected])
            let id = try createImage(mount, as: alice, diskFormat: "qcow2")
            #expect(try run(["cp", image, mount.path(id)], as: alice).succeeded)
            let imported = try mount.importctlJSON(["import", id, "--wait"], as: alice)
            let rawSHA512 = try digest("sha512sum", of: expected)
            #expect(imported["status"] as? String == "active")
            #expect(imported["disk_format"] as? String == "raw")
            #expect(imported["os_hash_value"] as? String == rawSHA512)
            #expect(imported["checksum"] as? String == (try digest("md5sum", of: expected)))
            let expectedSize = try FileManager.default.attributesOfItem(atPath: expected)[.size] as? Int
            #expect(imported["size"] as? Int == expectedSize)
            #expect(try digest("sha512sum", of: mount.store + "/" + id) == rawSHA512)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: mount.backing)
            #expect(leftovers.isEmpty, "staged data and the plugin's output are gone: \(leftovers)")
        }
    }

    @Test("image_decompression: gzip and zstd images are stored uncompressed; conversion runs on what they held")
    func decompression() throws {
        let alice = try TestUser.alice
        try withStagingMount(config: pluginConfig(["image_decompression", "image_conversion"])) { mount throws in
            let raw = mount.sourcePath("disk.raw")
            try makeRandomFile(raw, bytes: 3_000_000)
            #expect(try run(["gzip", "-k", raw]).succeeded)
            let id = try createImage(mount, as: alice, diskFormat: "raw")
            #expect(try run(["cp", raw + ".gz", mount.path(id)], as: alice).succeeded)
            #expect(try stagingAttributes(mount.path(id), as: alice)["user.staging.format"] == "gzip")
            let imported = try mount.importctlJSON(["import", id, "--wait"], as: alice)
            #expect(imported["status"] as? String == "active")
            #expect(imported["os_hash_value"] as? String == (try digest("sha512sum", of: raw)))
            #expect(imported["size"] as? Int == 3_000_000)

            let qcow2 = mount.sourcePath("disk.qcow2")
            try makeQcow2(qcow2, rawBytes: 2_000_000)
            #expect(try run(["zstd", "-q", "-k", qcow2]).succeeded)
            let expected = mount.sourcePath("expected.raw")
            try qemuImg(["convert", "-f", "qcow2", "-O", "raw", qcow2, expected])
            let second = try createImage(mount, as: alice, diskFormat: "qcow2")
            #expect(try run(["cp", qcow2 + ".zst", mount.path(second)], as: alice).succeeded)
            let converted = try mount.importctlJSON(["import", second, "--wait"], as: alice)
            #expect(converted["status"] as? String == "active", "\(converted)")
            #expect(converted["disk_format"] as? String == "raw")
            #expect(converted["os_hash_value"] as? String == (try digest("sha512sum", of: expected)))

            // A gzip cut short: the plugin fails, saying so; nothing is stored, the image is queued again.
            #expect(try run(["truncate", "-s", "100000", raw + ".gz"]).succeeded)
            let truncated = try createImage(mount, as: alice, diskFormat: "raw")
            #expect(try run(["cp", raw + ".gz", mount.path(truncated)], as: alice).succeeded)
            let failed = try mount.importctl(["import", truncated, "--wait"], as: alice)
            #expect(failed.status == 8 && failed.stderr.contains("image_decompression") && failed.stderr.contains("ends early"), "\(failed)")
            #expect(try imageStatus(mount, truncated, as: alice) == "queued")
            #expect(!storeFiles(mount).contains(truncated))
            #expect(!FileManager.default.fileExists(atPath: mount.backingPath(truncated + ".uncompressed")), "the plugin's output is removed")
        }
    }

    @Test("a compressed image without image_decompression is refused at the write: it is not its disk_format")
    func compressedWithoutPlugin() throws {
        let alice = try TestUser.alice
        try withStagingMount { mount throws in
            let raw = mount.sourcePath("disk.raw")
            try makeRandomFile(raw, bytes: 1_000_000)
            #expect(try run(["gzip", "-k", raw]).succeeded)
            let id = try createImage(mount, as: alice, diskFormat: "raw")
            #expect(try refusedCopy(mount, raw + ".gz", as: alice, image: id).contains("image_decompression"))
        }
    }

    @Test("inject_image_metadata sets the configured properties for members, not for ignore_user_roles; no_op logs")
    func injectMetadata() throws {
        let alice = try TestUser.alice
        let more = "[inject_metadata_properties]\ninject = os_distro:debian,hw_vif_model:e1000\nignore_user_roles = admin\n"
        try withStagingMount(config: pluginConfig(["inject_image_metadata", "no_op"], more)) { mount throws in
            let raw = mount.sourcePath("disk.raw")
            try makeRandomFile(raw, bytes: 500_000)
            let id = try createImage(mount, as: alice, diskFormat: "raw")
            #expect(try run(["cp", raw, mount.path(id)], as: alice).succeeded)
            let imported = try mount.importctlJSON(["import", id, "--wait"], as: alice)
            #expect(imported["os_distro"] as? String == "debian")
            #expect(imported["hw_vif_model"] as? String == "e1000")
            #expect(mount.log.contains("no_op import plugin ran"))

            let byAdmin = try createImage(mount, as: nil, diskFormat: "raw")
            #expect(try run(["cp", raw, mount.path(byAdmin)]).succeeded)
            let adminImported = try mount.importctlJSON(["import", byAdmin, "--wait"])
            #expect(adminImported["status"] as? String == "active")
            #expect(adminImported["os_distro"] == nil, "the service user is an admin: nothing injected")
        }
    }
}

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

    @Test("image_decompression: gzip, zstd, bzip2 and xz images are stored uncompressed; conversion runs on what they held")
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

            #expect(try run(["bzip2", "-k", raw]).succeeded)
            let bzipped = try createImage(mount, as: alice, diskFormat: "raw")
            #expect(try run(["cp", raw + ".bz2", mount.path(bzipped)], as: alice).succeeded)
            #expect(try stagingAttributes(mount.path(bzipped), as: alice)["user.staging.format"] == "bzip2")
            let unbzipped = try mount.importctlJSON(["import", bzipped, "--wait"], as: alice)
            #expect(unbzipped["status"] as? String == "active", "\(unbzipped)")
            #expect(unbzipped["os_hash_value"] as? String == (try digest("sha512sum", of: raw)))
            #expect(unbzipped["size"] as? Int == 3_000_000)

            #expect(try run(["xz", "-k", "-T1", qcow2]).succeeded)
            let xzed = try createImage(mount, as: alice, diskFormat: "qcow2")
            #expect(try run(["cp", qcow2 + ".xz", mount.path(xzed)], as: alice).succeeded)
            #expect(try stagingAttributes(mount.path(xzed), as: alice)["user.staging.format"] == "xz")
            let unxzed = try mount.importctlJSON(["import", xzed, "--wait"], as: alice)
            #expect(unxzed["status"] as? String == "active", "\(unxzed)")
            #expect(unxzed["disk_format"] as? String == "raw")
            #expect(unxzed["os_hash_value"] as? String == (try digest("sha512sum", of: expected)))

            // Compressed twice: the xz holds a gzip, not the image; refused after the first unpacking.
            #expect(try run(["sh", "-c", "xz -T1 -c '\(raw).gz' > '\(raw).gz.xz'"]).succeeded)
            let twice = try createImage(mount, as: alice, diskFormat: "raw")
            #expect(try run(["cp", raw + ".gz.xz", mount.path(twice)], as: alice).succeeded)
            let refused = try mount.importctl(["import", twice, "--wait"], as: alice)
            #expect(refused.status == 8 && refused.stderr.contains("gzip-compressed"), "\(refused)")
            #expect(!storeFiles(mount).contains(twice))

            // The legacy .lzma format is not unpacked, so it is refused at the write, not stored as raw.
            #expect(try run(["xz", "-k", "-T1", "--format=lzma", raw]).succeeded)
            let legacy = try createImage(mount, as: alice, diskFormat: "raw")
            #expect(try refusedCopy(mount, raw + ".lzma", as: alice, image: legacy).contains("legacy .lzma format"))

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

    @Test("plugin outputs count against the owner's staging quota: a small gzip or qcow2 of a large disk cannot fill staging; the quota is given back after")
    func outputsWithinQuota() throws {
        let alice = try TestUser.alice
        let config = pluginConfig(["image_decompression", "image_conversion"], "[quota:project-a]\nstage_quota_bytes = 8M\n")
        try withStagingMount(config: config) { mount throws in
            // 32 MB of zeros: a few kilobytes gzipped, far beyond the quota once unpacked.
            let raw = mount.sourcePath("zeros.raw")
            #expect(try run(["truncate", "-s", "32M", raw]).succeeded)
            #expect(try run(["gzip", "-k", raw]).succeeded)
            let id = try createImage(mount, as: alice, diskFormat: "raw")
            #expect(try run(["cp", raw + ".gz", mount.path(id)], as: alice).succeeded)
            #expect(try mount.importctl(["import", id, "--wait"], as: alice).status != 0)
            let tasks = try mount.importctl(["task-list", "--image", id, "--json"], as: alice).stdout
            #expect(tasks.contains("decompressed image would be larger than") && tasks.contains("stage_quota_bytes"), "\(tasks)")
            // A qcow2 of a 32 MiB disk, converted to raw: the same bound.
            let qcow2 = mount.sourcePath("sparse.qcow2")
            try qemuImg(["create", "-q", "-f", "qcow2", qcow2, "32M"])
            let second = try createImage(mount, as: alice, diskFormat: "qcow2")
            #expect(try run(["cp", qcow2, mount.path(second)], as: alice).succeeded)
            #expect(try mount.importctl(["import", second, "--wait"], as: alice).status != 0)
            let converted = try mount.importctl(["task-list", "--image", second, "--json"], as: alice).stdout
            #expect(converted.contains("converted image would be larger than") && converted.contains("stage_quota_bytes"), "\(converted)")
            #expect(storeFiles(mount).isEmpty)
            let left = try FileManager.default.contentsOfDirectory(atPath: mount.backing).sorted()
            #expect(left == [id, second].sorted(), "no output is left behind: \(left)")
            // What the outputs reserved was given back: the project can use the rest of its quota.
            #expect(try run(["sh", "-c", "head -c 7000000 /dev/zero > \(mount.path("fill.raw"))"], as: alice).succeeded)
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

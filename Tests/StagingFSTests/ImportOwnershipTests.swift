// An import owns its file (docs/architecture.md, invariants 3 and 4), tried by a tenant through the real mount:
// a writable descriptor kept open across the import, and the import flow's intermediate names taken first.
import Foundation
import StagingTestSupport
import Testing

@Suite("An import owns its file", .serialized)
struct ImportOwnershipTests {
    @Test("a tenant's writable descriptor held across an import: writes EBUSY, reads ESTALE; the store holds the recorded bytes")
    func heldDescriptor() throws {
        let alice = try TestUser.alice
        try withStagingMount { mount throws in
            let id = try createImage(mount, as: alice)
            let client = try MountClient(as: alice)
            defer { client.close() }
            let data = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7919) })
            guard case let .value(descriptor) = try client.open(mount.path(id), "rw", flags: ["creat"]) else {
                throw TestSetupError("alice cannot create her image's data")
            }
            #expect(try client.pwrite(descriptor, data, at: 0) == .value(data.count))
            // dd's way: a duplicate's close seals the file while the descriptor stays open.
            #expect(try client.closeDuplicate(descriptor).succeeded)
            #expect(try client.xattr(mount.path(id), "user.staging.state") == .text("staged"))
            let imported = try mount.importctlJSON(["import", id, "--wait"], as: alice)
            let hash = referenceDigest("sha512sum", of: data)
            #expect(imported["status"] as? String == "active" && imported["os_hash_value"] as? String == hash, "\(imported)")
            #expect(try client.pwrite(descriptor, Data("rewritten".utf8), at: 0) == .failed(errno: "EBUSY"))
            #expect(try client.ftruncate(descriptor, to: 0) == .failed(errno: "EBUSY"))
            #expect(try client.pread(descriptor, count: 4096, at: 0) == .failed(errno: "ESTALE"))
            #expect(try client.close(descriptor).succeeded)
            #expect(try digest("sha512sum", of: mount.store + "/" + id) == hash, "the active image is the bytes its hash names")
            #expect(mount.log.contains("refused a write through a handle opened before an import took the file"), "the refusal is logged")
        }
    }

    @Test("a read-only descriptor opened before the data was written gets ESTALE after the import, though another handle's writes are in the page cache")
    func cachedPagesOfImportedFile() throws {
        let alice = try TestUser.alice
        let carol = try TestUser.carol
        try withStagingMount { mount throws in
            let id = try createImage(mount, as: alice)
            let writer = try MountClient(as: carol)
            defer { writer.close() }
            let reader = try MountClient(as: alice)
            defer { reader.close() }
            guard case let .value(written) = try writer.open(mount.path(id), "rw", flags: ["creat"]),
                case let .value(held) = try reader.open(mount.path(id), "r", flags: [])
            else {
                throw TestSetupError("project-a cannot create and open its image's data")
            }
            // A partial page written through one handle stays in the kernel's page cache of the inode.
            let data = Data((0..<387).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            #expect(try writer.pwrite(written, data, at: 0) == .value(data.count))
            #expect(try writer.close(written).succeeded)
            #expect(try reader.pread(held, count: 64, at: 351) == .data(Data(data.suffix(36))), "before the import the data reads back")
            let imported = try mount.importctlJSON(["import", id, "--wait"], as: carol)
            #expect(imported["status"] as? String == "active", "\(imported)")
            #expect(try reader.pread(held, count: 64, at: 351) == .failed(errno: "ESTALE"))
            #expect(try reader.pread(held, count: 4096, at: 0) == .failed(errno: "ESTALE"))
            #expect(try reader.close(held).succeeded)
        }
    }

    @Test("a tenant cannot take the intermediate names first; image_conversion then imports as usual")
    func intermediatesAreTheDaemons() throws {
        let alice = try TestUser.alice
        try withStagingMount(config: pluginConfig(["image_conversion"], "[image_conversion]\noutput_format = raw\n")) { mount throws in
            let id = try createImage(mount, as: alice, diskFormat: "qcow2")
            let client = try MountClient(as: alice)
            defer { client.close() }
            for name in ["\(id).raw", "\(id).qcow2", "\(id).uncompressed"] {
                #expect(try client.open(mount.path(name), "w", flags: ["creat"]) == .failed(errno: "EACCES"), "\(name)")
            }
            guard case let .value(plain) = try client.open(mount.path("plain.img"), "w", flags: ["creat"]) else {
                throw TestSetupError("alice cannot create a file")
            }
            #expect(try client.close(plain).succeeded)
            #expect(try client.rename(mount.path("plain.img"), to: mount.path("\(id).raw")) == .failed(errno: "EACCES"))
            let image = mount.sourcePath("disk.qcow2")
            try makeQcow2(image, rawBytes: 2_000_000)
            let expected = mount.sourcePath("expected.raw")
            try qemuImg(["convert", "-f", "qcow2", "-O", "raw", image, expected])
            #expect(try run(["cp", image, mount.path(id)], as: alice).succeeded)
            let imported = try mount.importctlJSON(["import", id, "--wait"], as: alice)
            let rawSHA512 = try digest("sha512sum", of: expected)
            #expect(imported["status"] as? String == "active" && imported["os_hash_value"] as? String == rawSHA512, "\(imported)")
            #expect(try digest("sha512sum", of: mount.store + "/" + id) == rawSHA512)
            #expect(try mount.backingFiles(project: "project-a").map(\.name) == ["plain.img"])
        }
    }

    @Test(
        "staged data binds to its image's project: no file under a future image's id nor another project's image, by create or rename; data another project wrote under a permissive policy is not imported"
    )
    func stagedDataBindsToOwner() throws {
        let alice = try TestUser.alice, bob = try TestUser.bob
        try withStagingMount { mount throws in
            let id = try createImage(mount, as: alice)
            let future = UUID().uuidString.lowercased()
            let intruder = try MountClient(as: bob)
            defer { intruder.close() }
            for name in [id, future] {
                #expect(try intruder.open(mount.path(name), "w", flags: ["creat"]) == .failed(errno: "EACCES"), "\(name)")
            }
            guard case let .value(own) = try intruder.open(mount.path("evil.img"), "w", flags: ["creat"]) else {
                throw TestSetupError("bob cannot create a file")
            }
            #expect(try intruder.close(own).succeeded)
            for name in [id, future] {
                #expect(try intruder.rename(mount.path("evil.img"), to: mount.path(name)) == .failed(errno: "EACCES"), "\(name)")
            }
            #expect(mount.log.contains("no image \(future) exists"), "the denial names its rule")
        }
        let directory = "/tmp/stagingfs-tests/binding-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "\"upload_image\": \"\"\n".write(toFile: directory + "/policy.yaml", atomically: false, encoding: .utf8)
        let permissive = StagingMount.defaultConfig + "\n[oslo_policy]\npolicy_file = \(directory)/policy.yaml\n"
        try withStagingMount(config: permissive) { mount throws in
            let id = try createImage(mount, as: alice)
            #expect(try run(["sh", "-c", "head -c 100000 /dev/urandom > \(mount.path(id))"], as: bob).succeeded, "the policy lets bob write it")
            let refused = try mount.importctl(["import", id, "--wait"], as: alice)
            #expect(!refused.succeeded && refused.stderr.contains("written by project project-b"), "\(refused)")
            #expect(try imageStatus(mount, id, as: alice) == "queued")
            #expect(storeFiles(mount).isEmpty, "nothing reached the store")
        }
    }
}

// An operator's own glance-api.conf starts StagingFS: multi-store staging and store, import methods StagingFS does
// not implement, and every fixed-length hashlib algorithm as hashing_algorithm.
import Foundation
import StagingTestSupport
import Testing

@Suite("An operator's glance-api.conf", .serialized)
struct GlanceConfigurationTests {
    /// A mount started with `extra(mount)` as a second configuration file, as an operator's override file would be.
    static func withMount(_ extra: (StagingMount) -> String, _ body: (StagingMount) throws -> Void) throws {
        let mount = try StagingMount()
        defer { mount.tearDown() }
        let file = mount.root + "/operator.conf"
        try extra(mount).write(toFile: file, atomically: true, encoding: .utf8)
        try mount.start(extraArguments: ["--config-file", file])
        try body(mount)
    }

    @Test("multi-store: staging in [os_glance_staging_store], images in the default file backend; copy-image is accepted, logged, not advertised")
    func multiStore() throws {
        try Self.withMount({ mount in
            """
            [DEFAULT]
            node_staging_uri = file:///nonexistent/staging
            enabled_backends = fast:file, cheap:file
            enabled_import_methods = [glance-direct, web-download, copy-image]
            [glance_store]
            default_backend = fast
            filesystem_store_datadir = /nonexistent/images
            [fast]
            filesystem_store_datadir = \(mount.store)
            store_description = Fast disks
            [cheap]
            filesystem_store_datadir = /nonexistent/cheap
            [os_glance_staging_store]
            filesystem_store_datadir = \(mount.backing)
            """
        }) { mount throws in
            let alice = try TestUser.alice
            #expect(mount.log.contains("enabled_import_methods lists methods StagingFS does not implement") && mount.log.contains("copy-image"), "\(mount.log)")
            #expect(mount.log.contains("the others are not used") && mount.log.contains("cheap"), "\(mount.log)")
            let info = try mount.request("GET", "/v2/info/import", as: alice)
            #expect(info.body.contains("glance-direct") && !info.body.contains("copy-image"), "\(info)")
            let stores = try mount.request("GET", "/v2/info/stores", as: alice)
            #expect(stores.status == 200 && stores.body.contains(#""id":"fast""#) && stores.body.contains("Fast disks"), "\(stores)")
            let id = try createImage(mount, as: alice)
            #expect(try run(["sh", "-c", "head -c 300000 /dev/urandom > \(mount.path(id))"], as: alice).succeeded)
            #expect(FileManager.default.fileExists(atPath: mount.backingPath(id)), "staged in [os_glance_staging_store]")
            let copy = try mount.request("POST", "/v2/images/\(id)/import", json: #"{"method": {"name": "copy-image"}}"#, as: alice)
            #expect(copy.status == 400, "\(copy)")
            #expect(try mount.importctlJSON(["import", id, "--wait"], as: alice)["status"] as? String == "active")
            #expect(FileManager.default.fileExists(atPath: mount.store + "/" + id), "stored in the default backend's datadir")
        }
    }

    @Test(
        "hashing_algorithm: each of hashlib's fixed-length algorithms gives os_hash_algo and the digest Python's hashlib computes",
        arguments: ["sha3_256", "blake2b", "sha224", "sha512_256", "sha1"])
    func hashingAlgorithms(_ algorithm: String) throws {
        try Self.withMount({ _ in "[DEFAULT]\nhashing_algorithm = \(algorithm)\n" }) { mount throws in
            let alice = try TestUser.alice
            let id = try createImage(mount, as: alice)
            #expect(try run(["sh", "-c", "head -c 200000 /dev/urandom > \(mount.path(id))"], as: alice).succeeded)
            let expected = try python(
                "import hashlib,sys; print(hashlib.new(sys.argv[1], open(sys.argv[2], 'rb').read()).hexdigest())",
                arguments: [algorithm, mount.backingPath(id)]
            ).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let image = try mount.importctlJSON(["import", id, "--wait"], as: alice)
            #expect(image["os_hash_algo"] as? String == algorithm && image["os_hash_value"] as? String == expected, "\(image)")
        }
    }
}

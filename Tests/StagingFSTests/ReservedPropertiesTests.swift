// Glance's rules for reserved properties and for who sees a task, through the API as real users (curl over the
// API socket: the caller is who the kernel says).
import Foundation
import StagingTestSupport
import Testing

@Suite("Reserved properties and task visibility", .serialized)
struct ReservedPropertiesTests {
    @Test("os_glance_* and stagingfs_* properties cannot be set at create, nor added, replaced or removed by PATCH (403); other properties can")
    func reservedProperties() throws {
        let alice = try TestUser.alice
        try withStagingMount { mount throws in
            for key in ["os_glance_importing_to_stores", "stagingfs_detected_format"] {
                let created = try mount.request("POST", "/v2/images", json: #"{"name": "x", "\#(key)": "v"}"#, as: alice)
                #expect(created.status == 403 && created.body.contains(key), "\(created)")
            }
            let id = try createImage(mount, as: alice, diskFormat: "raw")
            let patch = "application/openstack-images-v2.1-json-patch"
            for (op, key) in [
                ("add", "os_glance_importing_to_stores"), ("replace", "os_glance_import_task"), ("add", "stagingfs_staging_message"),
                ("remove", "stagingfs_detected_format"),
            ] {
                let body = op == "remove" ? #"[{"op": "remove", "path": "/\#(key)"}]"# : #"[{"op": "\#(op)", "path": "/\#(key)", "value": "v"}]"#
                let patched = try mount.request("PATCH", "/v2/images/\(id)", json: body, contentType: patch, as: alice)
                #expect(patched.status == 403 && patched.body.contains(key), "\(op) \(key): \(patched)")
            }
            let allowed = try mount.request(
                "PATCH", "/v2/images/\(id)", json: #"[{"op": "add", "path": "/color", "value": "blue"}]"#, contentType: patch, as: alice)
            #expect(allowed.status == 200 && allowed.body.contains("\"color\""), "\(allowed)")
            let shown = try mount.importctlJSON(["image-show", id], as: alice)
            #expect(shown["os_glance_importing_to_stores"] == nil && shown["stagingfs_staging_message"] == nil)

            // Paths are JSON pointers naming one attribute: "//visibility" once reached visibility past the
            // publicize_image check, "/name/../owner" made a property of that name, ~1 was taken literally.
            for (path, value, status) in [
                ("//visibility", #""public""#, 400), ("/name/../owner", #""x""#, 400), ("/a~2b", #""x""#, 400),
                ("/direct_url", #""file:///etc/passwd""#, 403), ("/locations", #""x""#, 403),
                ("/min_ram", #""99999999999999999999""#, 400), ("/name", "5", 400), ("/protected", #""yes""#, 400),
            ] {
                let patched = try mount.request(
                    "PATCH", "/v2/images/\(id)", json: #"[{"op": "replace", "path": "\#(path)", "value": \#(value)}]"#,
                    contentType: patch, as: alice)
                #expect(patched.status == status, "\(path) = \(value): \(patched)")
            }
            let escaped = try mount.request(
                "PATCH", "/v2/images/\(id)", json: #"[{"op": "add", "path": "/a~1b~0c", "value": "v"}]"#, contentType: patch, as: alice)
            #expect(escaped.status == 200 && escaped.body.contains(#""a/b~c":"v""#), "\(escaped)")
            let after = try mount.importctlJSON(["image-show", id], as: alice)
            #expect(after["visibility"] as? String != "public" && after["direct_url"] == nil && after["name/../owner"] == nil, "\(after)")
            // Create: a field of the wrong type is a 400, never silently dropped.
            for body in [
                #"{"protected": "yes"}"#, #"{"id": 5}"#, #"{"name": -0}"#, #"{"tags": [1, 2]}"#, #"{"min_ram": "1"}"#, #"{"min_disk": -1}"#,
                #"{"min_disk": 1.5}"#, #"{"os_hidden": "true"}"#, #"{"tags": "x"}"#,
            ] {
                let created = try mount.request("POST", "/v2/images", json: body, as: alice)
                #expect(created.status == 400, "\(body): \(created)")
            }
        }
    }

    @Test("the tasks of a public image are shown to their owner's project and admins, not to other projects that see the image")
    func tasksOfPublicImage() throws {
        let alice = try TestUser.alice
        let bob = try TestUser.bob
        try withStagingMount(config: StagingMount.defaultConfig + "\n[identity:ops]\nmatch = user:sfs-eve\nproject_id = ops\nroles = admin\n") { mount throws in
            let eve = try TestUser.eve
            let id = try createImage(mount, as: alice, diskFormat: "raw")
            #expect(try run(["sh", "-c", "head -c 100000 /dev/urandom > \(mount.path(id))"], as: alice).succeeded)
            #expect(try mount.importctlJSON(["import", id, "--wait"], as: alice)["status"] as? String == "active")
            let publicized = try mount.request(
                "PATCH", "/v2/images/\(id)", json: #"[{"op": "replace", "path": "/visibility", "value": "public"}]"#,
                contentType: "application/openstack-images-v2.1-json-patch", as: eve)
            #expect(publicized.status == 200, "\(publicized)")
            #expect(try mount.importctlJSON(["image-show", id], as: bob)["visibility"] as? String == "public", "bob sees the image")
            let list = { (user: TestUser) throws -> [[String: Any]] in
                let listed = try mount.importctl(["task-list", "--image", id, "--json"], as: user)
                return (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]]) ?? []
            }
            #expect(try list(alice).count == 1)
            #expect(try list(eve).count == 1)
            #expect(try list(bob).isEmpty, "another project sees no task, nor its input")
        }
    }
}

// The seed's recommended policy, enforced end to end with real users through the API and the mount.
import Foundation
import StagingTestSupport
import Testing

@Suite("Policy enforcement end to end", .serialized)
struct PolicyEnforcementTests {
    /// alice and bob are members of two projects; eve is mapped as an admin; the policy file is `policy`.
    func config(policy: String, in directory: String) throws -> String {
        try policy.write(toFile: directory + "/policy.yaml", atomically: false, encoding: .utf8)
        return StagingMount.defaultConfig + """

            [identity:ops]
            match = user:sfs-eve
            project_id = ops
            roles = admin

            [oslo_policy]
            policy_file = \(directory)/policy.yaml

            """
    }

    static let seedPolicy = """
        # Glance's recommended task policy: anyone may have tasks made for them, only admins use the tasks API.
        "get_task": ""
        "get_tasks": ""
        "add_task": ""
        "modify_task": ""
        "tasks_api_access": "role:admin"

        """

    /// Runs `body` with a mount whose policy file (its path is the second argument) holds `policy`.
    func withPolicy(_ policy: String, _ body: (StagingMount, String) throws -> Void) throws {
        let directory = "/tmp/stagingfs-tests/policy-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try withStagingMount(config: try config(policy: policy, in: directory)) { mount throws in try body(mount, directory + "/policy.yaml") }
    }

    @Test("the seed's configuration: a member imports and gets a task, the tasks API is admins' only, other projects are refused")
    func seedConfiguration() throws {
        let alice = try TestUser.alice, bob = try TestUser.bob, eve = try TestUser.eve
        try withPolicy(Self.seedPolicy) { mount, _ throws in
            let source = mount.sourcePath("disk.raw")
            try makeRandomFile(source, bytes: 500_000)
            let image = try mount.importctlJSON(["image-create-via-import", "--file", source], as: alice)
            let id = try #require(image["id"] as? String)
            #expect(image["status"] as? String == "active")
            let ownTasks = try mount.importctl(["task-list", "--image", id], as: alice)
            #expect(ownTasks.succeeded && ownTasks.stdout.contains("success"), "a task was created for the member: \(ownTasks)")
            let taskID = try #require(ownTasks.stdout.split(separator: "\n").dropFirst(2).first?.split(separator: " ").first.map(String.init))
            #expect(try mount.importctl(["task-list"], as: alice).status == 5, "GET /v2/tasks is 403 for a member")
            #expect(try mount.importctl(["task-show", taskID], as: alice).status == 5, "GET /v2/tasks/{id} is 403 for a member")
            #expect(try mount.importctl(["task-list"], as: eve).stdout.contains(taskID), "an admin lists every task")
            #expect(try mount.importctl(["task-show", taskID], as: eve).succeeded, "an admin reads any task")

            // Another project can neither stage into, import, read nor delete alice's image, by API or mount.
            let queued = try #require(
                try mount.importctlJSON(["image-create", "--disk-format", "raw", "--container-format", "bare"], as: alice)["id"] as? String)
            #expect(try mount.importctl(["stage", queued, "--file", source], as: bob).status == 4)
            #expect(try mount.importctl(["import", queued], as: bob).status == 4)
            #expect(try mount.importctl(["image-show", queued], as: bob).status == 4)
            #expect(try mount.importctl(["image-delete", queued], as: bob).status == 4)
            let write = try run(["cp", source, mount.path(queued)], as: bob)
            #expect(write.stderr.contains("Permission denied"), "writing another project's image file: \(write)")
            #expect(mount.log.contains("policy.rule=upload_image: rule:context_is_admin or (role:member and project_id:%(project_id)s)"))
            #expect(try run(["cp", source, mount.path("bob.raw")], as: bob).succeeded)
            let rename = try run(["mv", mount.path("bob.raw"), mount.path(queued)], as: bob)
            #expect(rename.stderr.contains("Permission denied"), "renaming onto another project's image name: \(rename)")
            #expect(try mount.importctl(["image-show", queued], as: alice).succeeded)
        }
    }

    @Test("a policy file that forbids uploads: the API answers 403 and the mount EACCES, both naming the rule")
    func uploadForbidden() throws {
        let alice = try TestUser.alice
        try withPolicy(Self.seedPolicy + "\"upload_image\": \"role:admin\"\n") { mount, policyFile throws in
            let source = mount.sourcePath("disk.raw")
            try makeRandomFile(source, bytes: 10_000)
            let id = try #require(try mount.importctlJSON(["image-create", "--disk-format", "raw", "--container-format", "bare"], as: alice)["id"] as? String)
            let api = try mount.importctl(["stage", id, "--file", source], as: alice)
            #expect(api.status == 5 && api.stderr.contains("upload_image"), "\(api)")
            let write = try run(["cp", source, mount.path(id)], as: alice)
            #expect(write.stderr.contains("Permission denied"), "\(write)")
            #expect(mount.log.contains("policy.rule=upload_image: role:admin"))
            // Free-named staging is add_image, which the file leaves at Glance's default.
            #expect(try run(["cp", source, mount.path("free-named.raw")], as: alice).succeeded)

            // The operator fixes the file: it is reloaded without a restart.
            usleep(1_100_000)
            try (Self.seedPolicy + "\"upload_image\": \"role:member\"\n").write(toFile: policyFile, atomically: false, encoding: .utf8)
            #expect(try mount.importctl(["stage", id, "--file", source], as: alice).succeeded, "the changed policy is in force")
            usleep(1_100_000)
            try "\"upload_image\": \"role:member and (\"\n".write(toFile: policyFile, atomically: false, encoding: .utf8)
            _ = try mount.importctl(["image-list"], as: alice)
            #expect(mount.log.contains("policy rule cannot be parsed; it denies"))
            #expect(try mount.importctl(["import", id, "--wait"], as: alice).succeeded, "the file's other (default) rules still apply")
        }
    }

    @Test("importctl policy-check prints allow or deny and the deciding rule; only admins check as someone else")
    func policyCheck() throws {
        let alice = try TestUser.alice, eve = try TestUser.eve
        try withPolicy(Self.seedPolicy) { mount, _ throws in
            let allowed = try mount.importctl(["policy-check", "upload_image", "--as", "sfs-alice", "--target", "project_id=project-a"], as: eve)
            #expect(allowed.status == 0 && allowed.stdout.contains("allow: upload_image"), "\(allowed)")
            #expect(allowed.stdout.contains("decided by rule upload_image"))
            let denied = try mount.importctl(["policy-check", "upload_image", "--as", "sfs-alice", "--target", "project_id=project-b"], as: eve)
            #expect(denied.status == 5 && denied.stdout.contains("deny: upload_image"), "\(denied)")
            let tasks = try mount.importctl(["policy-check", "tasks_api_access"], as: alice)
            #expect(tasks.status == 5 && tasks.stdout.contains("role:admin"))
            #expect(try mount.importctl(["policy-check", "get_tasks"], as: alice).status == 0)
            let impersonate = try mount.importctl(["policy-check", "upload_image", "--as", "sfs-bob"], as: alice)
            #expect(impersonate.status == 5 && impersonate.stderr.contains("only admins"))
        }
    }
}

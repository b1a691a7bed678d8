// Who may do what, decided by the daemon from the kernel's uid/gid of each caller, with real users.
import Foundation
import StagingTestSupport
import Testing

@Suite("Permissions with real users", .serialized)
struct PermissionTests {
    @Test("a member stages its own file; another project can neither see, read, replace nor remove it")
    func projectsAreIsolated() throws {
        let alice = try TestUser.alice, bob = try TestUser.bob
        try withStagingMount { mount throws in
            let source = mount.sourcePath("alice.img")
            try makeRandomFile(source, bytes: 300_000)
            let staged = try run(["cp", source, mount.path("alice.img")], as: alice)
            #expect(staged.succeeded, "\(staged)")
            let attributes = try stagingAttributes(mount.path("alice.img"), as: alice)
            #expect(attributes["user.staging.project_id"] == "project-a")
            #expect(attributes["user.staging.user_id"] == "sfs-alice")
            #expect(attributes["user.staging.state"] == "staged")

            // Bob's listing does not show it, and every path to it says it does not exist.
            let listing = try run(["ls", "-A", mount.mountpoint], as: bob)
            #expect(listing.succeeded)
            #expect(!listing.stdout.contains("alice.img"))
            #expect(try run(["stat", mount.path("alice.img")], as: bob).stderr.contains("No such file"))
            #expect(!(try run(["cat", mount.path("alice.img")], as: bob).succeeded))
            let alicesFile = mount.backingPath("alice.img", project: "project-a")
            _ = try run(["rm", "-f", mount.path("alice.img")], as: bob)
            #expect(FileManager.default.fileExists(atPath: alicesFile), "bob's rm must not remove it")
            // The name is free in bob's project: what he writes there is a file of his own.
            #expect(try run(["sh", "-c", "echo bobs > \(mount.path("alice.img"))"], as: bob).succeeded)
            #expect(try run(["cat", mount.path("alice.img")], as: bob).stdout == "bobs\n")
            #expect(try digest("sha512sum", of: alicesFile) == (try digest("sha512sum", of: source)))
            #expect(try run(["rm", mount.path("alice.img")], as: bob).succeeded)

            // Alice herself reads and removes it.
            #expect(try run(["cmp", source, mount.path("alice.img")], as: alice).succeeded)
            #expect(try run(["rm", mount.path("alice.img")], as: alice).succeeded)
            #expect(!FileManager.default.fileExists(atPath: alicesFile))
            // A caller outside the identity map is refused, and the denial logged with the caller and the rule.
            let eve = try TestUser.eve
            #expect(try run(["stat", mount.path("alice.img")], as: eve).stderr.contains("Permission denied"))
            #expect(mount.log.contains("policy.rule=caller is not in the identity map"), "denials are logged with the rule")
            #expect(mount.log.contains("caller.uid=\(eve.uid)"), "denials are logged with the caller")
        }
    }

    @Test("a caller mapped by group shares its project's files")
    func groupMapping() throws {
        let alice = try TestUser.alice, carol = try TestUser.carol
        try withStagingMount { mount throws in
            #expect(try run(["sh", "-c", "echo data > \(mount.path("shared.img"))"], as: alice).succeeded)
            let listing = try run(["ls", mount.mountpoint], as: carol)
            #expect(listing.stdout.contains("shared.img"), "\(listing)")
            #expect(try run(["cat", mount.path("shared.img")], as: carol).stdout == "data\n")
            #expect(try run(["sh", "-c", "echo more > \(mount.path("carol.img"))"], as: carol).succeeded)
            let attributes = try stagingAttributes(mount.path("carol.img"), as: carol)
            #expect(attributes["user.staging.user_id"] == "carol")
            #expect(attributes["user.staging.project_id"] == "project-a")
        }
    }

    @Test("an unmapped caller is refused everything, and the refusal is logged")
    func unmappedCallerRefused() throws {
        let eve = try TestUser.eve
        try withStagingMount { mount throws in
            #expect(try run(["sh", "-c", "echo x > \(mount.path("root.img"))"]).succeeded)
            #expect(try run(["ls", mount.mountpoint], as: eve).stderr.contains("Permission denied"))
            #expect(try run(["touch", mount.path("eve.img")], as: eve).stderr.contains("Permission denied"))
            #expect(try run(["cat", mount.path("root.img")], as: eve).stderr.contains("Permission denied"))
            #expect(!FileManager.default.fileExists(atPath: mount.backingPath("eve.img")))
            #expect(mount.log.contains("policy.rule=caller is not in the identity map"))
        }
    }

    @Test("the service user manages the shared names; a project's free-named files are in its own namespace")
    func serviceUserSharedNames() throws {
        let alice = try TestUser.alice, bob = try TestUser.bob
        try withStagingMount { mount throws in
            #expect(try run(["sh", "-c", "echo alices > \(mount.path("a.img"))"], as: alice).succeeded)
            #expect(try run(["sh", "-c", "echo a > \(mount.path("a.img"))"]).succeeded)
            #expect(try run(["sh", "-c", "echo b > \(mount.path("b.img"))"]).succeeded)
            #expect(try run(["ls", mount.mountpoint], as: bob).stdout.isEmpty, "the service's files are not a project's")
            #expect(try run(["ls", mount.mountpoint]).stdout == "a.img\nb.img\n")
            #expect(try run(["cat", mount.path("a.img")], as: alice).stdout == "alices\n")
            // Glance's own flow: rename an intermediate over the staged file, then remove it.
            #expect(try run(["mv", mount.path("a.img"), mount.path("b.img")]).succeeded)
            #expect(try run(["cat", mount.path("b.img")]).stdout == "a\n")
            #expect(try run(["rm", mount.path("b.img")]).succeeded)
            #expect(try run(["cat", mount.path("a.img")], as: alice).stdout == "alices\n", "alice's a.img is hers alone")
            let reserved = try python(
                "import errno, os\ntry:\n    os.open(\(pythonLiteral(mount.path(".projects"))), os.O_CREAT | os.O_WRONLY)\nexcept OSError as e:\n    print(errno.errorcode[e.errno])"
            )
            #expect(reserved.stdout == "EINVAL\n", "the namespaces' directory is no shared file's name: \(reserved)")
        }
    }

    @Test("files report their creator as owner; chown and setuid bits are refused")
    func ownershipAndModes() throws {
        let alice = try TestUser.alice
        try withStagingMount { mount throws in
            #expect(try run(["touch", mount.path("mine.img")], as: alice).succeeded)
            let owner = try run(["stat", "-c", "%u", mount.path("mine.img")], as: alice)
            #expect(owner.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "\(alice.uid)")
            #expect(try run(["chgrp", "\(try TestUser.bob.gid)", mount.path("mine.img")], as: alice).stderr.contains("Operation not permitted"))
            #expect(try run(["chmod", "u+s", mount.path("mine.img")], as: alice).stderr.contains("Operation not permitted"))
            #expect(try run(["chmod", "0600", mount.path("mine.img")], as: alice).succeeded)
            #expect(
                try run(["setfattr", "-n", "user.staging.state", "-v", "staged", mount.path("mine.img")], as: alice)
                    .stderr.contains("Operation not permitted"))
        }
    }

    @Test("access(2) answers as the daemon decides")
    func accessAnswers() throws {
        let alice = try TestUser.alice, eve = try TestUser.eve
        try withStagingMount { mount throws in
            #expect(try run(["test", "-w", mount.mountpoint], as: alice).succeeded)
            #expect(!(try run(["test", "-w", mount.mountpoint], as: eve).succeeded))
        }
    }
}

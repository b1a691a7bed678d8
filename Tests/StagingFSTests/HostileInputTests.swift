// Hostile names, operations that make no sense in a staging area, and things planted in the backing directory.
import Foundation
import StagingTestSupport
import Testing

@Suite("Hostile input", .serialized)
struct HostileInputTests {
    /// Runs `os.<call>` in Python as alice and returns the errno name it failed with ("OK" if it did not fail).
    func errnoName(_ call: String, as user: TestUser) throws -> String {
        let program = """
            import errno, os, sys
            try:
                \(call)
                print("OK")
            except OSError as e:
                print(errno.errorcode[e.errno])
            """
        return try python(program, as: user).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("invalid names are refused cleanly and nothing is created")
    func invalidNames() throws {
        let alice = try TestUser.alice
        try withStagingMount { mount throws in
            let dir = mount.mountpoint
            let create = "os.close(os.open(%@, os.O_CREAT | os.O_WRONLY, 0o644))"
            #expect(try errnoName(create.replacingOccurrences(of: "%@", with: "b'\(dir)/\\xff\\xfe.img'"), as: alice) == "EINVAL")
            #expect(try errnoName(create.replacingOccurrences(of: "%@", with: "'\(dir)/line\\nbreak.img'"), as: alice) == "EINVAL")
            #expect(try errnoName(create.replacingOccurrences(of: "%@", with: "'\(dir)/' + 'a' * 256"), as: alice) == "ENAMETOOLONG")
            #expect(try errnoName(create.replacingOccurrences(of: "%@", with: "'\(dir)/' + 'a' * 255"), as: alice) == "OK")
            #expect(try errnoName("os.open('\(dir)/..', os.O_CREAT | os.O_WRONLY)", as: alice) == "EISDIR")
            #expect(try errnoName("os.open('\(dir)/../escape.img', os.O_CREAT | os.O_WRONLY)", as: alice) != "OK")
            #expect(try run(["touch", mount.path("ok.img")], as: alice).succeeded)
            #expect(try errnoName("os.rename('\(dir)/ok.img', b'\(dir)/\\xff.img')", as: alice) == "EINVAL")
            let names = try FileManager.default.contentsOfDirectory(atPath: mount.backing).sorted()
            #expect(names == [String(repeating: "a", count: 255), "ok.img"])
            #expect(!FileManager.default.fileExists(atPath: mount.root + "/escape.img"))
        }
    }

    @Test("directories, links, device nodes and fifos are refused with a clear errno and a log line")
    func nonsenseOperations() throws {
        let alice = try TestUser.alice
        try withStagingMount { mount throws in
            let dir = mount.mountpoint
            #expect(try run(["touch", mount.path("file.img")], as: alice).succeeded)
            #expect(try errnoName("os.mkdir('\(dir)/sub')", as: alice) == "EPERM")
            #expect(try errnoName("os.symlink('/etc/passwd', '\(dir)/link')", as: alice) == "EPERM")
            #expect(try errnoName("os.link('\(dir)/file.img', '\(dir)/hard')", as: alice) == "EPERM")
            #expect(try errnoName("os.mkfifo('\(dir)/fifo')", as: alice) == "EPERM")
            #expect(try errnoName("os.mknod('\(dir)/dev', 0o600 | 0o020000, os.makedev(1, 3))", as: try TestUser.named("root")) == "EPERM")
            #expect(try errnoName("os.open('\(dir)/x', os.O_CREAT | os.O_WRONLY, 0o4755)", as: alice) == "EPERM")
            #expect(try errnoName("os.rmdir('\(dir)/file.img')", as: alice) == "ENOTDIR")
            #expect(try FileManager.default.contentsOfDirectory(atPath: mount.backing) == ["file.img"])
            #expect(mount.log.contains("fuse.op=mkdir"))
            #expect(mount.log.contains("fuse.op=symlink"))
        }
    }

    @Test("a symlink or fifo planted in the backing directory is never followed nor shown")
    func plantedSymlinkIsNotFollowed() throws {
        try withStagingMount { mount throws in
            #expect(symlink("/etc/passwd", mount.backingPath("passwd.img")) == 0)
            #expect(mkfifo(mount.backingPath("fifo.img"), 0o644) == 0)
            let listing = try run(["ls", "-A", mount.mountpoint])
            #expect(listing.succeeded)
            #expect(!listing.stdout.contains("passwd.img") && !listing.stdout.contains("fifo.img"))
            #expect(!(try run(["cat", mount.path("passwd.img")]).succeeded))
            #expect(!(try run(["cat", mount.path("fifo.img")]).succeeded))
            // Writing through the name must not write through the link either.
            #expect(!(try run(["sh", "-c", "echo pwned > \(mount.path("passwd.img"))"]).succeeded))
            #expect(!(try String(contentsOfFile: "/etc/passwd", encoding: .utf8)).contains("pwned"))
        }
    }
}

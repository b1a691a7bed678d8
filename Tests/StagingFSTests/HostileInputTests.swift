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

    @Test("sizes no file can have (truncate to 8 EiB, after bytes were staged) are refused with EFBIG; the daemon and the quota are unharmed")
    func absurdSizes() throws {
        let alice = try TestUser.alice
        try withStagingMount { mount throws in
            // The project already holds 4096 bytes: the ledger's sum would pass Int64.max.
            #expect(try run(["sh", "-c", "head -c 4096 /dev/urandom > \(mount.path("held.img"))"], as: alice).succeeded)
            let path = mount.path("huge.img")
            #expect(try run(["sh", "-c", "head -c 4096 /dev/urandom > \(path)"], as: alice).succeeded)
            for size in ["9223372036854775807", "9223372036854771712"] {
                #expect(try errnoName("os.truncate('\(path)', \(size))", as: alice) == "EFBIG", "truncate to \(size)")
                #expect(try errnoName("fd = os.open('\(path)', os.O_WRONLY); os.ftruncate(fd, \(size))", as: alice) == "EFBIG")
            }
            #expect(mount.isMounted, "the daemon is still serving")
            let attributes = try stagingAttributes(path, as: alice)
            #expect(attributes["user.staging.size"] == "4096")
            // The quota ledger still accounts 4096 bytes: another file of alice's stages normally.
            #expect(try run(["sh", "-c", "echo ok > \(mount.path("after.img"))"], as: alice).succeeded)
            #expect(try stagingAttributes(mount.path("after.img"), as: alice)["user.staging.state"] == "staged")
        }
    }

    @Test("fstat through a descriptor whose name now belongs to another project's file shows the descriptor's own file's owner")
    func fstatAfterNameReused() throws {
        let alice = try TestUser.alice
        let bob = try TestUser.bob
        try withStagingMount { mount throws in
            let holder = try MountClient(as: alice)
            defer { holder.close() }
            guard case let .value(descriptor) = try holder.open(mount.path("shared.img"), "rw", flags: ["creat"]) else {
                throw TestSetupError("alice cannot create a file")
            }
            #expect(try holder.owner(descriptor) == .value(Int(alice.uid)))
            #expect(try holder.unlink(mount.path("shared.img")).succeeded)
            #expect(try run(["sh", "-c", "echo bob > \(mount.path("shared.img"))"], as: bob).succeeded, "the name is free again")
            let after = try holder.owner(descriptor)
            #expect(after == .value(Int(alice.uid)), "not bob's, whose file has the name now: \(after)")
            #expect(try holder.close(descriptor).succeeded)
        }
    }

    @Test("an unmapped user holding many idle API connections gets 503 past its share and opens files in a loop; a member still stages and imports")
    func connectionFlood() throws {
        let alice = try TestUser.alice
        let eve = try TestUser.eve
        try withStagingMount { mount throws in
            // eve holds 40 connections open without sending a byte, then asks on one more what it gets.
            let flood = Process()
            let output = Pipe()
            flood.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            flood.arguments = [
                "--reuid=\(eve.uid)", "--regid=\(eve.gid)", "--clear-groups", "--", "/usr/bin/python3", "-c",
                """
                import socket, sys, time
                held = []
                for _ in range(40):
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(sys.argv[1])
                    held.append(s)
                time.sleep(1)
                extra = socket.socket(socket.AF_UNIX)
                extra.connect(sys.argv[1])
                extra.settimeout(10)
                # Past its share the daemon answers at once, before any request.
                print(extra.recv(200).split(b"\\r\\n")[0].decode(), flush=True)
                time.sleep(30)
                """, mount.socket,
            ]
            flood.standardOutput = output
            flood.standardError = output
            try flood.run()
            defer { kill(flood.processIdentifier, SIGKILL); flood.waitUntilExit() }
            let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
            #expect(line.contains("503"), "\(line)")
            #expect(mount.log.contains("API connection refused") && mount.log.contains("the limit per caller"))
            // eve also opens files in the mount in a loop (each refused) while alice stages and imports.
            let opener = Process()
            opener.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            opener.arguments = [
                "--reuid=\(eve.uid)", "--regid=\(eve.gid)", "--clear-groups", "--", "/usr/bin/python3", "-c",
                """
                import os, sys, time
                end = time.monotonic() + 30
                while time.monotonic() < end:
                    try: os.close(os.open(sys.argv[1] + "/flood-%d" % (time.monotonic_ns() % 1000), os.O_CREAT | os.O_WRONLY))
                    except OSError: pass
                """, mount.mountpoint,
            ]
            try opener.run()
            defer { kill(opener.processIdentifier, SIGKILL); opener.waitUntilExit() }
            let source = mount.sourcePath("disk.raw")
            try makeRandomFile(source, bytes: 2_000_000)
            let imported = try mount.importctlJSON(["image-create-via-import", "--file", source], as: alice)
            let sha512 = try digest("sha512sum", of: source)
            #expect(imported["status"] as? String == "active" && imported["os_hash_value"] as? String == sha512, "\(imported)")
            let listed = try mount.importctl(["image-list", "--json"], as: alice)
            #expect(listed.succeeded, "\(listed)")
            #expect(mount.isMounted)
            // The daemon's soft open-file limit was raised to the hard one at start.
            let limits = try String(contentsOfFile: "/proc/\(try #require(mount.process?.processIdentifier))/limits", encoding: .utf8)
            let openFiles = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
            let values = openFiles.split(separator: " ").compactMap { Int($0) }
            #expect(values.count == 2 && values[0] == values[1], "\(openFiles)")
        }
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
            let names = try mount.backingFiles(project: "project-a").map(\.name)
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
            #expect(try mount.backingFiles(project: "project-a").map(\.name) == ["file.img"])
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

// Copying images into a real mount: cp, dd and rsync, random writes, truncation, restarts.
import Foundation
import StagingTestSupport
import Testing

/// The xattrs a user reads with `getfattr -d -m - FILE`.
func stagingAttributes(_ path: String, as user: TestUser? = nil) throws -> [String: String] {
    let result = try run(["getfattr", "--absolute-names", "-d", "-m", "-", path], as: user)
    guard result.succeeded else { throw TestSetupError("getfattr \(path) failed: \(result)") }
    var attributes: [String: String] = [:]
    for line in result.stdout.split(separator: "\n") where line.contains("=") {
        let parts = line.split(separator: "=", maxSplits: 1)
        attributes[String(parts[0])] = String(parts[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }
    return attributes
}

@Suite("The write path through a real mount", .serialized)
struct WritePathTests {
    @Test("cp, dd and rsync into the mount record the source's sha512 and md5")
    func copyToolsStageWithCorrectHashes() throws {
        try withStagingMount { mount throws in
            let source = mount.sourcePath("disk.img")
            try makeRandomFile(source, bytes: 7 * 1_048_576 + 12_345)
            let sha512 = try digest("sha512sum", of: source)
            let md5 = try digest("md5sum", of: source)
            let commands: [(String, [String])] = [
                ("cp.img", ["cp", source, mount.path("cp.img")]),
                ("dd.img", ["dd", "if=\(source)", "of=\(mount.path("dd.img"))", "bs=1M", "conv=fsync", "status=none"]),
                ("rsync.img", ["rsync", source, mount.path("rsync.img")]),
                ("dd-small-blocks.img", ["dd", "if=\(source)", "of=\(mount.path("dd-small-blocks.img"))", "bs=4k", "status=none"]),
            ]
            for (name, command) in commands {
                let result = try run(command)
                #expect(result.succeeded, "\(command.joined(separator: " ")): \(result)")
                let attributes = try stagingAttributes(mount.path(name))
                #expect(attributes["user.staging.state"] == "staged", "\(name): \(attributes)")
                #expect(attributes["user.staging.size"] == "\(7 * 1_048_576 + 12_345)")
                #expect(attributes["user.staging.os_hash_algo"] == "sha512")
                #expect(attributes["user.staging.os_hash_value"] == sha512, "\(name)")
                #expect(attributes["user.staging.checksum"] == md5, "\(name)")
                #expect(try digest("sha512sum", of: mount.backingPath(name)) == sha512)
            }
        }
    }

    @Test("random writes and truncation still end with the hash of what the file holds")
    func randomWritesAndTruncateRehash() throws {
        try withStagingMount { mount throws in
            let target = mount.path("random.img")
            let program = """
                import os, random
                random.seed(7)
                fd = os.open("\(target)", os.O_CREAT | os.O_WRONLY, 0o644)
                for _ in range(200):
                    offset = random.randrange(0, 6 * 1024 * 1024)
                    os.pwrite(fd, os.urandom(random.randrange(1, 300000)), offset)
                os.ftruncate(fd, 5 * 1024 * 1024 + 77)
                os.pwrite(fd, b"tail", 5 * 1024 * 1024 + 77)
                os.close(fd)
                os.truncate("\(target)", 4 * 1024 * 1024 + 3)
                """
            let result = try python(program)
            #expect(result.succeeded, "\(result)")
            let attributes = try stagingAttributes(target)
            #expect(attributes["user.staging.state"] == "staged")
            #expect(attributes["user.staging.size"] == "\(4 * 1024 * 1024 + 3)")
            #expect(attributes["user.staging.os_hash_value"] == (try digest("sha512sum", of: mount.backingPath("random.img"))))
            #expect(attributes["user.staging.checksum"] == (try digest("md5sum", of: mount.backingPath("random.img"))))
            #expect(mount.log.contains("staging.rehashed=true"), "an out-of-sequence write must force a recompute")
        }
    }

    @Test("rewriting a staged file from the start gives the new content's hash")
    func rewriteGivesNewHash() throws {
        try withStagingMount { mount throws in
            let first = mount.sourcePath("first.img"), second = mount.sourcePath("second.img")
            try makeRandomFile(first, bytes: 3_000_000)
            try makeRandomFile(second, bytes: 1_000_000)
            #expect(try run(["cp", first, mount.path("image")]).succeeded)
            #expect(try run(["cp", second, mount.path("image")]).succeeded)
            let attributes = try stagingAttributes(mount.path("image"))
            #expect(attributes["user.staging.size"] == "1000000")
            #expect(attributes["user.staging.os_hash_value"] == (try digest("sha512sum", of: second)))
        }
    }

    @Test("parallel writers each get their own file's hash")
    func parallelWriters() throws {
        try withStagingMount { mount throws in
            var sources: [String] = []
            for index in 0..<4 {
                let source = mount.sourcePath("p\(index).img")
                try makeRandomFile(source, bytes: 4_000_000 + index * 100_003)
                sources.append(source)
            }
            let script =
                sources.enumerated().map { index, source in
                    "dd if=\(source) of=\(mount.path("p\(index).img")) bs=256k status=none &"
                }.joined(separator: "\n") + "\nwait"
            #expect(try run(["bash", "-c", script]).succeeded)
            for (index, source) in sources.enumerated() {
                let attributes = try stagingAttributes(mount.path("p\(index).img"))
                #expect(attributes["user.staging.os_hash_value"] == (try digest("sha512sum", of: source)))
            }
        }
    }

    @Test("reading back through the mount returns the staged bytes")
    func readBack() throws {
        try withStagingMount { mount throws in
            let source = mount.sourcePath("disk.img")
            try makeRandomFile(source, bytes: 2_500_000)
            #expect(try run(["cp", source, mount.path("disk.img")]).succeeded)
            #expect(try run(["cmp", source, mount.path("disk.img")]).succeeded)
        }
    }

    @Test("files report a 1 MiB st_blksize, so cp writes 1 MiB at a time (one FUSE request each), not 4 KiB or 128 KiB")
    func copySizedByBlockSize() throws {
        try withStagingMount { mount throws in
            let source = mount.sourcePath("disk.img")
            try makeRandomFile(source, bytes: 4 * 1_048_576)
            #expect(try run(["touch", mount.path("probe.img")]).succeeded)
            #expect(try run(["stat", "-c", "%o", mount.path("probe.img")]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1048576")
            let trace = mount.sourcePath("cp.strace")
            #expect(try run(["strace", "-f", "-e", "trace=write", "-o", trace, "cp", source, mount.path("disk.img")]).succeeded)
            let writes = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").filter { $0.contains("write(") }
            let sizes = writes.compactMap { $0.split(separator: "=").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
            #expect(sizes.count == 4 && sizes.allSatisfy { $0 == 1_048_576 }, "cp's writes: \(sizes)")
            #expect(try stagingAttributes(mount.path("disk.img"))["user.staging.os_hash_value"] == (try digest("sha512sum", of: source)))
        }
    }

    @Test("with hash_on_write = false bytes are spliced past the daemon: staged without hashes, quota still enforced")
    func hashingOff() throws {
        let config = StagingMount.defaultConfig + "\n[quota:project-a]\nstage_quota_bytes = 3M\n"
        try withStagingMount(config: config, extraArguments: ["--hash-on-write", "false"]) { mount throws in
            let source = mount.sourcePath("disk.img")
            try makeRandomFile(source, bytes: 5 * 1_048_576)
            #expect(try run(["dd", "if=\(source)", "of=\(mount.path("disk.img"))", "bs=1M", "status=none"]).succeeded)
            #expect(try run(["cmp", source, mount.backingPath("disk.img")]).succeeded, "spliced bytes arrive intact")
            let attributes = try stagingAttributes(mount.path("disk.img"))
            #expect(attributes["user.staging.state"] == "staged")
            #expect(attributes["user.staging.os_hash_value"] == nil)
            #expect(attributes["user.staging.message"]?.contains("hash_on_write") == true)
            let quota = try run(["dd", "if=\(source)", "of=\(mount.path("alice.img"))", "bs=1M"], as: try TestUser.alice)
            #expect(quota.stderr.contains("Disk quota exceeded"), "\(quota)")
            #expect(try run(["cmp", "-n", "3145728", source, mount.backingPath("alice.img", project: "project-a")]).succeeded)
            // A refused spliced write leaves nothing in libfuse's pipe: the next request is served normally.
            #expect(try run(["rm", mount.path("alice.img")], as: try TestUser.alice).succeeded)
            #expect(try run(["dd", "if=\(source)", "of=\(mount.path("again.img"))", "bs=1M", "count=2", "status=none"], as: try TestUser.alice).succeeded)
            #expect(try run(["cmp", "-n", "2097152", source, mount.backingPath("again.img", project: "project-a")]).succeeded)
        }
    }

    @Test("staged records survive a restart of the daemon")
    func recordsSurviveRestart() throws {
        let mount = try StagingMount()
        defer { mount.tearDown() }
        try mount.start()
        let source = mount.sourcePath("disk.img")
        try makeRandomFile(source, bytes: 1_500_000)
        #expect(try run(["cp", source, mount.path("disk.img")]).succeeded)
        #expect(mount.stop() == 0)
        #expect(!mount.isListedInMountTable, "SIGTERM must unmount")
        try mount.start()
        let attributes = try stagingAttributes(mount.path("disk.img"))
        #expect(attributes["user.staging.state"] == "staged")
        #expect(attributes["user.staging.os_hash_value"] == (try digest("sha512sum", of: source)))
    }
}

// Quotas and the free-space reserve: the write that crosses the line fails, and nothing before it is lost.
import Foundation
import StagingTestSupport
import Testing

@Suite("Quotas and free-space reserve", .serialized)
struct LimitsTests {
    @Test(
        "image_size_cap holds for staging: the write or truncate past it gets EFBIG, a stage through the API 413; acknowledged bytes stay, the file is incomplete"
    )
    func sizeCap() throws {
        let alice = try TestUser.alice
        let config = StagingMount.defaultConfig + "\n[DEFAULT]\nimage_size_cap = 3M\n"
        try withStagingMount(config: config) { mount throws in
            let source = mount.sourcePath("big.img")
            try makeRandomFile(source, bytes: 5 * 1_048_576)
            let result = try run(["dd", "if=\(source)", "of=\(mount.path("big.img"))", "bs=1M"], as: alice)
            #expect(!result.succeeded && result.stderr.contains("File too large"), "\(result)")
            #expect(try run(["cmp", "-n", "3145728", source, mount.backingPath("big.img", project: "project-a")]).succeeded, "acknowledged bytes are intact")
            let attributes = try stagingAttributes(mount.path("big.img"), as: alice)
            #expect(attributes["user.staging.state"] == "incomplete")
            #expect(attributes["user.staging.message"]?.contains("image_size_cap (3145728 bytes)") == true, "\(attributes)")
            let truncated = try run(["truncate", "-s", "4M", mount.path("sparse.img")], as: alice)
            #expect(!truncated.succeeded && truncated.stderr.contains("File too large"), "\(truncated)")
            #expect(try run(["truncate", "-s", "3M", mount.path("exact.img")], as: alice).succeeded, "the cap itself is allowed")
            let id = try createImage(mount, as: alice, diskFormat: "raw")
            let staged = try run(
                [
                    "curl", "-s", "-w", "\n%{http_code}", "--unix-socket", mount.socket, "-X", "PUT", "-H", "Content-Type: application/octet-stream",
                    "--data-binary", "@\(source)", "http://localhost/v2/images/\(id)/stage",
                ], as: alice)
            #expect(staged.stdout.hasSuffix("413") && staged.stdout.contains("image_size_cap"), "\(staged)")
            #expect(try imageStatus(mount, id, as: alice) == "queued")
        }
    }

    @Test("crossing the project byte quota fails that write with EDQUOT; acknowledged bytes stay")
    func byteQuota() throws {
        let alice = try TestUser.alice
        let config = StagingMount.defaultConfig + "\n[quota:project-a]\nstage_quota_bytes = 3M\n"
        try withStagingMount(config: config) { mount throws in
            let source = mount.sourcePath("big.img")
            try makeRandomFile(source, bytes: 5 * 1_048_576)
            let result = try run(["dd", "if=\(source)", "of=\(mount.path("big.img"))", "bs=1M"], as: alice)
            #expect(!result.succeeded)
            #expect(result.stderr.contains("Disk quota exceeded"), "\(result)")
            #expect(result.stderr.contains("3145728 bytes"), "dd reports what was acknowledged: \(result.stderr)")
            let prefix = try run(["cmp", "-n", "3145728", source, mount.backingPath("big.img", project: "project-a")])
            #expect(prefix.succeeded, "acknowledged bytes must be intact: \(prefix)")
            let attributes = try stagingAttributes(mount.path("big.img"), as: alice)
            #expect(attributes["user.staging.state"] == "incomplete")
            #expect(attributes["user.staging.size"] == "3145728")
            #expect(attributes["user.staging.message"]?.contains("quota") == true)
            // Another project is not affected, and removing the file frees the quota.
            #expect(try run(["dd", "if=\(source)", "of=\(mount.path("b.img"))", "bs=1M", "status=none"], as: try TestUser.bob).succeeded)
            #expect(try run(["rm", mount.path("big.img")], as: alice).succeeded)
            #expect(try run(["dd", "if=\(source)", "of=\(mount.path("small.img"))", "bs=1M", "count=2", "status=none"], as: alice).succeeded)
        }
    }

    @Test("the project file-count quota refuses the file that would cross it")
    func fileQuota() throws {
        let alice = try TestUser.alice
        let config = StagingMount.defaultConfig + "\n[stagingfs]\nstage_quota_files = 2\n"
        try withStagingMount(config: config) { mount throws in
            #expect(try run(["touch", mount.path("1.img"), mount.path("2.img")], as: alice).succeeded)
            let third = try run(["touch", mount.path("3.img")], as: alice)
            #expect(third.stderr.contains("Disk quota exceeded"), "\(third)")
            #expect(try run(["rm", mount.path("1.img")], as: alice).succeeded)
            #expect(try run(["touch", mount.path("3.img")], as: alice).succeeded)
        }
    }

    @Test("statfs shows a member what its quota leaves, and the reserve is never offered")
    func statfsReflectsQuota() throws {
        let alice = try TestUser.alice
        let config = StagingMount.defaultConfig + "\n[quota:project-a]\nstage_quota_bytes = 64M\n"
        try withStagingMount(config: config) { mount throws in
            let df = try run(["stat", "-f", "-c", "%a %S", mount.mountpoint], as: alice)
            let fields = df.stdout.split(separator: " ").compactMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            #expect(fields.count == 2)
            #expect(fields.count == 2 && fields[0] * fields[1] <= 64 * 1_048_576, "\(df)")
        }
    }

    @Test("on a nearly full backing filesystem the write that crosses the reserve fails with ENOSPC")
    func freeSpaceReserve() throws {
        let mount = try StagingMount(config: StagingMount.defaultConfig + "\n[stagingfs]\nfree_space_reserve = 8M\n")
        #expect(try run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mount.backing]).succeeded)
        defer {
            mount.tearDown()
            _ = try? run(["umount", "-l", mount.backing])
        }
        chmod(mount.backing, 0o755)
        try mount.start()
        let source = mount.sourcePath("big.img")
        try makeRandomFile(source, bytes: 12 * 1_048_576)
        let result = try run(["dd", "if=\(source)", "of=\(mount.path("big.img"))", "bs=1M"], as: try TestUser.alice)
        #expect(result.stderr.contains("No space left on device"), "\(result)")
        let written = (try FileManager.default.attributesOfItem(atPath: mount.backingPath("big.img", project: "project-a"))[.size] as? Int) ?? 0
        #expect(written > 0 && written <= 8 * 1_048_576)
        #expect(try run(["cmp", "-n", "\(written)", source, mount.backingPath("big.img", project: "project-a")]).succeeded)
        #expect(try stagingAttributes(mount.path("big.img"), as: try TestUser.alice)["user.staging.state"] == "incomplete")
    }

    @Test("a file removed while open keeps its bytes charged until the last close, writes after the removal included; then the quota is whole again")
    func removedWhileOpen() throws {
        let alice = try TestUser.alice
        let config = StagingMount.defaultConfig + "\n[quota:project-a]\nstage_quota_bytes = 1M\n"
        try withStagingMount(config: config) { mount throws in
            let client = try MountClient(as: alice)
            defer { client.close() }
            guard case let .value(held) = try client.open(mount.path("gone.img"), "w", flags: ["creat"]) else {
                throw TestSetupError("alice cannot create a file")
            }
            #expect(try client.pwrite(held, Data(count: 300_000), at: 0) == .value(300_000))
            #expect(try client.unlink(mount.path("gone.img")).succeeded)
            #expect(try client.pwrite(held, Data(count: 300_000), at: 300_000) == .value(300_000), "an open handle still writes")
            // 600000 bytes are still held: 500000 more do not fit, 400000 do.
            #expect(try run(["truncate", "-s", "500000", mount.path("other.img")], as: alice).stderr.contains("quota"))
            #expect(try client.close(held).succeeded)
            #expect(try run(["truncate", "-s", "1048576", mount.path("other.img")], as: alice).succeeded, "all of the quota is free again")
            #expect(try run(["truncate", "-s", "1048577", mount.path("other.img")], as: alice).stderr.contains("quota"))
        }
    }
}

// The daemon's life: clean start-up errors, SIGTERM, kill -9 mid-write, stale mounts.
import Foundation
import StagingTestSupport
import Testing

@Suite("Daemon lifecycle", .serialized)
struct LifecycleTests {
    @Test("kill -9 mid-write: the restart cleans the stale mount and the file is incomplete, never staged")
    func crashMidWrite() throws {
        let alice = try TestUser.alice
        let mount = try StagingMount()
        defer { mount.tearDown() }
        try mount.start()
        // A slow writer: 64 KiB every 20 ms, until it is cut off.
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        writer.arguments = [
            "--reuid=\(alice.uid)", "--regid=\(alice.gid)", "--init-groups", "--", "/usr/bin/python3", "-c",
            """
            import os, time
            fd = os.open("\(mount.path("upload.img"))", os.O_CREAT | os.O_WRONLY, 0o644)
            for i in range(10000):
                os.write(fd, os.urandom(65536))
                time.sleep(0.02)
            """,
        ]
        writer.standardError = FileHandle.nullDevice
        try writer.run()
        waitFor(10) { ((try? FileManager.default.attributesOfItem(atPath: mount.backingPath("upload.img"))[.size] as? Int) ?? 0) >= 300_000 }
        mount.crash()
        writer.waitUntilExit()
        #expect(writer.terminationStatus != 0, "the writer must see its mount disappear")
        #expect(mount.isListedInMountTable, "kill -9 leaves a stale mount behind")
        try mount.start()
        #expect(mount.log.contains("cleaning a stale mount"))
        let attributes = try stagingAttributes(mount.path("upload.img"), as: alice)
        #expect(attributes["user.staging.state"] == "incomplete")
        #expect(attributes["user.staging.os_hash_value"] == nil)
        #expect(attributes["user.staging.message"]?.contains("daemon stopped") == true)
        // Re-staging it makes it whole again.
        let source = mount.sourcePath("retry.img")
        try makeRandomFile(source, bytes: 1_000_000)
        #expect(try run(["cp", source, mount.path("upload.img")], as: alice).succeeded)
        #expect(try stagingAttributes(mount.path("upload.img"), as: alice)["user.staging.state"] == "staged")
    }

    @Test("without a mountpoint the daemon mounts on top of node_staging_uri, and survives a crash there")
    func mountsInPlace() throws {
        let alice = try TestUser.alice
        let mount = try StagingMount(inPlace: true)
        defer { mount.tearDown() }
        try mount.start()
        #expect(mount.isMounted)
        let source = mount.sourcePath("disk.img")
        try makeRandomFile(source, bytes: 2_000_000)
        // Glance writes <node_staging_uri>/<image_id>: that path is now the mount.
        #expect(try run(["cp", source, mount.backing + "/0b7a0e52-image"]).succeeded)
        #expect(try stagingAttributes(mount.backing + "/0b7a0e52-image")["user.staging.os_hash_value"] == (try digest("sha512sum", of: source)))
        #expect(!(try run(["ls", mount.backing], as: alice).stdout.contains("0b7a0e52-image")), "the service's files stay hidden")
        mount.crash()
        try mount.start()
        #expect(mount.log.contains("cleaning a stale mount"))
        let restarted = try stagingAttributes(mount.backing + "/0b7a0e52-image")
        #expect(restarted["user.staging.state"] == "staged", "\(restarted)\n\(mount.log)")
        #expect(mount.stop() == 0)
        #expect(!mount.isListedInMountTable)
        #expect(try digest("sha512sum", of: mount.backing + "/0b7a0e52-image") == (try digest("sha512sum", of: source)))
    }

    @Test("SIGTERM unmounts cleanly and exits 0")
    func sigtermUnmounts() throws {
        let mount = try StagingMount()
        defer { mount.tearDown() }
        try mount.start()
        #expect(try run(["touch", mount.path("a.img")]).succeeded)
        #expect(mount.stop() == 0)
        #expect(!mount.isListedInMountTable)
        #expect(mount.log.contains("unmounted"))
        #expect(try mount.readiness?.awaitNotification("STOPPING=1", timeout: 5) == true, "the service manager is told")
    }

    @Test("the service manager hears READY=1 only from a daemon that serves: a start that fails says nothing")
    func readinessOnlyWhenServing() throws {
        let mount = try StagingMount()
        defer { mount.tearDown() }
        let supervisor = try ReadinessListener(socketPath: mount.root + "/supervisor.sock")
        let failed = try run(
            [StagingMount.daemonPath, "mount", "--config-file", mount.configFile, "--mountpoint", mount.root + "/nomnt"],
            environment: ["NOTIFY_SOCKET": supervisor.socketPath])
        #expect(!failed.succeeded)
        // The daemon has exited: anything it sent is already queued; nothing there is the check.
        #expect(try supervisor.awaitNotification("READY=1", timeout: 0) == false)
        try mount.start()
        #expect(mount.isMounted, "start() returned on READY=1 and the mount answers")
        #expect(try run(["touch", mount.path("ready.img")]).succeeded)
    }

    @Test("a second daemon on a live mountpoint refuses to start and says why")
    func liveMountIsNotStolen() throws {
        try withStagingMount { mount throws in
            let second = try run([StagingMount.daemonPath, "mount", "--config-file", mount.configFile])
            #expect(second.status == 71)
            #expect(second.stderr.contains("already mounted"), "\(second)")
            #expect(mount.isMounted)
        }
    }

    @Test("a second daemon on the same SQLite catalog refuses to start: the first one's records in memory stay the catalog's")
    func sqliteCatalogHasOneDaemon() throws {
        try withStagingMount { mount throws in
            let elsewhere = mount.root + "/second-mnt"
            try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
            let second = try run([StagingMount.daemonPath, "mount", "--config-file", mount.configFile, "--mountpoint", elsewhere])
            #expect(second.status == 73, "\(second)")
            #expect(second.stderr.contains("in use by another stagingfs") && second.stderr.contains("postgresql://"), "\(second)")
            let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
            #expect(!mounts.contains(" \(elsewhere) "), "nothing was mounted there")
            #expect(try run(["touch", mount.path("still-served.img")]).succeeded)
        }
        // The lock goes with the daemon, even one killed: a restart takes it again.
        let mount = try StagingMount()
        defer { mount.tearDown() }
        try mount.start()
        mount.crash()
        try mount.start()
        #expect(try run(["touch", mount.path("after-crash.img")]).succeeded)
    }

    @Test("start-up errors name what is wrong and exit with a documented code")
    func startupErrors() throws {
        let mount = try StagingMount()
        defer { mount.tearDown() }
        let missingBacking = try run([StagingMount.daemonPath, "mount", "--config-file", mount.configFile, "--backing-dir", mount.root + "/nope"])
        #expect(missingBacking.status == 73)
        #expect(missingBacking.stderr.contains(mount.root + "/nope"), "\(missingBacking)")
        let missingMountpoint = try run([StagingMount.daemonPath, "mount", "--config-file", mount.configFile, "--mountpoint", mount.root + "/nomnt"])
        #expect(missingMountpoint.status == 71)
        #expect(missingMountpoint.stderr.contains("create the directory"), "\(missingMountpoint)")
        let broken = mount.root + "/broken.conf"
        try "[stagingfs]\nfuse_threads = many\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let badValue = try run([StagingMount.daemonPath, "mount", "--config-file", mount.configFile, "--config-file", broken])
        #expect(badValue.status == 78)
        #expect(badValue.stderr.contains("\(broken):2"), "\(badValue)")
        #expect(badValue.stderr.contains("fuse_threads"))
        try "stagingfs]\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let malformed = try run([StagingMount.daemonPath, "mount", "--config-file", broken])
        #expect(malformed.status == 78)
        #expect(malformed.stderr.contains("\(broken):1"), "\(malformed)")
        let unknownUser = try run([StagingMount.daemonPath, "mount", "--config-file", mount.configFile, "--service-user", "no-such-user-here"])
        #expect(unknownUser.status == 78)
        #expect(unknownUser.stderr.contains("no-such-user-here"))
        #expect(!mount.isListedInMountTable)
    }
}

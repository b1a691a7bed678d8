// A real stagingfs daemon on a real FUSE mount, for tests: started, waited for, always unmounted.
import Foundation

/// One test's staging area: a backing directory, a mountpoint, a state directory and the daemon serving them.
public final class StagingMount: @unchecked Sendable {
    public let root: String
    public let backing: String
    public let mountpoint: String
    public let stateDir: String
    public let configFile: String
    public let logFile: String
    /// The image store (`[glance_store] filesystem_store_datadir`) and the API socket.
    public let store: String
    public let socket: String
    public private(set) var process: Process?
    /// Where the running daemon notifies readiness and stopping (its NOTIFY_SOCKET).
    public private(set) var readiness: ReadinessListener?
    private var baselineDescriptors = 0

    /// The built `stagingfs` binary, beside the test bundle in the build directory.
    public static var daemonPath: String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("stagingfs").path
    }

    /// Runs the daemon in the foreground with this mount's configuration plus `extraConfig` (a second
    /// `--config-file`, as an operator's override file): for start-up errors, which end it before it mounts.
    public func runDaemon(extraConfig: String) throws -> CommandResult {
        let file = root + "/extra-\(UUID().uuidString.prefix(8)).conf"
        try extraConfig.write(toFile: file, atomically: true, encoding: .utf8)
        return try run([Self.daemonPath, "mount", "--config-file", configFile, "--config-file", file])
    }

    /// Makes the directories and writes `config` (the `[stagingfs]` and identity sections of a test) to a file.
    /// With `inPlace`, no mountpoint is configured: the daemon mounts on top of the backing directory.
    /// With `sharing`, this mount is another node over that mount's backing directory and image store (its own
    /// mountpoint, state directory and socket); `config` then names the shared database.
    public init(config: String = StagingMount.defaultConfig, inPlace: Bool = false, sharing other: StagingMount? = nil) throws {
        root = "/tmp/stagingfs-tests/\(UUID().uuidString.prefix(8))"
        backing = other?.backing ?? root + "/backing"
        mountpoint = inPlace ? backing : root + "/mnt"
        stateDir = root + "/state"
        configFile = root + "/glance-api.conf"
        logFile = root + "/stagingfs.log"
        store = other?.store ?? root + "/store"
        socket = stateDir + "/api.sock"
        for directory in [root, backing, mountpoint, stateDir, store, root + "/src"] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            chmod(directory, 0o755)
        }
        chmod("/tmp/stagingfs-tests", 0o755)
        let text = """
            [DEFAULT]
            node_staging_uri = file://\(backing)

            [stagingfs]
            \(inPlace ? "" : "mountpoint = \(mountpoint)")
            state_dir = \(stateDir)

            [glance_store]
            filesystem_store_datadir = \(store)

            """ + config
        try text.write(toFile: configFile, atomically: true, encoding: .utf8)
    }

    /// Identities every mount test can use: alice and bob by user, carol by group; eve is left unmapped.
    public static let defaultConfig = """
        [identity:alice]
        match = user:sfs-alice
        project_id = project-a
        roles = member

        [identity:bob]
        match = user:sfs-bob
        project_id = project-b
        roles = member

        [identity:project-a-group]
        match = group:sfs-project-a
        user_id = carol
        project_id = project-a
        roles = member, reader

        """

    /// One copy of the built importctl per test process, where test users can run it whatever the build
    /// directory's permissions. A child process writes it, so no write descriptor of this process exists that a
    /// concurrently spawned command could inherit (that made exec fail with ETXTBSY); `static let` makes it once.
    private static let importctlCopy: Result<String, any Error> = Result {
        let directory = "/tmp/stagingfs-tests/importctl-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod("/tmp/stagingfs-tests", 0o755)
        chmod(directory, 0o755)
        let built = URL(fileURLWithPath: daemonPath).deletingLastPathComponent().appendingPathComponent("importctl").path
        let copy = directory + "/importctl"
        let installed = try run(["install", "-m", "0755", built, copy])
        guard installed.succeeded else { throw TestSetupError("could not copy importctl: \(installed)") }
        return copy
    }

    /// The path of that copy, made at the first call.
    public static func importctlPath() throws -> String { try importctlCopy.get() }

    /// Runs the built importctl against this daemon, as `user` when given.
    @discardableResult
    public func importctl(_ arguments: [String], as user: TestUser? = nil) throws -> CommandResult {
        let binary = try Self.importctlPath()
        let result = try run(["env", "STAGINGFS_SOCKET=\(socket)", binary] + arguments, as: user)
        if let process, !process.isRunning {
            throw TestSetupError(
                "stagingfs is gone (exit \(process.terminationStatus), \(process.terminationReason == .uncaughtSignal ? "killed by a signal" : "exited")):\n\(log)"
            )
        }
        return result
    }

    /// Runs the built importctl as a remote client does: against the API over TCP at `imageURL` (OS_IMAGE_URL), with
    /// `environment` (OS_AUTH_TOKEN, or the OS_AUTH_URL credentials) and no STAGINGFS_SOCKET.
    @discardableResult
    public static func importctl(_ arguments: [String], imageURL: String, environment: [String: String] = [:]) throws -> CommandResult {
        let binary = try importctlPath()
        return try run(["env", "-u", "STAGINGFS_SOCKET", binary] + arguments, environment: ["OS_IMAGE_URL": imageURL].merging(environment) { $1 })
    }

    /// importctl with --json, decoded.
    public func importctlJSON(_ arguments: [String], as user: TestUser? = nil) throws -> [String: Any] {
        let result = try importctl(arguments + ["--json"], as: user)
        guard result.succeeded, let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw TestSetupError("importctl \(arguments.joined(separator: " ")) failed: \(result)")
        }
        return object
    }

    /// A path inside the mount.
    public func path(_ name: String) -> String { mountpoint + "/" + name }
    /// A path inside the backing directory.
    public func backingPath(_ name: String) -> String { backing + "/" + name }
    /// Where a project's free-named file is in the backing directory: in that project's own namespace.
    public func backingPath(_ name: String, project: String) -> String { backing + "/.projects/" + project + "/" + name }
    /// The files a member of `project` has in the backing directory, as (name in the mount, path in the backing
    /// directory): the shared names (`<image_id>`…) and its project's own namespace.
    public func backingFiles(project: String) throws -> [(name: String, path: String)] {
        let files = FileManager.default
        let shared = try files.contentsOfDirectory(atPath: backing).filter { $0 != ".projects" }.map { ($0, backingPath($0)) }
        let own = (try? files.contentsOfDirectory(atPath: backing + "/.projects/" + project)) ?? []
        return (shared + own.map { ($0, backingPath($0, project: project)) }).sorted { $0.0 < $1.0 }
    }
    /// A path for source files, readable by every test user.
    public func sourcePath(_ name: String) -> String { root + "/src/" + name }

    public var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    /// Starts the daemon and waits (up to `timeout`) until the mount answers.
    public func start(extraArguments: [String] = [], timeout: TimeInterval = 15) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.daemonPath)
        process.arguments = ["mount", "--config-file", configFile, "--log-level", "debug"] + extraArguments
        if !FileManager.default.fileExists(atPath: logFile) { _ = FileManager.default.createFile(atPath: logFile, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        // Ready is what the daemon says (READY=1 on NOTIFY_SOCKET, as systemd's Type=notify), once the mount
        // serves and the API listens; a stale mount left by a crash may still be listed, but says nothing.
        let readiness = try ReadinessListener(socketPath: root + "/notify-\(UUID().uuidString.prefix(8)).sock")
        self.readiness = readiness
        process.environment = ProcessInfo.processInfo.environment.merging(["NOTIFY_SOCKET": readiness.socketPath]) { $1 }
        try process.run()
        self.process = process
        guard try readiness.awaitNotification("READY=1", timeout: timeout, while: { process.isRunning }) else {
            if !process.isRunning {
                process.waitUntilExit()
                throw TestSetupError("stagingfs exited with \(process.terminationStatus) before mounting:\n\(self.log)")
            }
            throw TestSetupError("stagingfs did not say READY=1 within \(timeout) s:\n\(self.log)")
        }
        guard isMounted else { throw TestSetupError("stagingfs said READY=1 but \(mountpoint) does not answer:\n\(self.log)") }
        baselineDescriptors = descriptorCount
    }

    /// Mounted and answering statfs (a stale mount of a dead daemon answers ENOTCONN).
    public var isMounted: Bool {
        var stats = statvfs()
        return listedAsStagingFS && statvfs(mountpoint, &stats) == 0
    }

    /// Whether a stagingfs mount is listed at the mountpoint.
    private var listedAsStagingFS: Bool {
        let mountinfo = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return mountinfo.split(separator: "\n").contains { line in
            line.split(separator: " ").dropFirst(4).first.map(String.init) == mountpoint && line.contains("fuse.stagingfs")
        }
    }

    /// True while the mountpoint is listed in the mount table, answering or not.
    public var isListedInMountTable: Bool {
        let mountinfo = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return mountinfo.split(separator: "\n").contains { $0.split(separator: " ").dropFirst(4).first.map(String.init) == mountpoint }
    }

    /// Open descriptors of the daemon right now, leaving out the catalog's (SQLite opens reader connections as it
    /// needs them, up to a bound): what is left are backing files, sockets and pipes, which must all be released.
    public var descriptorCount: Int {
        guard let pid = process?.processIdentifier else { return 0 }
        let directory = "/proc/\(pid)/fd"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        // libdispatch creates its epoll, eventfd and timerfd descriptors lazily, whenever its manager thread first
        // runs, and libfuse a splice pipe per worker thread on its first spliced request (hash_on_write = false):
        // they are not handles of ours, so anonymous inodes and pipes are left out too.
        return entries.filter { entry in
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + entry)) ?? ""
            return !target.hasPrefix(stateDir + "/catalog.sqlite") && !target.hasPrefix("anon_inode:") && !target.hasPrefix("pipe:")
        }.count
    }

    /// Descriptors the daemon holds beyond what it held when the mount became ready: should be 0 when idle.
    public var leakedDescriptors: Int { descriptorCount - baselineDescriptors }

    /// Waits (the kernel releases files asynchronously) until the daemon holds no more descriptors than when it
    /// became ready, and throws if it still does: every open, create and opendir must be released.
    public func checkNoLeakedDescriptors(timeout: TimeInterval = 5) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while leakedDescriptors > 0, Date() < deadline { usleep(20_000) }
        guard leakedDescriptors <= 0 else {
            let pid = process?.processIdentifier ?? 0
            let listing = (try? run(["ls", "-l", "/proc/\(pid)/fd"]).stdout) ?? ""
            throw TestSetupError("stagingfs leaked \(leakedDescriptors) descriptor(s):\n\(listing)")
        }
    }

    /// SIGTERM, then wait for a clean exit; returns the exit status.
    @discardableResult
    public func stop(timeout: TimeInterval = 15) -> Int32? {
        guard let process else { return nil }
        if process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        self.process = nil
        return process.terminationStatus
    }

    /// kill -9: the daemon dies without unmounting, leaving a stale mount.
    public func crash() {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    /// Stops the daemon if running and removes any mount left at the mountpoint.
    public func tearDown() {
        _ = stop()
        if isListedInMountTable { _ = try? run(["fusermount3", "-u", "-z", mountpoint]) }
    }

    deinit { tearDown() }
}

/// Runs `body` with a started mount and always tears it down, whatever `body` does.
public func withStagingMount<T>(
    config: String = StagingMount.defaultConfig, extraArguments: [String] = [],
    _ body: (StagingMount) throws -> T
) throws -> T {
    let mount = try StagingMount(config: config)
    defer { mount.tearDown() }
    try mount.start(extraArguments: extraArguments)
    let result = try body(mount)
    try mount.checkNoLeakedDescriptors()
    return result
}

extension StagingMount {
    /// An HTTP request to the API socket as `user` (curl: the caller is who the kernel says); the status and body.
    /// `headers` are extra `Name: value` lines.
    public func request(
        _ method: String, _ path: String, json: String? = nil, contentType: String = "application/json",
        headers: [String] = [], as user: TestUser
    ) throws -> (status: Int, body: String) {
        var arguments = ["curl", "-s", "-w", "\n%{http_code}", "--unix-socket", socket, "-X", method]
        for header in headers { arguments += ["-H", header] }
        if let json { arguments += ["-H", "Content-Type: \(contentType)", "--data", json] }
        let result = try run(arguments + ["http://localhost" + path], as: user)
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }
}

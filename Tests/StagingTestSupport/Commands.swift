// Running real commands in tests, as root or as one of the test users (through setpriv).
import Foundation

/// What a command printed and how it ended.
public struct CommandResult: Sendable, CustomStringConvertible {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public var succeeded: Bool { status == 0 }
    public var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

/// A user the test set-up created (scripts/create-test-users); tests act as it through setpriv.
public struct TestUser: Sendable, CustomStringConvertible {
    public let name: String
    public let uid: UInt32
    public let gid: UInt32

    /// Looks the user up; a missing user is a set-up error that names the script to run.
    public static func named(_ name: String) throws -> TestUser {
        guard let entry = getpwnam(name) else {
            throw TestSetupError("test user \(name) does not exist: run scripts/create-test-users (scripts/test does it)")
        }
        return TestUser(name: name, uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
    }

    public var description: String { name }

    // The users scripts/create-test-users makes, and the identities tests map them to.
    public static var alice: TestUser { get throws { try named("sfs-alice") } }  // project-a, by user
    public static var bob: TestUser { get throws { try named("sfs-bob") } }  // project-b, by user
    public static var carol: TestUser { get throws { try named("sfs-carol") } }  // project-a, by group sfs-project-a
    public static var eve: TestUser { get throws { try named("sfs-eve") } }  // in no identity: refused
}

public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs `arguments` (the first is looked up in PATH), as `user` when given, and waits for it.
@discardableResult
public func run(_ arguments: [String], as user: TestUser? = nil, input: String? = nil, environment: [String: String] = [:]) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    var full = arguments
    if let user {
        full = ["setpriv", "--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--"] + arguments
    }
    process.arguments = full
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { $1 }
    process.environment = env
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cmd-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let out = directory.appendingPathComponent("out"), err = directory.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    if let input {
        let pipe = Pipe()
        process.standardInput = pipe
        try process.run()
        pipe.fileHandleForWriting.write(Data(input.utf8))
        try pipe.fileHandleForWriting.close()
    } else {
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus,
        stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
}

/// Runs a short Python 3 program (for byte-exact names and syscalls the shell cannot express).
@discardableResult
/// `text` as a Python expression of exactly its UTF-8 bytes (no quoting, no normalisation on the way).
public func pythonLiteral(_ text: String) -> String { "bytes.fromhex('\(Data(text.utf8).hexString)').decode()" }

public func python(_ program: String, arguments: [String] = [], as user: TestUser? = nil) throws -> CommandResult {
    try run(["/usr/bin/python3", "-c", program] + arguments, as: user)
}

/// sha512sum / md5sum of a file, as a user would check it.
public func digest(_ tool: String, of path: String) throws -> String {
    let result = try run([tool, path])
    guard result.succeeded, let value = result.stdout.split(separator: " ").first else {
        throw TestSetupError("\(tool) \(path) failed: \(result)")
    }
    return String(value)
}

/// Writes `count` bytes of random data to a new file readable by every test user.
public func makeRandomFile(_ path: String, bytes count: Int) throws {
    let result = try run(["sh", "-c", "head -c \(count) /dev/urandom > '\(path)' && chmod 644 '\(path)'"])
    guard result.succeeded else { throw TestSetupError("could not make \(path): \(result)") }
}

/// The digest a coreutils tool (sha512sum, md5sum…) computes of `data`: an independent reference for tests.
public func referenceDigest(_ tool: String, of data: Data) -> String {
    let path = NSTemporaryDirectory() + "digest-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: path) }
    guard (try? data.write(to: URL(fileURLWithPath: path))) != nil, let value = try? digest(tool, of: path) else {
        return "\(tool) failed"
    }
    return value
}

/// A process of qemu-img's sandbox account: its pid, the daemon that started it (`STAGINGFS_DAEMON_PID` in its
/// environment), and its command line.
public struct SandboxProcess: Sendable, CustomStringConvertible {
    public var pid: Int32
    public var daemonPID: Int32?
    public var command: String

    public var description: String { "\(pid) (started by \(daemonPID.map(String.init) ?? "?")): \(command)" }

    /// Whether the daemon that started it is gone: such a process outlived its daemon.
    public var isOrphaned: Bool { daemonPID.map { kill($0, 0) != 0 && errno == ESRCH } ?? true }

    /// Every process now running as `account`.
    public static func all(of account: String = "stagingfs-qemu") -> [SandboxProcess] {
        guard let uid = getpwnam(account)?.pointee.pw_uid else { return [] }
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
        return pids.compactMap { pid in
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }),
                line.split(separator: "\t").dropFirst().first == "\(uid)"
            else { return nil }
            let environment = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))) ?? Data()
            let daemon = environment.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                .first { $0.hasPrefix("STAGINGFS_DAEMON_PID=") }.flatMap { Int32($0.dropFirst("STAGINGFS_DAEMON_PID=".count)) }
            let command = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
            return SandboxProcess(pid: pid, daemonPID: daemon, command: String(decoding: command.map { $0 == 0 ? 32 : $0 }, as: UTF8.self))
        }
    }
}

/// The repository this test support was built from (Tests/StagingTestSupport/Commands.swift → its root), for scripts/.
public var repositoryRoot: String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}

// The qemu-img sandbox tried as an escaping image would: what the confined process can see, read, reach and use,
// run through the same QemuSandbox that image_conversion uses, with a real unprivileged account.
import Foundation
import StagingTestSupport
import SystemPackage
import Testing

@testable import ImportCore

@Suite("The qemu-img sandbox", .serialized)
struct QemuSandboxTests {
    /// One test's files in a root-only directory, as staging's backing directory is.
    final class Scratch {
        let directory = "/tmp/sandbox-tests/\(UUID().uuidString.prefix(8))"

        init() throws {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        deinit { try? FileManager.default.removeItem(atPath: directory) }

        func path(_ name: String) -> String { directory + "/" + name }

        /// A root-owned file of mode 0600, as staged data is.
        func privateFile(_ name: String, _ contents: String) throws -> String {
            let path = path(name)
            try Data(contents.utf8).write(to: URL(fileURLWithPath: path))
            chmod(path, 0o600)
            return path
        }
    }

    static let sandbox = QemuSandbox(configuration: SandboxConfiguration())

    /// Runs a Python program inside the sandbox with `input` and `output`; returns what it printed.
    func runPython(
        _ program: String, input: String, output: String?, maxFileBytes: Int64 = 1 << 20,
        sandbox: QemuSandbox = Self.sandbox
    ) throws(SandboxError) -> String {
        try runCommand(["/usr/bin/python3", "-c", program], input: input, output: output, maxFileBytes: maxFileBytes, sandbox: sandbox)
    }

    func runCommand(
        _ command: [String], input: String, output: String?, maxFileBytes: Int64 = 1 << 20,
        sandbox: QemuSandbox = Self.sandbox
    ) throws(SandboxError) -> String {
        let inputFile = try! FileDescriptor.open(input, .readOnly)
        defer { try? inputFile.close() }
        let outputFile = output.map { try! FileDescriptor.open($0, .readWrite, options: .create, permissions: [.ownerReadWrite]) }
        defer { try? outputFile?.close() }
        return try sandbox.run(command, input: inputFile, output: outputFile, maxFileBytes: maxFileBytes)
    }

    static let probe = """
        import errno, json, os, socket, sys
        seen = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "root": sorted(os.listdir("/")),
                "sandbox": sorted(os.listdir("/sandbox")), "input": open("/sandbox/input").read()}
        def attempt(name, action):
            try:
                action()
                seen[name] = "allowed"
            except OSError as error:
                seen[name] = type(error).__name__
        attempt("secret", lambda: open(sys.argv[1]).read())
        attempt("usrSecret", lambda: open(sys.argv[2]).read())
        attempt("setuid", lambda: os.setuid(0))
        attempt("writeInput", lambda: open("/sandbox/input", "a").write("x"))
        attempt("writeUsr", lambda: open("/usr/stagingfs-sandbox-test", "w"))
        try:
            socket.create_connection(("127.0.0.1", int(sys.argv[3])), timeout=3)
            seen["network"] = "connected"
        except OSError as error:
            seen["network"] = errno.errorcode.get(error.errno, str(error))
        def is_open(fd):
            try:
                os.fstat(fd)
                return True
            except OSError:
                return False
        seen["descriptors"] = [fd for fd in range(3, 1024) if is_open(fd)]
        open("/sandbox/output", "w").write("written inside")
        print(json.dumps(seen))
        """

    @Test(
        "the confined process is the unprivileged account with no capabilities; it sees /usr, /dev and its two files only, reads no root file, has no network")
    func confinement() throws {
        let scratch = try Scratch()
        let input = try scratch.privateFile("input", "the input")
        let secret = try scratch.privateFile("secret", "root's secret")
        // A root-only file the sandbox can see (all of /usr is visible): the account itself must not read it.
        let usrSecret = "/usr/local/share/stagingfs-sandbox-secret-\(UUID().uuidString.prefix(8))"
        try Data("root's secret".utf8).write(to: URL(fileURLWithPath: usrSecret))
        chmod(usrSecret, 0o600)
        defer { unlink(usrSecret) }
        // A server on the host's loopback: reachable from here, not from inside.
        let server = try LoopbackServer()
        defer { server.stop() }
        let output = scratch.path("output")
        let program = Self.probe.replacingOccurrences(of: "sys.argv[1]", with: "'\(secret)'")
            .replacingOccurrences(of: "sys.argv[2]", with: "'\(usrSecret)'").replacingOccurrences(of: "sys.argv[3]", with: "'\(server.port)'")
        let printed = try runPython(program, input: input, output: output)
        let seen = try #require(try JSONSerialization.jsonObject(with: Data(printed.utf8)) as? [String: Any], "\(printed)")
        let account = try Self.sandbox.account()
        #expect(seen["uid"] as? Int == Int(account.uid) && seen["gid"] as? Int == Int(account.gid), "\(seen)")
        #expect(seen["groups"] as? [Int] == [] || seen["groups"] as? [Int] == [Int(account.gid)], "no supplementary group: \(seen)")
        let root = Set(seen["root"] as? [String] ?? [])
        #expect(root.isSubset(of: ["usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32", "dev", "sandbox"]), "\(root)")
        #expect(!root.contains("etc") && !root.contains("tmp") && !root.contains("proc") && !root.contains("root"), "\(root)")
        #expect(seen["sandbox"] as? [String] == ["input", "output"])
        #expect(seen["input"] as? String == "the input")
        // This process holds sockets, pipes and files of its own: none of them reaches the sandbox.
        #expect(seen["descriptors"] as? [Int] == [], "\(seen)")
        #expect(seen["secret"] as? String == "FileNotFoundError", "the host's files are not there")
        #expect(seen["usrSecret"] as? String == "PermissionError", "a visible root-only file is not readable")
        #expect(seen["setuid"] as? String == "PermissionError")
        #expect(seen["writeInput"] as? String == "OSError" || seen["writeInput"] as? String == "PermissionError", "\(seen)")
        #expect(seen["writeUsr"] as? String == "OSError" || seen["writeUsr"] as? String == "PermissionError", "\(seen)")
        // The sandbox's loopback is its own: the host's server is not there.
        #expect(seen["network"] as? String == "ECONNREFUSED", "no network: \(seen)")
        #expect(try run(["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', \(server.port)), timeout=3)"]).succeeded)
        #expect(try String(contentsOfFile: output, encoding: .utf8) == "written inside")
    }

    @Test("after a run the input has its group and mode back and the output belongs to the daemon again")
    func lendingIsReturned() throws {
        let scratch = try Scratch()
        let input = try scratch.privateFile("input", "data")
        let output = scratch.path("output")
        let before = try FileManager.default.attributesOfItem(atPath: input)
        _ = try runPython("print(open('/sandbox/input').read())", input: input, output: output)
        #expect(throws: SandboxError.self) { try runPython("raise SystemExit(3)", input: input, output: output) }
        let after = try FileManager.default.attributesOfItem(atPath: input)
        #expect(after[.groupOwnerAccountID] as? Int == before[.groupOwnerAccountID] as? Int)
        #expect(after[.posixPermissions] as? Int == 0o600)
        let written = try FileManager.default.attributesOfItem(atPath: output)
        #expect(written[.ownerAccountID] as? Int == 0 && written[.groupOwnerAccountID] as? Int == 0)
    }

    @Test("a file lent by a run the daemon never saw end (kill -9) gets its group and mode back at recovery, and a new run lends from what it had")
    func lendingReclaimed() throws {
        let scratch = try Scratch()
        let input = try scratch.privateFile("input", "data")
        let descriptor = try FileDescriptor.open(input, .readOnly)
        defer { try? descriptor.close() }
        let account = try Self.sandbox.account()
        // Lent and never given back, as when the daemon dies during the run.
        _ = try QemuSandbox.Lending(descriptor, toGroup: account.gid)
        var lent = try FileManager.default.attributesOfItem(atPath: input)
        #expect(lent[.groupOwnerAccountID] as? Int == Int(account.gid) && lent[.posixPermissions] as? Int == 0o640)
        // A second run in between lends from the recorded original, not from the lent state.
        let again = try QemuSandbox.Lending(descriptor, toGroup: account.gid)
        #expect(again.group == 0 && again.mode == 0o600)
        try QemuSandbox.Lending.reclaim(descriptor)
        lent = try FileManager.default.attributesOfItem(atPath: input)
        #expect(lent[.groupOwnerAccountID] as? Int == 0 && lent[.posixPermissions] as? Int == 0o600)
        #expect(QemuSandbox.Lending.recorded(descriptor) == nil, "the mark is gone")
    }

    @Test("the wall-clock timeout kills everything the run started")
    func timeout() throws {
        let scratch = try Scratch()
        let input = try scratch.privateFile("input", "data")
        var configuration = SandboxConfiguration()
        configuration.timeoutSeconds = 2
        let token = "timeout-\(UUID().uuidString.prefix(8))"
        let program = "import os, time\nos.fork()\nos.setsid()\ntime.sleep(600) # \(token)"
        #expect {
            try runPython(program, input: input, output: nil, sandbox: QemuSandbox(configuration: configuration))
        } throws: { error in
            if case .timedOut(seconds: 2) = error as? SandboxError { return true } else { return false }
        }
        // Nothing of the account's outlives the run (the kernel may take a moment to reap what was killed).
        waitFor(10) { SandboxProcess.all().allSatisfy { !$0.command.contains(token) } }
        let left = SandboxProcess.all().filter { $0.command.contains(token) }
        #expect(left.isEmpty, "\(left)")
    }

    @Test("address space and file size are bounded")
    func limits() throws {
        let scratch = try Scratch()
        let input = try scratch.privateFile("input", "data")
        var configuration = SandboxConfiguration()
        configuration.addressSpace = 512 << 20
        let memory = try runPython(
            "try:\n    bytearray(1 << 30)\n    print('allocated')\nexcept MemoryError:\n    print('refused')",
            input: input, output: nil, sandbox: QemuSandbox(configuration: configuration))
        #expect(memory == "refused")
        #expect {
            try runCommand(
                ["/usr/bin/dd", "if=/dev/zero", "of=/sandbox/output", "bs=1M", "count=2"], input: input, output: scratch.path("output"), maxFileBytes: 1 << 20)
        } throws: { error in
            if case .fileTooLarge(limit: 1 << 20) = error as? SandboxError { return true } else { return false }
        }
    }

    @Test("with no such account nothing runs: the sandbox is unavailable, never skipped")
    func missingAccount() throws {
        let scratch = try Scratch()
        let input = try scratch.privateFile("input", "data")
        var configuration = SandboxConfiguration()
        configuration.user = "stagingfs-no-such-account"
        #expect {
            try runPython("print('ran')", input: input, output: nil, sandbox: QemuSandbox(configuration: configuration))
        } throws: { error in
            guard case let .unavailable(reason) = error as? SandboxError else { return false }
            return reason.contains("stagingfs-no-such-account") && reason.contains("useradd")
        }
    }

    @Test("a qcow2 naming a root-only host file as its backing file cannot read it through qemu-img convert")
    func backingFileOutOfReach() throws {
        let scratch = try Scratch()
        let secret = try scratch.privateFile("secret.raw", String(repeating: "root's secret ", count: 4096))
        let image = scratch.path("escape.qcow2")
        try makeQcow2WithBackingFile(image, backing: secret)
        chmod(image, 0o600)
        let inputFile = try FileDescriptor.open(image, .readOnly)
        defer { try? inputFile.close() }
        let output = scratch.path("escape.raw")
        let outputFile = try FileDescriptor.open(output, .readWrite, options: .create, permissions: [.ownerReadWrite])
        defer { try? outputFile.close() }
        #expect {
            try QemuImg.convert(inputFile, sourceDriver: "qcow2", into: outputFile, targetDriver: "raw", maxOutputBytes: 1 << 30, sandbox: Self.sandbox)
        } throws: { error in
            guard case let .failed(_, message) = error as? SandboxError else { return false }
            return message.contains(secret) || message.contains("backing")
        }
        let leaked = try Data(contentsOf: URL(fileURLWithPath: output))
        #expect(!String(decoding: leaked, as: UTF8.self).contains("root's secret"))
        // The same image's info, from inside: qemu names the backing file it could not open.
        let info = try? Self.sandbox.run(
            ["/usr/bin/qemu-img", "info", "--output=json", "--backing-chain", "--image-opts", QemuImg.inputOptions(driver: "qcow2")],
            input: inputFile, output: nil, maxFileBytes: 1 << 20)
        #expect(info == nil, "qemu-img info --backing-chain fails when the backing file is out of reach")
    }
}

/// A TCP server on the host's loopback (a Python process) that accepts and drops connections.
final class LoopbackServer {
    let process = Process()
    let port: Int

    init() throws {
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            """
            import socket
            server = socket.socket()
            server.bind(("127.0.0.1", 0))
            server.listen(8)
            print(server.getsockname()[1], flush=True)
            while True:
                server.accept()[0].close()
            """,
        ]
        process.standardOutput = pipe
        try process.run()
        let line = String(decoding: pipe.fileHandleForReading.availableData, as: UTF8.self)
        guard let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw TestSetupError("the loopback server did not start: \(line)") }
        self.port = port
    }

    func stop() {
        // SIGKILL: the test process may have left SIGTERM blocked for its children.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

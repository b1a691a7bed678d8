// The sandbox every qemu-img run happens in: qemu parses untrusted images, so it never runs with the daemon's
// privileges nor sees a file other than its input and its output (docs/image-safety.md, "The qemu-img sandbox").
import CLinux  // xattrs on descriptors
import Foundation
import SystemPackage

/// bubblewrap builds a mount namespace holding /usr (read-only), a minimal /dev, the input (read-only) and the
/// output, with its own pid, network, IPC and UTS namespaces; inside it setpriv drops to the unprivileged account
/// with no capabilities and no new privileges, and prlimit bounds address space, CPU time and file size. The
/// daemon kills the whole process group at the wall-clock timeout; bubblewrap's --die-with-parent kills it if
/// the daemon dies. Files are passed as descriptors, so qemu reaches them without any path of the host.
struct QemuSandbox {
    let configuration: SandboxConfiguration

    /// Paths of the host the command sees: the input and output appear at these.
    static let inputPath = "/sandbox/input"
    static let outputPath = "/sandbox/output"

    struct Account {
        let uid: uid_t
        let gid: gid_t
    }

    /// The account from `[stagingfs] qemu_img_user`; a missing or privileged one is a refusal, never a fallback.
    func account() throws(SandboxError) -> Account {
        guard let entry = getpwnam(configuration.user) else {
            throw .unavailable(
                "the account '\(configuration.user)' ([stagingfs] qemu_img_user) does not exist; create it with "
                    + "`useradd --system --no-create-home --shell /usr/sbin/nologin \(configuration.user)`")
        }
        let account = Account(uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
        guard account.uid != 0, account.gid != 0, account.uid != geteuid() else {
            throw .unavailable(
                "the account '\(configuration.user)' ([stagingfs] qemu_img_user) is privileged (uid \(account.uid), gid \(account.gid)); use a dedicated unprivileged account"
            )
        }
        return account
    }

    /// Runs `command` (absolute paths of the sandbox) with `input` readable at `inputPath` and `output`, when
    /// given, writable at `outputPath`, no file growing past `maxFileBytes`. Returns what it printed (stdout and stderr).
    func run(_ command: [String], input: FileDescriptor, output: FileDescriptor?, maxFileBytes: Int64) throws(SandboxError) -> String {
        let account = try account()
        // The sandbox's account must be able to open the files: the input is lent to its group for the run,
        // the output belongs to it for the run. Both go back to what they were, even when the run fails.
        let lent = try Lending(input, toGroup: account.gid)
        if let output {
            do { try Self.chown(output, account.uid, account.gid) } catch {
                lent.giveBack()
                throw error
            }
        }
        let arguments = sandboxArguments(account: account, hasOutput: output != nil, maxFileBytes: maxFileBytes) + command
        let run = ChildProcess.run(arguments, passing: [input] + (output.map { [$0] } ?? []), timeoutSeconds: configuration.timeoutSeconds)
        let printed = run.output
        // Files left readable or owned by the sandbox's account would outlive the run: that failure comes first.
        if let output { try Self.chown(output, geteuid(), getegid()) }
        try lent.giveBackOrThrow()
        switch run.outcome {
        case .finished(status: 0): return printed
        case .notFound: throw .unavailable("bubblewrap (bwrap) was not found in PATH; install the bubblewrap package (qemu-img never runs unconfined)")
        case .timedOut: throw .timedOut(seconds: configuration.timeoutSeconds)
        case let .notStarted(error): throw .unavailable("spawning bwrap failed: \(error)")
        case .finished(status: 128 + SIGXFSZ): throw .fileTooLarge(limit: maxFileBytes)
        case .finished(status: 128 + SIGXCPU): throw .limitExceeded("it used \(configuration.timeoutSeconds) s of CPU time ([stagingfs] qemu_img_timeout)")
        case let .finished(status):
            // bwrap's own failures (a namespace or mount it could not make) are the sandbox's, not the image's.
            if printed.hasPrefix("bwrap:") { throw .setupFailed(printed) }
            // qemu-img reports a truncate past the file-size bound as an error, not a signal.
            if printed.contains(String(cString: strerror(EFBIG))) { throw .fileTooLarge(limit: maxFileBytes) }
            throw .failed(status: status, message: printed)
        }
    }

    func sandboxArguments(account: Account, hasOutput: Bool, maxFileBytes: Int64) -> [String] {
        var arguments = [
            "bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--clearenv", "--setenv", "PATH", "/usr/bin",
            // Which daemon ran it, for `ps e`: none may outlive it.
            "--setenv", "STAGINGFS_DAEMON_PID", "\(getpid())",
            "--ro-bind", "/usr", "/usr",
        ]
        // Merged-/usr systems have these as links; elsewhere they are directories of system files.
        for directory in ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"] {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: directory) {
                arguments += ["--symlink", target, directory]
            } else if FileManager.default.fileExists(atPath: directory) {
                arguments += ["--ro-bind", directory, directory]
            }
        }
        arguments += ["--dev", "/dev", "--dir", "/sandbox", "--ro-bind-fd", "3", Self.inputPath]
        if hasOutput { arguments += ["--bind-fd", "4", Self.outputPath] }
        arguments += [
            "--chdir", "/sandbox", "--",
            "/usr/bin/setpriv", "--reuid=\(account.uid)", "--regid=\(account.gid)", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all", "--",
            "/usr/bin/prlimit", "--as=\(configuration.addressSpace)", "--cpu=\(configuration.timeoutSeconds)",
            "--fsize=\(maxFileBytes)", "--core=0", "--",
        ]
        return arguments
    }

    static func chown(_ descriptor: FileDescriptor, _ uid: uid_t, _ gid: gid_t) throws(SandboxError) {
        guard fchown(descriptor.rawValue, uid, gid) == 0 else {
            throw .setupFailed("changing the owner of the output to \(uid):\(gid) failed: \(Errno(rawValue: errno))")
        }
    }

    /// Read access to the input for the sandbox's group, for one run. What it had before is kept in an extended
    /// attribute of the file until it is given back, so that a daemon killed meanwhile gives it back at recovery
    /// (`reclaim`). On a filesystem without trusted.* attributes the run goes on unmarked.
    final class Lending {
        static let marker = "trusted.stagingfs.lent"
        let descriptor: FileDescriptor
        let group: gid_t
        let mode: mode_t
        private var returned = false

        init(_ descriptor: FileDescriptor, toGroup gid: gid_t) throws(SandboxError) {
            var status = stat()
            guard fstat(descriptor.rawValue, &status) == 0 else { throw .setupFailed("reading the input's owner failed: \(Errno(rawValue: errno))") }
            self.descriptor = descriptor
            // A mark left by a run the daemon did not see end holds the file's own owner and mode.
            (group, mode) = Self.recorded(descriptor) ?? (status.st_gid, status.st_mode & 0o7777)
            let record = Array("\(group):\(String(mode, radix: 8))".utf8)
            if fsetxattr(descriptor.rawValue, Self.marker, record, record.count, 0) != 0, errno != EOPNOTSUPP {
                throw .setupFailed("marking the input as lent failed: \(Errno(rawValue: errno))")
            }
            guard fchown(descriptor.rawValue, uid_t.max, gid) == 0, fchmod(descriptor.rawValue, (mode | 0o040) & ~0o6000) == 0 else {
                let failure = Errno(rawValue: errno)
                giveBack()
                throw .setupFailed("lending the input to the sandbox's group failed: \(failure)")
            }
        }

        func giveBackOrThrow() throws(SandboxError) {
            guard !returned else { return }
            guard fchown(descriptor.rawValue, uid_t.max, group) == 0, fchmod(descriptor.rawValue, mode) == 0 else {
                throw .setupFailed("giving the input its owner and mode back failed: \(Errno(rawValue: errno))")
            }
            if fremovexattr(descriptor.rawValue, Self.marker) != 0, errno != ENODATA, errno != EOPNOTSUPP {
                throw .setupFailed("removing the input's lending mark failed: \(Errno(rawValue: errno))")
            }
            returned = true
        }

        /// After a failure already being reported: a second error would hide it.
        func giveBack() {
            _ = fchown(descriptor.rawValue, uid_t.max, group)
            _ = fchmod(descriptor.rawValue, mode)
            _ = fremovexattr(descriptor.rawValue, Self.marker)
            returned = true
        }

        /// Gives a file lent by a run that never ended (the daemon was killed) its owner and mode back.
        static func reclaim(_ descriptor: FileDescriptor) throws(SandboxError) {
            guard let (group, mode) = recorded(descriptor) else { return }
            guard fchown(descriptor.rawValue, uid_t.max, group) == 0, fchmod(descriptor.rawValue, mode) == 0,
                fremovexattr(descriptor.rawValue, marker) == 0
            else {
                throw .setupFailed("giving a file lent to qemu-img's sandbox its owner and mode back failed: \(Errno(rawValue: errno))")
            }
        }

        static func recorded(_ descriptor: FileDescriptor) -> (gid_t, mode_t)? {
            var buffer = [UInt8](repeating: 0, count: 64)
            let count = fgetxattr(descriptor.rawValue, marker, &buffer, buffer.count)
            guard count > 0 else { return nil }
            let parts = String(decoding: buffer.prefix(count), as: UTF8.self).split(separator: ":")
            guard parts.count == 2, let group = gid_t(parts[0]), let mode = mode_t(parts[1], radix: 8) else { return nil }
            return (group, mode & 0o7777)
        }
    }
}

/// Why a sandboxed run did not succeed.
enum SandboxError: Error, CustomStringConvertible {
    /// The sandbox cannot be built here (no account, no bubblewrap): nothing was run.
    case unavailable(String)
    case setupFailed(String)
    case timedOut(seconds: Int)
    case limitExceeded(String)
    /// A file it wrote reached the run's file-size bound.
    case fileTooLarge(limit: Int64)
    case failed(status: Int32, message: String)

    var description: String {
        switch self {
        case let .unavailable(reason): return "qemu-img's sandbox is not available: \(reason)"
        case let .setupFailed(reason): return "qemu-img's sandbox could not be set up: \(reason)"
        case let .timedOut(seconds): return "qemu-img was killed after \(seconds) s ([stagingfs] qemu_img_timeout)"
        case let .limitExceeded(what): return "qemu-img was stopped by its sandbox's limits: \(what)"
        case let .fileTooLarge(limit): return "qemu-img was stopped by its sandbox's limits: a file it wrote reached \(limit) bytes"
        case let .failed(status, message): return "qemu-img exited with status \(status): \(message)"
        }
    }
}

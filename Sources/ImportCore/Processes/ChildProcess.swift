// The one way the daemon starts programs (bubblewrap for qemu-img, fusermount3): in its own process group,
// stdin /dev/null, no descriptor but the ones passed, a wall-clock bound, and what it prints kept (clinux_run).
import CLinux
import Foundation
import SystemPackage

public enum ChildProcess {
    /// How a run ended.
    public enum Outcome: Equatable, Sendable {
        /// The exit status, or 128 + the signal that ended it (as a shell reports it).
        case finished(status: Int32)
        /// The bound ran out; the whole process group was killed.
        case timedOut
        /// The program is not in PATH (nor at the absolute path given).
        case notFound
        /// It could not be started at all.
        case notStarted(Errno)
    }

    public struct Result: Sendable {
        public var outcome: Outcome
        /// The first `outputLimit` - 1 bytes of stdout and stderr together, trimmed of surrounding white space.
        public var output: String
    }

    /// Runs `arguments` (argv[0] looked up in PATH) and waits for it. `passing` become its descriptors 3, 4, …
    /// (at most 16); `timeoutSeconds` 0 means no bound. Whatever it left in its process group is killed when it ends.
    public static func run(
        _ arguments: [String], passing descriptors: [FileDescriptor] = [], timeoutSeconds: Int = 0,
        outputLimit: Int = 1 << 16
    ) -> Result {
        precondition(!arguments.isEmpty && outputLimit > 0)
        let joined = arguments.joined(separator: "\0")
        let fds = descriptors.map(\.rawValue)
        var message = [CChar](repeating: 0, count: outputLimit)
        let status = clinux_run(joined, joined.utf8.count, fds, fds.count, Int32(clamping: timeoutSeconds), &message, message.count)
        let output = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let outcome: Outcome
        switch status {
        case 0...: outcome = .finished(status: status)
        case -ETIMEDOUT: outcome = .timedOut
        case -ENOENT: outcome = .notFound
        default: outcome = .notStarted(Errno(rawValue: -status))
        }
        return Result(outcome: outcome, output: output)
    }
}

// The one unit that starts programs, tried as the sandbox and the stale-mount cleanup rely on it.
import Foundation
import StagingTestSupport
import SystemPackage
import Testing

@testable import ImportCore

@Suite("Starting programs (ChildProcess)")
struct ChildProcessTests {
    @Test("exit statuses, a signal as 128 + its number, and a program that is not there")
    func outcomes() {
        #expect(ChildProcess.run(["true"]).outcome == .finished(status: 0))
        #expect(ChildProcess.run(["sh", "-c", "exit 7"]).outcome == .finished(status: 7))
        #expect(ChildProcess.run(["sh", "-c", "kill -TERM $$"]).outcome == .finished(status: 128 + SIGTERM))
        #expect(ChildProcess.run(["no-such-program-\(UUID().uuidString)"]).outcome == .notFound)
    }

    @Test("stdout and stderr are kept together, up to the limit; stdin is /dev/null")
    func output() {
        #expect(ChildProcess.run(["sh", "-c", "echo out; echo err >&2"]).output == "out\nerr")
        #expect(ChildProcess.run(["sh", "-c", "cat; echo end"]).output == "end", "stdin is empty, not the daemon's")
        let flood = ChildProcess.run(["sh", "-c", "yes | head -c 100000"], outputLimit: 1000)
        #expect(flood.outcome == .finished(status: 0), "output past the limit is drained, not left to block the child")
        #expect(flood.output.utf8.count <= 999)
    }

    @Test("only the descriptors passed reach the program, as 3, 4, …; the rest of the daemon's stay behind")
    func descriptors() throws {
        let path = NSTemporaryDirectory() + "child-\(UUID().uuidString)"
        try "lent".write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let lent = try FileDescriptor.open(path, .readOnly)
        let kept = try FileDescriptor.open(path, .readOnly)
        defer {
            try? lent.close()
            try? kept.close()
        }
        let seen = ChildProcess.run(["sh", "-c", "cat <&3; ls /proc/self/fd | sort -n | tr '\\n' ' '"], passing: [lent])
        #expect(seen.outcome == .finished(status: 0))
        // ls sees 0, 1, 2, the lent 3 and its own directory descriptor (4): nothing else of this process's.
        #expect(kept.rawValue > 4)
        #expect(seen.output == "lent0 1 2 3 4", "\(seen.output)")
    }

    @Test("the time bound kills the program and everything it started in its group")
    func timeout() throws {
        let token = "child-timeout-\(UUID().uuidString.prefix(8))"
        let result = ChildProcess.run(["sh", "-c", "sleep 600 & sleep 601; : \(token)"], timeoutSeconds: 1)
        #expect(result.outcome == .timedOut)
        waitFor(10) { !(try? run(["pgrep", "-f", token]))!.succeeded }
        #expect(!(try run(["pgrep", "-f", token])).succeeded, "nothing of the group outlives the bound")
    }
}

// kill -9 of the daemon at random moments of every way of staging, a restart over its own dead mount, and then
// the check an operator would make: no record lies about the bytes (docs/architecture.md, "After a crash").
import Foundation
import StagingTestSupport
import Testing

@Suite("Crash consistency: kill -9 at random moments of every way of staging", .serialized)
struct CrashTests {
    /// The ways operators stage, each as the command a user runs.
    enum Writer: String, CaseIterable {
        case ddFsync = "dd bs=1M conv=fsync"
        case ddNotrunc = "dd conv=notrunc over a staged file"
        case cp
        case rsync = "rsync (temporary name + rename)"
        case rewrite = "rewrite of a staged file (sh >)"
        case truncate = "truncate of a staged file, then append"
        case apiStage = "importctl stage (API)"

        /// Whether the target holds staged data (the old content) before the writer starts.
        var rewritesStagedFile: Bool { [.ddNotrunc, .rewrite, .truncate].contains(self) }
    }

    static let trialsPerWriter = 20
    static let fileSize = 24 << 20

    /// One trial's outcome, as the invariant check saw it.
    struct Trial {
        var writer: Writer
        var number: Int
        var killAfter: Double
        var acknowledged: Bool
        var violations: [String]
    }

    @Test("every writer, killed at a random moment (also in its last 20%), leaves only records that match their bytes")
    func killDuringStaging() throws {
        let seed = ProcessInfo.processInfo.environment["STAGINGFS_CRASH_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
        print("crash: seed \(seed) (replay with STAGINGFS_CRASH_SEED=\(seed))")
        var random = SplitMix(state: seed)
        let alice = try TestUser.alice
        let mount = try StagingMount()
        defer { mount.tearDown() }
        try mount.start()
        let old = mount.sourcePath("old.img"), new = mount.sourcePath("new.img"), mixed = mount.sourcePath("mixed.img")
        try makeRandomFile(old, bytes: Self.fileSize)
        try makeRandomFile(new, bytes: Self.fileSize)
        // What truncate-then-append leaves: the first half of the old content, then the first half of the new.
        let half = Self.fileSize / 2
        #expect(try run(["sh", "-c", "head -c \(half) \(old) > \(mixed) && head -c \(half) \(new) >> \(mixed)"]).succeeded)
        let expected: [Writer: String] = Dictionary(
            uniqueKeysWithValues: try Writer.allCases.map {
                ($0, try digest("sha512sum", of: $0 == .truncate ? mixed : new))
            })
        _ = try mount.importctl(["image-list"])  // copies importctl beside the test's files
        var trials: [Trial] = []
        for writer in Writer.allCases {
            // An uncut run first: the writer works, and its duration spreads the kills over the copy.
            let calibration = try runTrial(writer, number: 0, killAfter: nil, mount: mount, user: alice, expected: expected[writer]!, half: half)
            #expect(calibration.violations.isEmpty, "\(writer.rawValue), uncut: \(calibration.violations)")
            let duration = max(calibration.killAfter, 0.02)
            for number in 1...Self.trialsPerWriter {
                // Half of the kills uniformly over the whole copy, half in its last 20% (close, seal, rename).
                let moment =
                    number.isMultiple(of: 2)
                    ? Double.random(in: 0...(duration * 1.1), using: &random)
                    : Double.random(in: (duration * 0.8)...(duration * 1.05), using: &random)
                let trial = try runTrial(writer, number: number, killAfter: moment, mount: mount, user: alice, expected: expected[writer]!, half: half)
                for violation in trial.violations {
                    print("crash: VIOLATION \(writer.rawValue) trial \(number) (kill after \(String(format: "%.3f", moment)) s, seed \(seed)): \(violation)")
                }
                trials.append(trial)
            }
            let mine = trials.filter { $0.writer == writer }
            print(
                "crash: \(writer.rawValue): \(mine.count) trials (\(mine.filter(\.acknowledged).count) finished before the kill), "
                    + "\(mine.map(\.violations.count).reduce(0, +)) violations; uncut run \(String(format: "%.3f", duration)) s")
        }
        let violations = trials.map(\.violations.count).reduce(0, +)
        print("crash: \(trials.count) trials, \(violations) violations")
        #expect(violations == 0, "seed \(seed)")
        #expect(trials.count >= Writer.allCases.count * 20)
        #expect(trials.contains { !$0.acknowledged } && trials.contains { $0.acknowledged }, "kills landed both during and after copies")
    }

    /// Prepares the target, runs the writer, kills the daemon after `killAfter` seconds (nil: lets it finish and
    /// returns its duration in `killAfter`), restarts over the dead mount, and checks every file.
    func runTrial(
        _ writer: Writer, number: Int, killAfter: Double?, mount: StagingMount, user: TestUser,
        expected: String, half: Int
    ) throws -> Trial {
        let old = mount.sourcePath("old.img"), new = mount.sourcePath("new.img")
        var name = "crash-\(number)-\(UUID().uuidString.prefix(6)).img"
        if writer == .apiStage { name = try createImage(mount, as: user) }
        if writer.rewritesStagedFile {
            #expect(try run(["cp", old, mount.path(name)], as: user).succeeded)
        }
        let target = mount.path(name)
        let command: [String] =
            switch writer {
            case .ddFsync: ["dd", "if=\(new)", "of=\(target)", "bs=1M", "conv=fsync", "status=none"]
            case .ddNotrunc: ["dd", "if=\(new)", "of=\(target)", "bs=64k", "conv=notrunc", "status=none"]
            case .cp: ["cp", new, target]
            case .rsync: ["rsync", new, target]
            case .rewrite: ["sh", "-c", "cat \(new) > \(target)"]
            case .truncate: ["sh", "-c", "truncate -s \(half) \(target) && head -c \(half) \(new) >> \(target)"]
            case .apiStage: ["env", "STAGINGFS_SOCKET=\(mount.socket)", try StagingMount.importctlPath(), "stage", name, "--file", new]
            }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--", "/usr/bin/env"] + command
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let started = Date()
        try process.run()
        var acknowledged = false
        var elapsed = 0.0
        if let killAfter {
            // A writer that ends sooner is killed at once: its release and seal may still be under way.
            while Date().timeIntervalSince(started) < killAfter, process.isRunning { usleep(500) }
            acknowledged = !process.isRunning && process.terminationStatus == 0
            mount.crash()
            let deadline = Date().addingTimeInterval(20)
            while process.isRunning, Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            elapsed = killAfter
            // The restart finds its own dead mount: nobody unmounts it by hand.
            try mount.start()
        } else {
            process.waitUntilExit()
            elapsed = Date().timeIntervalSince(started)
            acknowledged = process.terminationStatus == 0
            if !acknowledged { return Trial(writer: writer, number: number, killAfter: elapsed, acknowledged: false, violations: ["the uncut writer failed"]) }
        }
        var violations = try checkInvariants(mount, as: user)
        if acknowledged {
            let attributes = try stagingAttributes(target, as: user)
            if attributes["user.staging.state"] != "staged" || attributes["user.staging.os_hash_value"] != expected {
                violations.append(
                    "\(name): the writer finished (its close was acknowledged) but the file is \(attributes["user.staging.state"] ?? "missing") with hash \(attributes["user.staging.os_hash_value"]?.prefix(12) ?? "none")"
                )
            }
        }
        // The next trial starts from an empty staging area.
        for (file, _) in try mount.backingFiles(project: "project-a") {
            _ = try run(["rm", "-f", mount.path(file)], as: user)
        }
        return Trial(writer: writer, number: number, killAfter: elapsed, acknowledged: acknowledged, violations: violations)
    }

    /// The operator's check of every file: `staged` means size and sha512 of the bytes there now; nothing is
    /// left `writing` with no writer; exactly one live stagingfs mount at the mountpoint.
    func checkInvariants(_ mount: StagingMount, as user: TestUser) throws -> [String] {
        var violations: [String] = []
        for (name, path) in try mount.backingFiles(project: "project-a") {
            let attributes = try stagingAttributes(mount.path(name), as: user)
            let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
            switch attributes["user.staging.state"] {
            case "staged":
                let actual = try digest("sha512sum", of: path)
                if attributes["user.staging.os_hash_value"] != actual {
                    violations.append(
                        "\(name) is staged with hash \(attributes["user.staging.os_hash_value"]?.prefix(12) ?? "none") but holds \(actual.prefix(12)) (\(size) bytes)"
                    )
                }
                if attributes["user.staging.size"] != String(size) {
                    violations.append("\(name) is staged with size \(attributes["user.staging.size"] ?? "none") but holds \(size) bytes")
                }
            case "incomplete":
                if attributes["user.staging.os_hash_value"] != nil { violations.append("\(name) is incomplete but shows a hash") }
            case let state:
                violations.append("\(name) is \(state ?? "without a record") after the restart, with no writer open")
            }
        }
        let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8).split(separator: "\n")
            .filter { $0.split(separator: " ").dropFirst(4).first.map(String.init) == mount.mountpoint }
        if mounts.count != 1 || !mount.isMounted { violations.append("\(mounts.count) mounts at the mountpoint after the restart") }
        return violations
    }
}

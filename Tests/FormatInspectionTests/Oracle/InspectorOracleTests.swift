// The differential oracle: every image the inspector accepts, qemu-img (in the import's sandbox, under strace) must
// open, as the same format and virtual size, with no backing file, data file or other extent, touching no other path;
// and every image qemu-img writes must be accepted. FUZZ_SECONDS bounds the run (60 s by default),
// STAGINGFS_ORACLE_SEED replays one, STAGINGFS_ORACLE_CASE replays one case of it.
import Foundation
import StagingTestSupport
import Testing

@testable import FormatInspection

@Suite("Inspector oracle", .serialized)
struct InspectorOracleTests {
    /// A root-only directory for the case under test and its trace.
    final class Scratch {
        let directory = "/tmp/stagingfs-oracle/run-\(UUID().uuidString.prefix(8))"
        init() throws {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    static func environment(_ name: String) -> UInt64? {
        ProcessInfo.processInfo.environment[name].flatMap { UInt64($0) ?? ($0.hasPrefix("0x") ? UInt64($0.dropFirst(2), radix: 16) : nil) }
    }

    /// The inspector's whole-file verdict, and a disagreement when streaming gives a different one.
    static func inspect(_ bytes: [UInt8]) -> (InspectionVerdict, String?) {
        let whole = inspectWhole(bytes)
        let (_, streamed) = inspectStreaming(bytes)
        if let streamed, streamed != whole { return (whole, "streaming says \(streamed), whole-file mode \(whole)") }
        return (whole, nil)
    }

    @Test("the oracle itself: strace runs inside the sandbox and catches a backing file qemu tries to open")
    func oracleSeesOtherPaths() throws {
        let scratch = try Scratch()
        let image = scratch.directory + "/backed.qcow2"
        try makeQcow2WithBackingFile(image, backing: "/etc/hostname")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))
        let answer = try QemuOracle.info(bytes, driver: "qcow2", scratch: scratch.directory)
        #expect(answer.foreignAccess.contains { $0.contains("\"/etc/hostname\"") }, "\(answer.foreignAccess)")
        let problems = QemuOracle.disagreements(answer, image: InspectedImage(format: .qcow2, virtualSize: 0), driver: "qcow2")
        #expect(problems.contains { $0.contains("another path") } && problems.contains { $0.contains("another file") }, "\(problems)")
        #expect(inspectWhole(bytes).refusal != nil)
        // And a plain image passes: only libraries, /dev and the input were opened.
        let plain = try QemuOracle.info(OraclePool.load().first { $0.name == "qcow2-1.1-65536" }!.bytes, driver: "qcow2", scratch: scratch.directory)
        #expect(plain.foreignAccess.isEmpty && plain.info?.count == 1, "\(plain.foreignAccess) \(plain.failure ?? "")")
    }

    @Test("no false refusals: every image of the pool (qemu-img's options, partitioned disks, hybrid ISOs) is accepted with qemu's virtual size")
    func baseImagesAccepted() throws {
        let scratch = try Scratch()
        let pool = try OraclePool.load()
        var problems: [String] = []
        for base in pool {
            let (verdict, streaming) = Self.inspect(base.bytes)
            if let streaming { problems.append("\(base.name): \(streaming)") }
            guard let image = verdict.image else {
                problems.append("\(base.name): refused: \(verdict.refusal!)")
                continue
            }
            if image.format != base.format { problems.append("\(base.name): found \(image.format), not \(base.format)") }
            guard let driver = QemuOracle.driver(for: image.format) else { continue }
            let answer = try QemuOracle.info(base.bytes, driver: driver, scratch: scratch.directory)
            problems += QemuOracle.disagreements(answer, image: image, driver: driver).map { "\(base.name): \($0)" }
        }
        print("oracle: \(pool.count) base images, \(problems.count) disagreements")
        #expect(pool.count > 80)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }

    /// What one case came to.
    struct Outcome {
        var accepted = false, ranQemu = false
        /// qemu could not open the image the inspector accepted (a disagreement too).
        var unopened = false
        var disagreement: String?
    }

    /// Mutates a base image by `caseSeed`, inspects it, and asks qemu about it when the inspector accepts it.
    static func runCase(_ caseSeed: UInt64, pool: [BaseImage], busy: [[Int]], scratch: String) throws -> Outcome {
        var rng = SplitMix(state: caseSeed)
        let index = Int.random(in: 0..<pool.count, using: &rng)
        let (bytes, what) = OracleMutation.mutate(pool[index].bytes, format: pool[index].format, busy: busy[index], &rng)
        let label = "\(pool[index].name) [\(what)] (STAGINGFS_ORACLE_CASE=\(caseSeed))"
        var outcome = Outcome()
        let (verdict, streaming) = inspect(bytes)
        if let streaming { outcome.disagreement = "\(label): \(streaming)" }
        guard let image = verdict.image else { return outcome }
        outcome.accepted = true
        guard let driver = QemuOracle.driver(for: image.format) else { return outcome }
        let answer = try QemuOracle.info(bytes, driver: driver, scratch: scratch)
        outcome.ranQemu = true
        outcome.unopened = answer.info == nil
        let problems = QemuOracle.disagreements(answer, image: image, driver: driver)
        if !problems.isEmpty {
            outcome.disagreement = [outcome.disagreement, "\(label): accepted as \(image.format) \(image.virtualSize): \(problems.joined(separator: "; "))"]
                .compactMap { $0 }.joined(separator: "\n")
        }
        return outcome
    }

    /// The run's counts, from both workers.
    final class Tally: @unchecked Sendable {
        let lock = NSLock()
        var cases = 0, accepted = 0, qemuRuns = 0, unopened = 0
        var disagreements: [String] = []
        var errors: [String] = []

        func add(_ outcome: Outcome) {
            lock.withLock {
                cases += 1
                if outcome.accepted { accepted += 1 }
                if outcome.ranQemu { qemuRuns += 1 }
                if outcome.unopened { unopened += 1 }
                if let disagreement = outcome.disagreement { disagreements.append(disagreement) }
            }
        }
    }

    @Test("mutated images: whatever the inspector accepts, qemu-img opens the same way and touches nothing else")
    func mutations() throws {
        let pool = try OraclePool.load()
        let busy = pool.map { OracleMutation.busySectors($0.bytes) }
        let seed = Self.environment("STAGINGFS_ORACLE_SEED") ?? UInt64.random(in: 1...UInt64.max)
        let only = Self.environment("STAGINGFS_ORACLE_CASE")
        let seconds = Self.environment("FUZZ_SECONDS").map(Int.init) ?? 60
        // Two workers, each with its own sequence of case seeds: most of a case's time is qemu-img's, in its sandbox.
        let workers = only == nil ? 2 : 1
        print("oracle: seed \(seed) (STAGINGFS_ORACLE_SEED=\(seed) replays), \(seconds) s (FUZZ_SECONDS), \(workers) workers")
        let deadline = ContinuousClock.now + .seconds(seconds)
        // At least this many cases however slow the machine is: a floor on work, not a timing threshold.
        let minimum = min(1000, 10 * seconds)
        let tally = Tally()
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var rng = SplitMix(state: seed &+ UInt64(worker) &* 0xA076_1D64_78BD_642F)
            do {
                let scratch = try Scratch()
                repeat {
                    tally.add(try Self.runCase(only ?? rng.next(), pool: pool, busy: busy, scratch: scratch.directory))
                } while only == nil && (ContinuousClock.now < deadline || tally.lock.withLock({ tally.cases }) < minimum)
            } catch {
                tally.lock.withLock { tally.errors.append("\(error)") }
            }
        }
        print(
            "oracle: \(tally.cases) cases (\(tally.accepted) accepted, \(tally.cases - tally.accepted) refused), \(tally.qemuRuns) qemu runs "
                + "(\(tally.unopened) could not open the image, each a disagreement), seed \(seed), \(tally.disagreements.count) disagreements")
        for disagreement in tally.disagreements.prefix(200) { print("oracle: disagreement: \(disagreement)") }
        #expect(tally.errors.isEmpty, "\(tally.errors)")
        #expect(tally.disagreements.isEmpty, "seed \(seed):\n\(tally.disagreements.prefix(40).joined(separator: "\n"))")
    }
}

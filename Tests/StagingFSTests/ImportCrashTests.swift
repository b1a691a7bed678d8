// kill -9 of the daemon at random moments of imports (same-filesystem rename, cross-filesystem copy, a qemu-img
// conversion), a restart, and the check: no active image with wrong data, no task left processing, no orphan in
// the store, and staged data intact wherever the image is not active.
import Foundation
import StagingTestSupport
import Testing

@Suite("Crash consistency: kill -9 mid-import", .serialized)
struct ImportCrashTests {
    static let trialsPerKind = 4

    enum Kind: String, CaseIterable {
        case rename = "same filesystem (rename)"
        case copy = "another filesystem (verified copy)"
        case conversion = "image_conversion qcow2 → raw"
    }

    @Test("imports killed at random moments: afterwards every active image matches its hash, nothing is stuck or orphaned")
    func killDuringImport() throws {
        let seed = ProcessInfo.processInfo.environment["STAGINGFS_CRASH_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
        print("import-crash: seed \(seed) (replay with STAGINGFS_CRASH_SEED=\(seed))")
        var random = SplitMix(state: seed)
        var trials = 0, violations: [String] = [], outcomes: [String: Int] = [:]
        for kind in Kind.allCases {
            let body = { (mount: StagingMount) throws in
                let alice = try TestUser.alice
                let source = mount.sourcePath("source")
                let stagedSource: String
                if kind == .conversion {
                    try makeQcow2(source, rawBytes: 48 << 20)
                } else {
                    try makeRandomFile(source, bytes: 96 << 20)
                }
                stagedSource = source
                let sha512 = try digest("sha512sum", of: stagedSource)
                let format = kind == .conversion ? "qcow2" : "raw"
                // An uncut import first: it works, and its duration spreads the kills over the import.
                let first = try self.stage(mount, source: stagedSource, format: format, as: alice)
                let started = Date()
                #expect(try mount.importctl(["import", first, "--wait"], as: alice).succeeded)
                let duration = max(Date().timeIntervalSince(started), 0.05)
                for number in 1...Self.trialsPerKind {
                    let id = try self.stage(mount, source: stagedSource, format: format, as: alice)
                    let moment = Double.random(in: 0...duration, using: &random)
                    #expect(try mount.importctl(["import", id], as: alice).succeeded)
                    usleep(UInt32(moment * 1_000_000))
                    mount.crash()
                    try mount.start()
                    let found = try self.check(mount, stagedHash: sha512)
                    for violation in found {
                        print(
                            "import-crash: VIOLATION \(kind.rawValue) trial \(number) (kill after \(String(format: "%.3f", moment)) s, seed \(seed)): \(violation)"
                        )
                    }
                    violations += found
                    outcomes[try imageStatus(mount, id), default: 0] += 1
                    trials += 1
                }
                print("import-crash: \(kind.rawValue): \(Self.trialsPerKind) trials, uncut import \(String(format: "%.3f", duration)) s")
            }
            switch kind {
            case .rename: try withStagingMount(body)
            case .copy: try withStoreOnTmpfs(size: "2g", body)
            case .conversion: try withStagingMount(config: pluginConfig(["image_conversion"], "[image_conversion]\noutput_format = raw\n"), body)
            }
        }
        print(
            "import-crash: \(trials) trials, \(violations.count) violations; images afterwards: "
                + outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        #expect(violations.isEmpty, "seed \(seed): \(violations)")
        #expect(trials >= 10)
    }

    /// A new image of alice's with `source` copied into the mount as its data.
    func stage(_ mount: StagingMount, source: String, format: String, as user: TestUser) throws -> String {
        let id = try createImage(mount, as: user, diskFormat: format)
        #expect(try run(["cp", source, mount.path(id)], as: user).succeeded)
        return id
    }

    /// Every image and task of the mount, as an operator checks them after a restart.
    func check(_ mount: StagingMount, stagedHash: String) throws -> [String] {
        var violations: [String] = []
        // Recovery ends interrupted tasks at start; give it a moment, but nothing may stay processing.
        var tasks: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(15)
        repeat {
            let listed = try mount.importctl(["task-list", "--json"])
            tasks = (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]]) ?? []
            if !tasks.contains(where: { ["pending", "processing"].contains($0["status"] as? String ?? "") }) { break }
            usleep(50_000)
        } while Date() < deadline
        for task in tasks where ["pending", "processing"].contains(task["status"] as? String ?? "") {
            violations.append("task \(task["id"] ?? "?") of image \(task["image_id"] ?? "?") is still \(task["status"] ?? "?") after the restart")
        }
        let listed = try mount.importctl(["image-list", "--json"])
        let images = (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]]) ?? []
        var active: Set<String> = []
        for image in images {
            guard let id = image["id"] as? String else { continue }
            let status = image["status"] as? String ?? "?"
            if status == "active" {
                active.insert(id)
                let stored = mount.store + "/" + id
                guard FileManager.default.fileExists(atPath: stored) else {
                    violations.append("image \(id) is active but its store file is missing")
                    continue
                }
                let actual = try digest("sha512sum", of: stored)
                if image["os_hash_value"] as? String != actual { violations.append("image \(id) is active with a hash that is not its store file's") }
                let size = (try FileManager.default.attributesOfItem(atPath: stored)[.size] as? Int) ?? -1
                if image["size"] as? Int != size { violations.append("image \(id) is active with size \(image["size"] ?? "?"), its store file has \(size)") }
            } else if status == "importing" {
                violations.append("image \(id) is still importing after the restart")
            } else {
                // Not imported: its staged data must be there, staged, and the bytes that were copied in.
                guard FileManager.default.fileExists(atPath: mount.backingPath(id)) else {
                    violations.append("image \(id) is \(status) and its staged data is gone")
                    continue
                }
                let attributes = try stagingAttributes(mount.path(id))
                let intact = try digest("sha512sum", of: mount.backingPath(id))
                if attributes["user.staging.state"] != "staged" || intact != stagedHash || attributes["user.staging.os_hash_value"] != stagedHash {
                    violations.append("image \(id) is \(status) but its staged data is \(attributes["user.staging.state"] ?? "missing"), not intact")
                }
            }
        }
        // qemu-img's sandbox dies with the daemon, and nothing stays lent to it.
        let orphans = SandboxProcess.all().filter(\.isOrphaned)
        if !orphans.isEmpty { violations.append("processes of the sandbox account outlived the daemon that started them: \(orphans)") }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: mount.backing)) ?? [] {
            let owner = try FileManager.default.attributesOfItem(atPath: mount.backingPath(name))[.groupOwnerAccountID] as? Int
            if owner != 0 { violations.append("staged file \(name) still has group \(owner ?? -1) after the restart (lent to the sandbox)") }
        }
        let stray = storeFiles(mount).filter { !active.contains($0) && $0 != "lost+found" }
        if !stray.isEmpty { violations.append("orphans in the store: \(stray)") }
        return violations
    }
}

// A bounded soak: 50 images staged and imported through two nodes while nodes are killed (-9) and restarted at
// random, ending with the invariant check of a shared staging area.
import Foundation
import StagingTestSupport
import Testing

@Suite("Soak: two nodes, random kill -9 and restart", .serialized)
struct SoakTests {
    enum Progress { case stage, importing, accepted }

    @Test("every image ends active with its hash or queued with intact staged data; no orphan store file, no task left running, no staged file lost")
    func soak() throws {
        let lease = 1.0
        var generator = SystemRandomNumberGenerator()
        // Hashing at import (hash_on_write = false) and a store on another filesystem make imports long enough to be
        // killed in the middle.
        try withTwoNodes(
            lease: lease, extra: "\n[stagingfs]\nhash_on_write = false\n",
            prepare: { a in
                let mounted = try run(["mount", "-t", "tmpfs", "-o", "size=1g,mode=0755", "tmpfs", a.store])
                guard mounted.succeeded else { throw TestSetupError("cannot mount a tmpfs store: \(mounted)") }
            }
        ) { a, b throws in
            defer { _ = try? run(["umount", "-l", a.store]) }
            let nodes = [a, b]
            var images: [(id: String, source: String, sha512: String, progress: Progress)] = []
            for index in 0..<50 {
                let source = a.sourcePath("image-\(index).raw")
                try makeRandomFile(source, bytes: Int.random(in: 4...24, using: &generator) * 1_048_576)
                images.append((try createImage(a, name: "soak-\(index)"), source, try digest("sha512sum", of: source), .stage))
            }
            var kills = 0, down: StagingMount?, downSince = Date()
            let deadline = Date().addingTimeInterval(120)
            while images.contains(where: { $0.progress != .accepted }), Date() < deadline {
                for index in images.indices where images[index].progress != .accepted {
                    let node = nodes.filter { $0 !== down }.randomElement(using: &generator) ?? a
                    let image = images[index]
                    switch image.progress {
                    case .stage:
                        if try run(["cp", image.source, node.path(image.id)]).succeeded { images[index].progress = .importing }
                    case .importing:
                        let result = try node.importctl(["import", image.id])
                        if result.succeeded || result.stderr.contains("is active") || result.stderr.contains("being imported") {
                            images[index].progress = .accepted
                            // Now and then the node dies right after accepting, while its import runs.
                            if result.succeeded, down == nil, Int.random(in: 0..<2, using: &generator) == 0 {
                                node.crash()
                                kills += 1
                                down = node
                                downSince = Date()
                            }
                        } else if result.stderr.contains("stage it first") || result.stderr.contains("incomplete") {
                            images[index].progress = .stage
                        }
                    case .accepted: break
                    }
                    // Chaos: one node down at a time, for a moment, killed at a random point of the work.
                    if let crashed = down, Date().timeIntervalSince(downSince) > 0.5 {
                        try crashed.start()
                        down = nil
                    } else if down == nil, Int.random(in: 0..<4, using: &generator) == 0 {
                        let victim = nodes.randomElement(using: &generator) ?? a
                        victim.crash()
                        kills += 1
                        down = victim
                        downSince = Date()
                    }
                }
            }
            if let crashed = down { try crashed.start() }
            // Every accepted import ends (on its node, or taken over after a kill).
            let settled = try waitFor(60) {
                let tasks = try a.importctl(["task-list", "--json"]).stdout
                return !tasks.contains("\"processing\"") && !tasks.contains("\"pending\"")
            }

            var violations: [String] = [], active = 0, queued = 0, activeIDs: Set<String> = []
            let storeFiles = Set(try FileManager.default.contentsOfDirectory(atPath: a.store))
            for image in images {
                let shown = try b.importctlJSON(["image-show", image.id])
                switch shown["status"] as? String {
                case "active":
                    active += 1
                    activeIDs.insert(image.id)
                    if shown["os_hash_value"] as? String != image.sha512 { violations.append("\(image.id): active with the wrong os_hash_value") }
                    if (try? digest("sha512sum", of: a.store + "/" + image.id)) != image.sha512 { violations.append("\(image.id): store data wrong") }
                case "queued", "uploading":
                    queued += 1
                    if (try? digest("sha512sum", of: a.backingPath(image.id))) != image.sha512, image.progress != .stage {
                        violations.append("\(image.id): \(shown["status"] ?? "") without intact staged data")
                    }
                default:
                    violations.append("\(image.id): status \(shown["status"] ?? "?")")
                }
            }
            for file in storeFiles where !activeIDs.contains(file) { violations.append("orphan store file \(file)") }
            if settled == nil { violations.append("tasks still pending or processing 60 s after the chaos ended") }
            let logs = a.log + b.log
            let reverted = logs.components(separatedBy: "interrupted import reverted").count - 1
            let recorded = logs.components(separatedBy: "import had finished before its node stopped").count - 1
            print(
                "soak: \(images.count) images, 2 nodes, \(kills) kills, \(reverted) interrupted imports reverted and \(recorded) recorded "
                    + "after takeover, \(active) active, \(queued) queued, \(violations.count) violations")
            #expect(violations.isEmpty, "\(violations)")
            #expect(kills > 0, "the soak killed nodes")
            #expect(!images.contains { $0.progress != .accepted }, "every image's import was accepted before the deadline")
        }
    }
}

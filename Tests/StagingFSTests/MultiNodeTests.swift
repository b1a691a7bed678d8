// Several nodes over one staging area: two real daemons, each with its own mount, over one backing directory,
// one image store and one catalog database.
import Foundation
import StagingTestSupport
import Testing

/// A catalog database both nodes use: a new database on the test PostgreSQL server (scripts/start-postgres).
func sharedDatabase() throws -> String {
    try TestPostgres.freshDatabase()
}

/// The test identities plus what makes a mount one node among several.
func nodeConfig(_ node: String, database: String, lease: Double, extra: String = "") -> String {
    StagingMount.defaultConfig + extra + """

        [database]
        connection = \(database)

        [stagingfs]
        node_id = \(node)
        lease_seconds = \(lease)

        """
}

/// Two started nodes, A and B, torn down whatever `body` does. `prepare` runs before they start (e.g. to put the
/// store on another filesystem).
func withTwoNodes(
    lease: Double = 2, extra: String = "", prepare: (StagingMount) throws -> Void = { _ in },
    _ body: (StagingMount, StagingMount) throws -> Void
) throws {
    let database = try sharedDatabase()
    let a = try StagingMount(config: nodeConfig("node-a", database: database, lease: lease, extra: extra))
    let b = try StagingMount(config: nodeConfig("node-b", database: database, lease: lease, extra: extra), sharing: a)
    defer {
        b.tearDown()
        a.tearDown()
    }
    try prepare(a)
    try a.start()
    try b.start()
    try body(a, b)
}

func taskStatus(_ mount: StagingMount, image id: String) throws -> String? {
    let tasks = try JSONSerialization.jsonObject(with: Data(try mount.importctl(["task-list", "--image", id, "--json"]).stdout.utf8)) as? [[String: Any]]
    return tasks?.first?["status"] as? String
}

@Suite("Several nodes over one staging area", .serialized)
struct MultiNodeTests {
    @Test("staged through node A: seen through node B (ls, stat, xattrs, API) and imported there; both nodes list the same images, tasks and nodes")
    func stageHereImportThere() throws {
        let alice = try TestUser.alice
        try withTwoNodes { a, b throws in
            let source = a.sourcePath("disk.raw")
            try makeRandomFile(source, bytes: 3_000_000)
            let sha512 = try digest("sha512sum", of: source)
            let id = try createImage(a, as: alice, diskFormat: "raw")
            #expect(try run(["cp", source, a.path(id)], as: alice).succeeded)

            #expect(try run(["ls", b.mountpoint], as: alice).stdout.contains(id))
            #expect(try run(["stat", "-c", "%s", b.path(id)], as: alice).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "3000000")
            let attributes = try stagingAttributes(b.path(id), as: alice)
            #expect(attributes["user.staging.state"] == "staged")
            #expect(attributes["user.staging.os_hash_value"] == sha512)
            #expect(attributes["user.staging.project_id"] == "project-a")
            #expect(!(try run(["ls", b.mountpoint], as: try TestUser.bob).stdout.contains(id)), "other projects see nothing through B either")
            #expect(try imageStatus(b, id, as: alice) == "uploading")

            let imported = try b.importctlJSON(["import", id, "--wait"], as: alice)
            #expect(imported["status"] as? String == "active")
            #expect(imported["os_hash_value"] as? String == sha512)
            #expect(try digest("sha512sum", of: a.store + "/" + id) == sha512)
            #expect(try a.importctl(["task-list", "--image", id, "--json"], as: alice).stdout.contains("\"success\""))
            #expect(try a.importctl(["image-list", "--json"], as: alice).stdout == (try b.importctl(["image-list", "--json"], as: alice).stdout))
            let nodes = try a.importctl(["node-list", "--json"]).stdout
            #expect(nodes.contains("\"node-a\"") && nodes.contains("\"node-b\"") && !nodes.contains("\"down\""), "\(nodes)")
        }
    }

    @Test("two nodes importing one image at once: one task runs, the other call answers 409")
    func concurrentImports() throws {
        try withTwoNodes { a, b throws in
            let source = a.sourcePath("disk.raw")
            try makeRandomFile(source, bytes: 20_000_000)
            for round in 0..<3 {
                let id = try createImage(a, name: "race-\(round)")
                #expect(try run(["cp", source, b.path(id)]).succeeded)
                let importctl = try StagingMount.importctlPath()
                let race = try python(
                    """
                    import subprocess
                    commands = [['env', 'STAGINGFS_SOCKET=\(a.socket)', '\(importctl)', 'import', '\(id)'],
                                ['env', 'STAGINGFS_SOCKET=\(b.socket)', '\(importctl)', 'import', '\(id)']]
                    running = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands]
                    print(sorted(p.wait() for p in running))
                    """)
                #expect(race.stdout.contains("[0, 6]"), "one accepted, one 409: \(race)")
                #expect(try waitFor(30) { try imageStatus(a, id) == "active" } != nil)
                let tasks = try a.importctl(["task-list", "--image", id, "--json"]).stdout
                #expect(tasks.components(separatedBy: "\"api_image_import\"").count == 2, "exactly one task: \(tasks)")
            }
        }
    }

    @Test(
        "kill -9 of the node running an import: the other node takes the task over within two lease periods and reverts it; nothing is lost, nothing is left in the store"
    )
    func failover() throws {
        let lease = 2.0
        try withTwoNodes(
            lease: lease,
            prepare: { a in
                // The store on another filesystem: the import copies and verifies, so it is still running when A dies.
                let mounted = try run(["mount", "-t", "tmpfs", "-o", "size=1g,mode=0755", "tmpfs", a.store])
                guard mounted.succeeded else { throw TestSetupError("cannot mount a tmpfs store: \(mounted)") }
            }
        ) { a, b throws in
            defer { _ = try? run(["umount", "-l", a.store]) }
            let source = a.sourcePath("big.raw")
            try makeRandomFile(source, bytes: 600 * 1_048_576)
            let sha512 = try digest("sha512sum", of: source)
            let id = try createImage(a)
            #expect(try run(["cp", source, a.path(id)]).succeeded)
            #expect(try a.importctl(["import", id]).succeeded)
            #expect(try waitFor(10) { try taskStatus(b, image: id) == "processing" } != nil)
            a.crash()
            let tookOver = try waitFor(30) { try ["success", "failure"].contains(taskStatus(b, image: id)) }
            let seconds = try #require(tookOver, "node B never ended the task")
            print("failover: node B ended node A's task \(String(format: "%.2f", seconds)) s after the kill (lease \(lease) s)")
            let image = try b.importctlJSON(["image-show", id])
            let storeFiles = try FileManager.default.contentsOfDirectory(atPath: a.store)
            if image["status"] as? String == "active" {
                // A finished before it died: then it is whole.
                #expect(try digest("sha512sum", of: a.store + "/" + id) == sha512)
            } else {
                #expect(image["status"] as? String == "queued")
                #expect(storeFiles.isEmpty, "no orphan or partial file in the store: \(storeFiles)")
                #expect(try digest("sha512sum", of: a.backingPath(id)) == sha512, "the staged data is intact")
                #expect(try b.importctl(["task-list", "--image", id, "--json"]).stdout.contains("node-a stopped"))
                let again = try b.importctlJSON(["import", id, "--wait"])
                #expect(again["status"] as? String == "active")
                #expect(try digest("sha512sum", of: a.store + "/" + id) == sha512)
            }
            #expect(try b.importctl(["node-list", "--json"]).stdout.contains("\"down\""), "node A shows as down")
        }
    }

    @Test("deleting an image on node B while node A is still writing its data leaves the file to its writer")
    func cleanupSparesOtherNodesWriters() throws {
        try withTwoNodes { a, b throws in
            let id = try createImage(a)
            // A writer that holds the file open through node A (no child process: its closing a copy of the
            // descriptor would flush, and a flush by the only writer seals).
            let writer = Process()
            writer.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            writer.arguments = [
                "-c",
                """
                import sys, time
                with open('\(a.path(id))', 'wb') as f:
                    f.write(b'x' * 65536); f.flush()
                    print('ready', flush=True)
                    sys.stdin.readline()
                    f.write(b'y' * 65536)
                """,
            ]
            let input = Pipe(), output = Pipe()
            writer.standardInput = input
            writer.standardOutput = output
            try writer.run()
            #expect(String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).contains("ready"))
            #expect(try b.importctl(["image-delete", id]).succeeded)
            try input.fileHandleForWriting.write(contentsOf: Data("go\n".utf8))
            writer.waitUntilExit()
            #expect(writer.terminationStatus == 0, "the writer's second write succeeded")
            #expect(
                try FileManager.default.attributesOfItem(atPath: a.backingPath(id))[.size] as? Int == 131_072,
                "node B did not remove the file node A was writing")
        }
    }
}

// What every caller relies on from a catalog, asserted against SQLite and a real PostgreSQL alike.
import FormatInspection
import Foundation
import ImportCore
import Logging
import PostgresCatalog
import StagingTestSupport
import Synchronization
import Testing

/// The catalog databases; every conformance test runs once per backend.
enum Backend: String, CustomStringConvertible, CaseIterable {
    case sqlite, postgresql
    var description: String { rawValue }
}

typealias Catalog = StagedFileCatalog & ImageCatalog & ClusterCatalog

/// A new, empty catalog of one backend, and how to open it again; `close` drops it.
final class CatalogFixture: Sendable {
    let backend: Backend
    let location: String
    private let opened = Collected<PostgresCatalog>()

    init(_ backend: Backend) throws {
        self.backend = backend
        switch backend {
        case .sqlite:
            let directory = NSTemporaryDirectory() + "catalog-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            location = directory + "/catalog.sqlite"
        case .postgresql:
            location = try TestPostgres.freshDatabase()
        }
    }

    func open() throws -> any Catalog {
        switch backend {
        case .sqlite:
            return try SQLiteCatalog(path: location)
        case .postgresql:
            let catalog = try PostgresCatalog(url: location, logger: Logger(label: "catalog-tests"))
            opened.append(catalog)
            return catalog
        }
    }

    deinit {
        opened.all.forEach { $0.shutdown() }
        switch backend {
        case .sqlite: try? FileManager.default.removeItem(atPath: (location as NSString).deletingLastPathComponent)
        case .postgresql: try? TestPostgres.drop(location)
        }
    }
}

/// What the threads of a concurrency test collect.
final class Collected<Item: Sendable>: Sendable {
    private let items = Mutex<[Item]>([])
    func append(_ item: Item) { items.withLock { $0.append(item) } }
    var all: [Item] { items.withLock { $0 } }
}

/// Runs `body` on `count` threads at once (not Swift tasks: the catalogs block their callers).
func concurrently(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    let start = DispatchSemaphore(value: 0)
    for index in 0..<count {
        group.enter()
        Thread.detachNewThread {
            start.wait()
            body(index)
            group.leave()
        }
    }
    for _ in 0..<count { start.signal() }
    group.wait()
}

private func file(_ name: String, state: StagedFileState = .staged) -> StagedFile {
    // Whole seconds: dates round-trip through double precision exactly.
    StagedFile(
        name: name, state: state, projectID: "project-a", userID: "alice", ownerUID: 1001, ownerGID: 1002, size: 42,
        hashAlgorithm: .sha512, hashValue: "abc", checksum: "def", message: nil,
        createdAt: Date(timeIntervalSince1970: 1_700_000_000), updatedAt: Date(timeIntervalSince1970: 1_700_000_100))
}

private func task(for image: String, createdAt: Date = Date(timeIntervalSince1970: 1_700_000_000)) -> ImportTask {
    ImportTask(imageID: image, method: "glance-direct", owner: "project-a", userID: "alice", createdAt: createdAt)
}

/// `image` as read back, its `updatedAt` (set from `Date()` on update) compared to the microsecond: an epoch-seconds
/// double does not always return the exact same `Date`.
private func matches(_ read: Image?, _ image: Image) -> Bool {
    guard var read, abs(read.updatedAt.timeIntervalSince(image.updatedAt)) < 1e-6 else { return false }
    read.updatedAt = image.updatedAt
    return read == image
}

@Suite("Catalog conformance")
struct CatalogConformanceTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    // MARK: Staged files

    @Test(
        "conditional saves: a write generation never replaces an import's record; an import holds only the record it checked; of two nodes racing to hold one file, exactly one wins",
        arguments: Backend.allCases)
    func conditionalSaves(_ backend: Backend) throws {
        let fixture = try CatalogFixture(backend)
        let catalog = try fixture.open()
        var staged = file("x")
        staged.sealedInode = 12
        staged.sealedModification = 34
        #expect(try catalog.save(file("new", state: .writing), if: .stateIsNot(.importing)), "no record yet")
        try catalog.save(staged)
        var importing = staged
        importing.state = .importing
        #expect(try catalog.save(importing, if: .unchangedSince(staged)))
        #expect(try !catalog.save(file("x", state: .writing), if: .stateIsNot(.importing)), "writers are refused while importing")
        #expect(try catalog.stagedFile(named: "x")?.state == .importing)
        var resealed = staged
        resealed.sealedModification = 35
        try catalog.save(resealed)
        #expect(try !catalog.save(importing, if: .unchangedSince(staged)), "the file was sealed again since it was checked")
        try catalog.save(staged)
        let other = try fixture.open()
        let wins = Collected<Bool>()
        let (checked, holding) = (staged, importing)
        concurrently(8) { index in
            let catalog = index.isMultiple(of: 2) ? catalog : other
            wins.append((try? catalog.save(holding, if: .unchangedSince(checked))) ?? false)
        }
        #expect(wins.all.filter { $0 }.count == 1, "\(wins.all)")
    }

    @Test(arguments: Backend.allCases)
    func stagedFilesSaveReplaceReadRemove(_ backend: Backend) throws {
        let fixture = try CatalogFixture(backend)
        let catalog = try fixture.open()
        var staged = file("a")
        staged.sealedModification = 1_700_000_000_123_456_789
        staged.sealedInode = UInt64.max - 7  // inode numbers use all 64 bits
        staged.inspection = InspectedImage(format: .qcow2, virtualSize: 1 << 30)
        staged.writerNode = "node-1"
        try catalog.save(staged)
        try catalog.save(file("b", state: .writing))
        #expect(try catalog.stagedFile(named: "a") == staged)
        staged.size = 4096
        staged.inspection = nil
        try catalog.save(staged)
        #expect(try catalog.stagedFile(named: "a") == staged)
        #expect(try catalog.allStagedFiles().map(\.name) == ["a", "b"])
        try catalog.removeStagedFile(named: "b")
        #expect(try catalog.stagedFile(named: "b") == nil)
        #expect(try catalog.allStagedFiles() == [staged])
    }

    @Test(arguments: Backend.allCases)
    func renameReplacesTarget(_ backend: Backend) throws {
        let fixture = try CatalogFixture(backend)
        let catalog = try fixture.open()
        try catalog.save(file("source"))
        try catalog.save(file("target", state: .incomplete))
        try catalog.renameStagedFile(from: "source", to: "target")
        #expect(try catalog.stagedFile(named: "source") == nil)
        #expect(try catalog.stagedFile(named: "target")?.state == .staged)
        #expect(try catalog.allStagedFiles().count == 1)
    }

    // MARK: Images

    @Test(arguments: Backend.allCases)
    func imagesInsertReadListNewestFirst(_ backend: Backend) throws {
        let fixture = try CatalogFixture(backend)
        let catalog = try fixture.open()
        var old = Image(
            name: "old", diskFormat: "qcow2", containerFormat: "bare", owner: "project-a", isProtected: true,
            properties: ["hw_disk_bus": "virtio"], createdAt: Date(timeIntervalSince1970: 1_700_000_000))
        old.size = 10
        old.virtualSize = 20
        old.importTask = "t"
        (old.tags, old.minDisk, old.minRam, old.isHidden) = (["b", "a"], 20, 2048, true)
        let new = Image(name: "new", owner: nil, createdAt: Date(timeIntervalSince1970: 1_700_000_500))
        let gone = Image(name: "gone", status: .deleted, owner: nil, createdAt: Date(timeIntervalSince1970: 1_700_000_900))
        for image in [old, new, gone] { try catalog.insert(image) }
        #expect(try catalog.image(old.id) == old)
        #expect(try catalog.image("missing") == nil)
        #expect(try catalog.images().map(\.name) == ["new", "old"])
    }

    @Test(arguments: Backend.allCases)
    func updateImageAppliesOrLeavesUnchanged(_ backend: Backend) throws {
        let fixture = try CatalogFixture(backend)
        let catalog = try fixture.open()
        let image = Image(name: "i", owner: "p")
        try catalog.insert(image)
        let updated = try catalog.updateImage(image.id) {
            $0.status = .importing; $0.properties["k"] = "v"; $0.tags = ["t"]; $0.minRam = 512
        }
        #expect(matches(try catalog.image(image.id), updated))
        #expect(updated.status == .importing && updated.tags == ["t"] && updated.minRam == 512)
        #expect(throws: ImageError.conflict("no")) {
            try catalog.updateImage(image.id) {
                $0.status = .active; throw ImageError.conflict("no")
            }
        }
        #expect(matches(try catalog.image(image.id), updated))
        #expect(throws: ImageError.self) { try catalog.updateImage("missing") { _ in } }
    }

    // MARK: Tasks

    @Test(arguments: Backend.allCases)
    func taskResaveKeepsClaimedLease(_ backend: Backend) throws {
        let fixture = try CatalogFixture(backend)
        let catalog = try fixture.open()
        var saved = task(for: "image")
        try catalog.save(saved)
        #expect(try catalog.task(saved.id) == saved)
        let claimed = try #require(try catalog.claim(taskID: saved.id, node: "node-1", now: now, leaseUntil: now + 60))
        saved.status = .processing
        saved.message = "copying"
        saved.result = ["image_id": "image"]
        try catalog.save(saved)
        let read = try #require(try catalog.task(saved.id))
        #expect(read.status == .processing && read.message == "copying" && read.result == ["image_id": "image"])
        #expect(read.lease == claimed.lease && read.leaseExpiresAt == now + 60)
    }

    @Test(arguments: Backend.allCases)
    func taskQueriesAndPurge(_ backend: Backend) throws {
        let fixture = try CatalogFixture(backend)
        let catalog = try fixture.open()
        let first = task(for: "x", createdAt: Date(timeIntervalSince1970: 1_700_000_000))
        var second = task(for: "x", createdAt: Date(timeIntervalSince1970: 1_700_000_100))
        second.status = .success
        second.expiresAt = Date(timeIntervalSince1970: 1_700_001_000)
        let other = task(for: "y")
        for saved in [first, second, other] { try catalog.save(saved) }
        #expect(try catalog.tasks(imageID: "x").map(\.id) == [second.id, first.id])
        #expect(try catalog.tasks(imageID: nil).count == 3)
        #expect(try Set(catalog.tasks(status: .pending).map(\.id)) == [first.id, other.id])
        #expect(try catalog.purgeTasks(expiredBefore: Date(timeIntervalSince1970: 1_700_000_999)) == 0)
        #expect(try catalog.purgeTasks(expiredBefore: Date(timeIntervalSince1970: 1_700_001_001)) == 1)
        #expect(try catalog.task(second.id) == nil)
    }

    // MARK: Nodes and leases

    @Test(arguments: Backend.allCases)
    func nodesRegisterHeartbeatListRemove(_ backend: Backend) throws {
        let fixture = try CatalogFixture(backend)
        let catalog = try fixture.open()
        let node = NodeRecord(id: "node-1", host: "a", mountpoint: "/m", startedAt: now, heartbeatAt: now)
        try catalog.register(node)
        try catalog.register(NodeRecord(id: "node-2", host: "b", mountpoint: "/m", startedAt: now, heartbeatAt: now))
        let held = task(for: "i"), finished = task(for: "j"), others = task(for: "k")
        for saved in [held, finished, others] { try catalog.save(saved) }
        _ = try catalog.claim(taskID: held.id, node: "node-1", now: now, leaseUntil: now + 10)
        _ = try catalog.claim(taskID: finished.id, node: "node-1", now: now, leaseUntil: now + 10)
        _ = try catalog.claim(taskID: others.id, node: "node-2", now: now, leaseUntil: now + 10)
        var done = try #require(try catalog.task(finished.id))
        done.status = .success
        try catalog.save(done)
        #expect(try catalog.heartbeat(node: "node-1", now: now + 5, leaseUntil: now + 100) == [held.id])
        #expect(try catalog.task(held.id)?.leaseExpiresAt == now + 100)
        #expect(try catalog.task(finished.id)?.leaseExpiresAt == now + 10)
        #expect(try catalog.task(others.id)?.leaseExpiresAt == now + 10)
        #expect(try catalog.nodes().map(\.id) == ["node-1", "node-2"])
        #expect(try catalog.nodes().first?.heartbeatAt == now + 5)
        try catalog.removeNode("node-2")
        #expect(try catalog.nodes() == [NodeRecord(id: "node-1", host: "a", mountpoint: "/m", startedAt: now, heartbeatAt: now + 5)])
    }

    @Test(arguments: Backend.allCases)
    func claimRules(_ backend: Backend) throws {
        let fixture = try CatalogFixture(backend)
        let catalog = try fixture.open()
        let free = task(for: "i")
        try catalog.save(free)
        #expect(try catalog.claimableTasks(now: now).map(\.id) == [free.id])
        let first = try #require(try catalog.claim(taskID: free.id, node: "node-1", now: now, leaseUntil: now + 60))
        #expect(first.leaseHolder == "node-1" && first.leaseEpoch == 1)
        #expect(try catalog.claimableTasks(now: now + 30).isEmpty)
        #expect(try catalog.claim(taskID: free.id, node: "node-2", now: now + 30, leaseUntil: now + 90) == nil)
        let again = try #require(try catalog.claim(taskID: free.id, node: "node-1", now: now + 30, leaseUntil: now + 90))
        #expect(again.leaseEpoch == 2)
        #expect(try catalog.claimableTasks(now: now + 91).map(\.id) == [free.id])
        let taken = try #require(try catalog.claim(taskID: free.id, node: "node-2", now: now + 91, leaseUntil: now + 150))
        #expect(taken.leaseHolder == "node-2" && taken.leaseEpoch == 3)
        var finished = taken
        finished.status = .failure
        try catalog.save(finished)
        #expect(try catalog.claim(taskID: free.id, node: "node-1", now: now + 1000, leaseUntil: now + 1060) == nil)
        #expect(try catalog.claimableTasks(now: now + 1000).isEmpty)
        #expect(try catalog.claim(taskID: "missing", node: "node-1", now: now, leaseUntil: now + 60) == nil)
    }

    @Test(arguments: Backend.allCases)
    func updateImageHoldingLease(_ backend: Backend) throws {
        let fixture = try CatalogFixture(backend)
        let catalog = try fixture.open()
        let image = Image(name: "i", owner: "p")
        try catalog.insert(image)
        let saved = task(for: image.id)
        try catalog.save(saved)
        let mine = try #require(try catalog.claim(taskID: saved.id, node: "node-1", now: now, leaseUntil: now + 60)?.lease)
        let updated = try catalog.updateImage(image.id, holding: mine) { $0.status = .importing }
        #expect(updated.status == .importing)
        _ = try #require(try catalog.claim(taskID: saved.id, node: "node-2", now: now + 61, leaseUntil: now + 120))
        #expect(throws: CatalogError.self) { try catalog.updateImage(image.id, holding: mine) { $0.status = .active } }
        #expect(try catalog.image(image.id)?.status == .importing)
    }

    // MARK: Concurrency and migrations

    @Test(arguments: Backend.allCases)
    func concurrentClaimsHaveOneWinner(_ backend: Backend) throws {
        let fixture = try CatalogFixture(backend)
        let catalog = try fixture.open()
        let contested = task(for: "i")
        try catalog.save(contested)
        let winners = Collected<String>()
        let failures = Collected<String>()
        let now = self.now
        concurrently(8) { index in
            do {
                if let won = try catalog.claim(taskID: contested.id, node: "node-\(index)", now: now, leaseUntil: now + 60) {
                    winners.append(won.leaseHolder ?? "")
                }
            } catch { failures.append("\(error)") }
        }
        #expect(failures.all == [])
        let won = winners.all
        #expect(won.count == 1)
        #expect(try catalog.task(contested.id)?.leaseHolder == won.first)
        #expect(try catalog.task(contested.id)?.leaseEpoch == 1)
    }

    @Test(arguments: Backend.allCases)
    func concurrentUpdatesLoseNothing(_ backend: Backend) throws {
        let fixture = try CatalogFixture(backend)
        let catalog = try fixture.open()
        let image = Image(name: "i", owner: "p", properties: ["counter": "0"])
        try catalog.insert(image)
        let failures = Collected<String>()
        concurrently(8) { _ in
            for _ in 0..<10 {
                do {
                    try catalog.updateImage(image.id) { $0.properties["counter"] = String(Int($0.properties["counter"] ?? "")! + 1) }
                } catch { failures.append("\(error)") }
            }
        }
        #expect(failures.all == [])
        #expect(try catalog.image(image.id)?.properties["counter"] == "80")
    }

    @Test(arguments: Backend.allCases)
    func migrationsRunOnceWhoeverOpensFirst(_ backend: Backend) throws {
        let fixture = try CatalogFixture(backend)
        let errors = Collected<String>()
        concurrently(backend == .sqlite ? 1 : 4) { _ in
            do { _ = try fixture.open() } catch { errors.append("\(error)") }
        }
        #expect(errors.all == [])
        try fixture.open().save(file("a"))
        #expect(try fixture.open().stagedFile(named: "a") == file("a"))
    }

    @Test("an unreachable PostgreSQL server is a clear error that never shows the password")
    func unreachableServer() throws {
        do {
            _ = try PostgresCatalog(url: "postgresql://glance:s3cret@127.0.0.1:1/staging", logger: Logger(label: "catalog-tests"))
            Issue.record("connected to port 1")
        } catch {
            let message = "\(error)"
            #expect(message.hasPrefix("cannot connect to the PostgreSQL catalog postgresql://glance:***@127.0.0.1:1/staging: "))
            #expect(!message.contains("s3cret"))
        }
    }
}

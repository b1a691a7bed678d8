// The staging rules without a mount: a real backing directory, a real SQLite catalog, injected I/O faults.
import Foundation
import Logging
import StagingTestSupport
import SystemPackage
import Testing

@testable import ImportCore

/// A real backing directory whose writes fail with `errno` once `budget` bytes were written: the seam's purpose.
final class FailingBackingStore: BackingStore, @unchecked Sendable {
    let real: BackingDirectory
    let failure: Errno
    private var budget: Int
    /// Called before each rename reaches the directory: what a crash at that moment would leave.
    var beforeRename: (@Sendable (String, String) -> Void)?

    init(_ real: BackingDirectory, failing failure: Errno, after budget: Int) {
        self.real = real
        self.failure = failure
        self.budget = budget
    }

    func write(_ fd: FileDescriptor, _ data: Data, at offset: Int64) throws(Errno) {
        guard budget >= data.count else { throw failure }
        budget -= data.count
        try real.write(fd, data, at: offset)
    }

    func startWriteback(_ fd: FileDescriptor, offset: Int64, count: Int64) { real.startWriteback(fd, offset: offset, count: count) }
    func attributes(of name: String) throws(Errno) -> BackingAttributes { try real.attributes(of: name) }
    func directoryAttributes() throws(Errno) -> BackingAttributes { try real.directoryAttributes() }
    func attributes(of fd: FileDescriptor) throws(Errno) -> BackingAttributes { try real.attributes(of: fd) }
    func names() throws(Errno) -> [String] { try real.names() }
    func open(_ name: String, access: FileDescriptor.AccessMode, truncate: Bool, sync: Bool, createMode: UInt32?) throws(Errno) -> FileDescriptor {
        try real.open(name, access: access, truncate: truncate, sync: sync, createMode: createMode)
    }
    func unlink(_ name: String) throws(Errno) { try real.unlink(name) }
    func externalPath(of name: String) -> String { real.externalPath(of: name) }
    func rename(_ source: String, to target: String, replace: Bool) throws(Errno) {
        beforeRename?(source, target)
        try real.rename(source, to: target, replace: replace)
    }
    func move(_ name: String, to directory: FileDescriptor, as target: String) throws(Errno) { try real.move(name, to: directory, as: target) }
    func move(_ name: String, from directory: FileDescriptor, as target: String) throws(Errno) { try real.move(name, from: directory, as: target) }
    func setTimes(of name: String, access: TimeChange?, modification: TimeChange?) throws(Errno) {
        try real.setTimes(of: name, access: access, modification: modification)
    }
    func setMode(of name: String, to mode: UInt32) throws(Errno) { try real.setMode(of: name, to: mode) }
    func truncate(_ fd: FileDescriptor, to size: Int64) throws(Errno) { try real.truncate(fd, to: size) }
    func read(_ fd: FileDescriptor, at offset: Int64, count: Int) throws(Errno) -> Data { try real.read(fd, at: offset, count: count) }
    func sync(_ fd: FileDescriptor, dataOnly: Bool) throws(Errno) { try real.sync(fd, dataOnly: dataOnly) }
    func filesystemStats() throws(Errno) -> FilesystemStats { try real.filesystemStats() }
}

/// A temporary staging area: backing directory and catalog in a fresh folder.
struct Fixture {
    let root: String
    let backing: BackingDirectory
    let catalog: SQLiteCatalog
    var configuration: StagingConfiguration

    static let alice = Caller(uid: 50_001, gid: 50_001, pid: 1)
    static let bob = Caller(uid: 50_002, gid: 50_002, pid: 1)
    static let stranger = Caller(uid: 50_003, gid: 50_003, pid: 1)
    static let service = Caller(uid: getuid(), gid: getgid(), pid: 1)

    init(quota: StagingQuota = .unlimited) throws {
        root = NSTemporaryDirectory() + "stagingarea-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root + "/backing", withIntermediateDirectories: true)
        backing = try BackingDirectory(path: root + "/backing")
        catalog = try SQLiteCatalog(path: root + "/catalog.sqlite")
        configuration = StagingConfiguration(
            backingDirectory: root + "/backing",
            identityMap: IdentityMap(
                serviceUID: getuid(),
                rules: [
                    IdentityRule(name: "alice", match: .uid(50_001), identity: Identity(userID: "alice", projectID: "a", roles: ["member"])),
                    IdentityRule(name: "bob", match: .uid(50_002), identity: Identity(userID: "bob", projectID: "b", roles: ["member"])),
                ]),
            defaultQuota: quota)
    }

    func area(backing store: (any BackingStore)? = nil) throws -> StagingArea {
        try StagingArea(configuration: configuration, backing: store ?? backing, catalog: catalog, logger: Logger(label: "test"))
    }

    func sha512(_ data: Data) -> String { referenceDigest("sha512sum", of: data) }
}

@Suite("StagingArea")
struct StagingAreaTests {
    func write(_ area: StagingArea, _ name: String, _ chunks: [(Int64, Data)], as caller: Caller) throws -> StagedFile? {
        let (handle, _) = try area.create(
            try StagedName(name), mode: 0o644, exclusive: false,
            request: OpenRequest(read: true, write: true), caller: caller)
        for (offset, data) in chunks { _ = try area.write(handle, data, at: offset) }
        area.flush(handle)
        area.release(handle)
        return area.stagedFile(named: name)
    }

    @Test("sequential writes are hashed as they arrive; the record is persisted")
    func sequential() throws {
        let fixture = try Fixture()
        let area = try fixture.area()
        defer { area.shutdown() }
        let data = Data((0..<2_500_000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        let chunks = stride(from: 0, to: data.count, by: 1_048_576).map { (Int64($0), data[$0..<min(data.count, $0 + 1_048_576)]) }
        let file = try write(area, "image.raw", chunks, as: Fixture.alice)
        #expect(file?.state == .staged)
        #expect(file?.size == 2_500_000)
        #expect(file?.hashValue == fixture.sha512(data))
        #expect(file?.projectID == "a")
        let persisted = try fixture.catalog.stagedFile(named: "image.raw")
        #expect(persisted?.state == .staged && persisted?.size == file?.size && persisted?.hashValue == file?.hashValue)
        #expect(persisted?.checksum == file?.checksum && persisted?.projectID == "a" && persisted?.userID == "alice")
        #expect(area.usage(ofProject: "a") == (2_500_000, 1))
    }

    @Test("an out-of-order write marks the digest stale and the seal recomputes it")
    func outOfOrder() throws {
        let fixture = try Fixture()
        let area = try fixture.area()
        defer { area.shutdown() }
        let a = Data(repeating: 0xaa, count: 1000), b = Data(repeating: 0xbb, count: 1000)
        let file = try write(area, "x", [(1000, b), (0, a)], as: Fixture.alice)
        #expect(file?.hashValue == fixture.sha512(a + b))
    }

    @Test("another project's file is invisible; an unmapped caller is refused")
    func isolation() throws {
        let fixture = try Fixture()
        let area = try fixture.area()
        defer { area.shutdown() }
        _ = try write(area, "alice.img", [(0, Data([1, 2, 3]))], as: Fixture.alice)
        #expect(throws: StagingError.notFound(name: "alice.img")) { try area.lookup(try StagedName("alice.img"), caller: Fixture.bob) }
        #expect(try area.list(caller: Fixture.bob).isEmpty)
        #expect(try area.list(caller: Fixture.alice).map(\.0.shown) == ["alice.img"])
        #expect(try area.list(caller: Fixture.service).map(\.0.shown) == ["alice.img"])
        #expect(throws: StagingError.accessDenied(action: .list, rule: "caller is not in the identity map")) {
            try area.list(caller: Fixture.stranger)
        }
        #expect(throws: StagingError.accessDenied(action: .write, rule: "file belongs to another project")) {
            try area.create(try StagedName("alice.img"), mode: 0o644, exclusive: false, request: OpenRequest(read: false, write: true), caller: Fixture.bob)
        }
    }

    @Test("a write that crosses the quota fails, earlier bytes stay, and the file seals incomplete")
    func quota() throws {
        let fixture = try Fixture(quota: StagingQuota(bytes: 1500, files: 0))
        let area = try fixture.area()
        defer { area.shutdown() }
        let (handle, _) = try area.create(
            try StagedName("q"), mode: 0o644, exclusive: true, request: OpenRequest(read: false, write: true), caller: Fixture.alice)
        #expect(try area.write(handle, Data(repeating: 1, count: 1000), at: 0) == 1000)
        #expect(throws: StagingError.quotaExceeded(projectID: "a", limit: "1500 bytes, 1000 in use")) {
            try area.write(handle, Data(repeating: 2, count: 1000), at: 1000)
        }
        area.release(handle)
        let file = area.stagedFile(named: "q")
        #expect(file?.state == .incomplete)
        #expect(file?.size == 1000)
        #expect(try Data(contentsOf: URL(fileURLWithPath: fixture.root + "/backing/q")) == Data(repeating: 1, count: 1000))
    }

    @Test("an I/O error from the backing store fails that write and the file seals incomplete", arguments: [Errno.noSpace, Errno.ioError])
    func injectedFault(errno: Errno) throws {
        let fixture = try Fixture()
        let area = try fixture.area(backing: FailingBackingStore(fixture.backing, failing: errno, after: 3000))
        defer { area.shutdown() }
        let (handle, _) = try area.create(
            try StagedName("f"), mode: 0o644, exclusive: true, request: OpenRequest(read: false, write: true), caller: Fixture.alice)
        #expect(try area.write(handle, Data(repeating: 1, count: 3000), at: 0) == 3000)
        #expect(throws: StagingError.system(errno, context: "write f")) { try area.write(handle, Data(repeating: 2, count: 10), at: 3000) }
        area.release(handle)
        #expect(area.stagedFile(named: "f")?.state == .incomplete)
        #expect(area.stagedFile(named: "f")?.size == 3000)
        #expect(area.usage(ofProject: "a").bytes == 3000)
    }

    @Test(
        "after a crash, files left writing become incomplete and vanished files lose their record; a project's free-named files from before namespaces move into its namespace"
    )
    func recovery() throws {
        let fixture = try Fixture()
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: fixture.root + "/backing/half.img"))
        try fixture.catalog.save(
            StagedFile(name: "half.img", state: .writing, projectID: "a", userID: "alice", ownerUID: 1, ownerGID: 1, hashAlgorithm: .sha512))
        try fixture.catalog.save(
            StagedFile(name: "gone.img", state: .staged, projectID: "a", userID: "alice", ownerUID: 1, ownerGID: 1, size: 9, hashAlgorithm: .sha512))
        // A start that crashed between moving a file and moving its record.
        try FileManager.default.createDirectory(atPath: fixture.root + "/backing/.projects/a", withIntermediateDirectories: true)
        try Data([4, 5]).write(to: URL(fileURLWithPath: fixture.root + "/backing/.projects/a/moved.img"))
        try fixture.catalog.save(
            StagedFile(name: "moved.img", state: .writing, projectID: "a", userID: "alice", ownerUID: 1, ownerGID: 1, hashAlgorithm: .sha512))
        let area = try fixture.area()
        defer { area.shutdown() }
        let half = try StagedName("half.img").placed(inProject: "a").value
        #expect(FileManager.default.fileExists(atPath: fixture.root + "/backing/" + half))
        #expect(area.stagedFile(named: "half.img") == nil)
        #expect(area.stagedFile(named: half)?.state == .incomplete)
        #expect(area.stagedFile(named: half)?.size == 3)
        #expect(try fixture.catalog.stagedFile(named: half)?.state == .incomplete)
        #expect(try fixture.catalog.stagedFile(named: "gone.img") == nil)
        #expect(try fixture.catalog.stagedFile(named: "moved.img") == nil)
        #expect(area.stagedFile(named: ".projects/a/moved.img")?.size == 2)
        #expect(area.usage(ofProject: "a") == (5, 2))
    }

    @Test("rename moves the record; replacing a file frees its quota")
    func renameReplaces() throws {
        let fixture = try Fixture()
        let area = try fixture.area()
        defer { area.shutdown() }
        _ = try write(area, "tmp", [(0, Data(repeating: 1, count: 100))], as: Fixture.alice)
        _ = try write(area, "final", [(0, Data(repeating: 2, count: 50))], as: Fixture.alice)
        try area.rename(try StagedName("tmp"), to: try StagedName("final"), replace: true, caller: Fixture.alice)
        #expect(area.stagedFile(named: "tmp") == nil)
        #expect(area.stagedFile(named: "final")?.size == 100)
        #expect(try fixture.catalog.stagedFile(named: "final")?.size == 100)
        #expect(area.usage(ofProject: "a") == (100, 1))
        #expect(throws: StagingError.exists(name: "final")) {
            _ = try write(area, "other", [], as: Fixture.alice)
            try area.rename(try StagedName("other"), to: try StagedName("final"), replace: false, caller: Fixture.alice)
        }
    }
}

@Suite("SQLite catalog")
struct SQLiteCatalogTests {
    @Test("records round-trip, rename replaces, and reopening keeps them (migrations run once)")
    func roundTrip() throws {
        let path = NSTemporaryDirectory() + "catalog-\(UUID().uuidString).sqlite"
        let file = StagedFile(
            name: "a", state: .staged, projectID: "p", userID: "u", ownerUID: 7, ownerGID: 8, size: 42,
            hashAlgorithm: .sha256, hashValue: "h", checksum: "c", message: "m",
            createdAt: Date(timeIntervalSince1970: 1000), updatedAt: Date(timeIntervalSince1970: 2000))
        do {
            let catalog = try SQLiteCatalog(path: path)
            try catalog.save(file)
            var other = file
            other.name = "b"
            try catalog.save(other)
            try catalog.renameStagedFile(from: "a", to: "b")
            #expect(try catalog.allStagedFiles().map(\.name) == ["b"])
        }
        let reopened = try SQLiteCatalog(path: path)
        var expected = file
        expected.name = "b"
        #expect(try reopened.stagedFile(named: "b") == expected)
        try reopened.removeStagedFile(named: "b")
        #expect(try reopened.allStagedFiles().isEmpty)
    }

    @Test("an unusable path is a clear error")
    func unusablePath() {
        #expect {
            _ = try SQLiteCatalog(path: "/nonexistent-dir/catalog.sqlite")
        } throws: { error in
            String(describing: error).contains("/nonexistent-dir/catalog.sqlite") && String(describing: error).contains("state directory")
        }
    }
}

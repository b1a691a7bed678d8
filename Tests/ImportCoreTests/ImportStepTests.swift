// Each step of the import flow on its own: its execute and its revert called directly against a real staging
// area, store and SQLite catalog, checking the effect and what it logged.
import Foundation
import Logging
import StagingTestSupport
import Synchronization
import Testing

@testable import ImportCore

/// A log handler that keeps what was logged, as swift-log recommends for tests.
final class RecordedLog: Sendable {
    struct Line: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }

    private let stored = Mutex<[Line]>([])
    var lines: [Line] { stored.withLock { $0 } }

    var logger: Logger { Logger(label: "test") { _ in Handler(log: self) } }

    func contains(_ level: Logger.Level, _ message: String, _ metadata: [String: String] = [:]) -> Bool {
        lines.contains { line in
            line.level == level && line.message.contains(message) && metadata.allSatisfy { line.metadata[$0.key] == $0.value }
        }
    }

    struct Handler: LogHandler {
        let log: RecordedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }.mapValues { "\($0)" }
            log.stored.withLock { $0.append(Line(level: event.level, message: event.message.description, metadata: merged)) }
        }
    }
}

@Suite("Import steps, one by one", .serialized)
struct ImportStepTests {
    typealias Setup = ImportControllerTests.Setup

    /// An image of alice's, staged with `data` and locked by a task this node holds.
    func locked(_ setup: Setup, _ data: Data = Data(repeating: 5, count: 70_000)) throws -> (Image, TaskLease) {
        let (image, task) = try ImportControllerTests().importingImage(setup, data: data)
        return (image, try #require(task.lease))
    }

    func sha512(_ data: Data) -> String { referenceDigest("sha512sum", of: data) }

    @Test("verify-image-lock: passes while the task holds the lock, refuses once another does; its revert releases only its own lock")
    func verifyImageLock() throws {
        let setup = try Setup()
        defer { setup.shutdown() }
        let (image, lease) = try locked(setup)
        let log = RecordedLog()
        let context = setup.context(image.id, lease: lease, logger: log.logger)
        try VerifyImageLock().execute(context)

        _ = try setup.fixture.catalog.updateImage(image.id) { $0.importTask = "another-task" }
        #expect(throws: ImportFailure.lockLost(imageID: image.id, taskID: lease.taskID, holder: "another-task")) {
            try VerifyImageLock().execute(context)
        }
        VerifyImageLock().revert(context)
        #expect(try setup.fixture.catalog.image(image.id)?.importTask == "another-task", "another task's lock is left alone")
        #expect(log.contains(.info, "import lock already released or taken over", ["image.id": image.id, "task.id": lease.taskID]))

        _ = try setup.fixture.catalog.updateImage(image.id) { $0.importTask = lease.taskID }
        VerifyImageLock().revert(context)
        let released = try #require(try setup.fixture.catalog.image(image.id))
        #expect(released.importTask == nil && released.status == .queued)
    }

    @Test("hold-staged-data: the file becomes importing and no handle may write it; its revert gives it back")
    func holdStagedData() throws {
        let setup = try Setup()
        defer { setup.shutdown() }
        let (image, lease) = try locked(setup)
        let context = setup.context(image.id, lease: lease)
        try HoldStagedData().execute(context)
        #expect(context.staged?.state == .importing)
        #expect(setup.area.stagedFile(named: image.id)?.state == .importing)
        #expect(throws: StagingError.busy(name: image.id)) {
            try setup.area.open(try StagedName(image.id), request: OpenRequest(read: false, write: true), caller: Fixture.alice)
        }
        HoldStagedData().revert(context)
        #expect(setup.area.stagedFile(named: image.id)?.state == .staged)
    }

    @Test("inspect-staged-data: takes format and size from the bytes; data that is not the declared disk_format is refused")
    func inspectStagedData() throws {
        let setup = try Setup()
        defer { setup.shutdown() }
        let (image, lease) = try locked(setup)
        let context = setup.context(image.id, lease: lease)
        try InspectStagedData().execute(context)
        #expect(context.inspection?.format == .raw && context.size == 70_000 && context.diskFormat == "raw")

        _ = try setup.fixture.catalog.updateImage(image.id) { $0.diskFormat = "qcow2" }
        let refused = setup.context(image.id, lease: lease)
        #expect(throws: ImportFailure.self) { try InspectStagedData().execute(refused) }
        #expect(refused.inspection == nil, "nothing of a refused file is adopted")
    }

    @Test("ensure-digests: reuses the hashes computed while staging for the staged data, computes them for anything else")
    func ensureDigests() throws {
        let setup = try Setup()
        defer { setup.shutdown() }
        let data = Data((0..<90_000).map { UInt8($0 % 251) })
        let (image, lease) = try locked(setup, data)
        let context = setup.context(image.id, lease: lease)
        try HoldStagedData().execute(context)
        try EnsureDigests().execute(context)
        #expect(context.hashes[.sha512] == sha512(data))
        #expect(context.hashes[.md5] == referenceDigest("md5sum", of: data))
        HoldStagedData().revert(context)
    }

    @Test("promote-to-store: the data is in the store and gone from staging; its revert moves it back, staged, the store empty")
    func promoteToStore() throws {
        let setup = try Setup()
        defer { setup.shutdown() }
        let data = Data(repeating: 9, count: 40_000)
        let (image, lease) = try locked(setup, data)
        let context = setup.context(image.id, lease: lease)
        try HoldStagedData().execute(context)
        try EnsureDigests().execute(context)
        try PromoteToStore().execute(context)
        #expect(context.promotion == .renamed)
        #expect(setup.store.contains(image.id))
        #expect(try Data(contentsOf: URL(fileURLWithPath: setup.store.location(of: image.id))) == data)
        #expect(!FileManager.default.fileExists(atPath: setup.fixture.root + "/backing/" + image.id))

        PromoteToStore().revert(context)
        #expect(!setup.store.contains(image.id))
        #expect(setup.area.stagedFile(named: image.id)?.state == .staged)
        #expect(try Data(contentsOf: URL(fileURLWithPath: setup.fixture.root + "/backing/" + image.id)) == data)
    }

    @Test("activate-image: size, checksum, hash and active in one change that re-checks lock and lease; a lost lease changes nothing")
    func activateImage() throws {
        let setup = try Setup()
        defer { setup.shutdown() }
        let data = Data(repeating: 2, count: 30_000)
        let (image, lease) = try locked(setup, data)
        let superseded = setup.context(image.id, lease: TaskLease(taskID: lease.taskID, holder: lease.holder, epoch: lease.epoch + 1))
        superseded.hashes = [.sha512: sha512(data), .md5: "x"]
        #expect(throws: ImportFailure.leaseLost(taskID: lease.taskID, node: lease.holder)) { try ActivateImage().execute(superseded) }
        #expect(try setup.fixture.catalog.image(image.id)?.status == .importing)

        let context = setup.context(image.id, lease: lease)
        try InspectStagedData().execute(context)
        try EnsureDigests().execute(context)
        try ActivateImage().execute(context)
        let active = try #require(try setup.fixture.catalog.image(image.id))
        #expect(active.status == .active && active.importTask == nil)
        #expect(active.size == 30_000 && active.virtualSize == context.inspection?.virtualSize)
        #expect(active.osHashAlgo == "sha512" && active.osHashValue == sha512(data))
        #expect(active.checksum == referenceDigest("md5sum", of: data))
    }

    @Test("release-staged-data: after a promotion the staged file is forgotten and its quota returned")
    func releaseStagedData() throws {
        let setup = try Setup()
        defer { setup.shutdown() }
        let (image, lease) = try locked(setup)
        #expect(setup.area.usage(ofProject: "a").bytes == 70_000)
        let context = setup.context(image.id, lease: lease)
        for step: any ImportStep in [HoldStagedData(), EnsureDigests(), PromoteToStore(), ReleaseStagedData()] { try step.execute(context) }
        #expect(setup.area.stagedFile(named: image.id) == nil)
        #expect(setup.area.usage(ofProject: "a").bytes == 0)
        #expect(setup.store.contains(image.id))
    }

    @Test("web-download with no open handle (after a restart) is interrupted, and touches nothing")
    func downloadInterrupted() throws {
        let setup = try Setup()
        defer { setup.shutdown() }
        let (image, lease) = try locked(setup)
        let context = setup.context(image.id, lease: lease)
        #expect(throws: ImportFailure.interrupted(taskID: lease.taskID)) {
            try DownloadToStaging(uri: "http://example.invalid/x", handle: nil, downloader: nil).execute(context)
        }
        #expect(setup.area.stagedFile(named: image.id)?.state == .staged)
    }

    @Test("a failing flow logs the step and its error with the image and task ids, then reverts")
    func flowLogsFailure() throws {
        let setup = try Setup()
        defer { setup.shutdown() }
        let (image, lease) = try locked(setup)
        _ = try setup.fixture.catalog.updateImage(image.id) { $0.diskFormat = "vmdk" }
        let log = RecordedLog()
        let context = setup.context(image.id, lease: lease, logger: log.logger)
        #expect(throws: ImportFailure.self) { try ImportFlow.run(ImportFlow.glanceDirect(plugins: []), context) }
        #expect(log.contains(.warning, "import step failed; reverting", ["image.id": image.id, "task.id": lease.taskID, "import.step": "inspect-staged-data"]))
        #expect(try setup.fixture.catalog.image(image.id)?.status == .queued, "verify-image-lock's revert released the lock")
        #expect(setup.area.stagedFile(named: image.id)?.state == .staged, "hold-staged-data's revert gave the file back")
    }
}

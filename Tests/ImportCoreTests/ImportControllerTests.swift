// The import controller without a mount or socket: recovery after crashes at each point of the flow.
import Foundation
import Logging
import StagingTestSupport
import Testing

@testable import ImportCore

@Suite("Import controller recovery", .serialized)
struct ImportControllerTests {
    struct Setup {
        let fixture: Fixture
        let area: StagingArea
        let store: FilesystemImageStore
        let controller: ImportController

        init(fixture: Fixture? = nil) throws {
            let fixture = try fixture ?? Fixture()
            self.fixture = fixture
            area = try fixture.area()
            store = try FilesystemImageStore(path: fixture.root + "/store")
            controller = ImportController(
                configuration: fixture.configuration, catalog: fixture.catalog, staging: area, store: store,
                policy: try PolicyEngine(file: nil, logger: Logger(label: "test")), logger: Logger(label: "test"))
        }

        func shutdown() {
            controller.shutdown()
            area.shutdown()
        }

        /// What a flow's steps get for one import: its unit of work and the narrow things they use.
        func context(_ imageID: String, lease: TaskLease, logger: Logger = Logger(label: "test")) -> ImportContext {
            ImportContext(
                action: ImportAction(imageID: imageID, lease: lease, catalog: fixture.catalog, logger: logger), roles: ["member"],
                staging: area, store: store, imports: fixture.configuration.imports, logger: logger)
        }
    }

    /// Stages `data` as the image's file through the staging area, as alice.
    func stage(_ data: Data, for id: String, in area: StagingArea) throws {
        let (handle, _) = try area.create(
            try StagedName(id), mode: 0o644, exclusive: true, request: OpenRequest(read: false, write: true),
            caller: Fixture.alice)
        _ = try area.write(handle, data, at: 0)
        area.flush(handle)
        area.release(handle)
    }

    func importingImage(_ setup: Setup, data: Data) throws -> (Image, ImportTask) {
        let alice = setup.area.identify(Fixture.alice)
        var image = try setup.controller.createImage(ImageCreation(name: "x", diskFormat: "raw", containerFormat: "bare"), by: alice)
        try stage(data, for: image.id, in: setup.area)
        #expect(try setup.controller.image(image.id, for: alice).status == .uploading)
        var task = ImportTask(imageID: image.id, method: "glance-direct", owner: "a", userID: "alice")
        task.status = .processing
        task.leaseHolder = setup.fixture.configuration.node
        task.leaseExpiresAt = Date().addingTimeInterval(60)
        task.leaseEpoch = 1
        try setup.fixture.catalog.save(task)
        image = try setup.fixture.catalog.updateImage(image.id) {
            $0.importTask = task.id; $0.status = .importing
        }
        return (image, task)
    }

    @Test("a crash after the rename into the store and before activation: the data goes back to staging")
    func crashAfterRename() throws {
        let setup = try Setup()
        let data = Data(repeating: 7, count: 100_000)
        let (image, task) = try importingImage(setup, data: data)
        _ = try setup.area.beginImport(image.id, owner: image.owner)
        #expect(try setup.area.promote(image.id, into: setup.store, as: image.id, expectedHash: "") { _ in } == .renamed)
        setup.shutdown()

        // The restart: a new staging area and controller over the same directories and catalog.
        let restarted = try Setup(fixture: setup.fixture)
        defer { restarted.shutdown() }
        restarted.controller.recover()
        let recovered = try #require(try setup.fixture.catalog.image(image.id))
        #expect(recovered.status == .queued)
        #expect(recovered.importTask == nil)
        #expect(!restarted.store.contains(image.id))
        #expect(restarted.area.stagedFile(named: image.id)?.state == .staged)
        #expect(try Data(contentsOf: URL(fileURLWithPath: setup.fixture.root + "/backing/" + image.id)) == data)
        let failed = try #require(try setup.fixture.catalog.task(task.id))
        #expect(failed.status == .failure && failed.message.contains("interrupted"))
    }

    @Test("a crash after activation and before the task was recorded: the task is recorded as a success")
    func crashAfterActivation() throws {
        let setup = try Setup()
        let (image, task) = try importingImage(setup, data: Data(repeating: 1, count: 10_000))
        _ = try setup.area.beginImport(image.id, owner: image.owner)
        _ = try setup.area.promote(image.id, into: setup.store, as: image.id, expectedHash: "") { _ in }
        _ = try setup.fixture.catalog.updateImage(image.id) {
            $0.status = .active; $0.importTask = nil
        }
        setup.shutdown()

        let restarted = try Setup(fixture: setup.fixture)
        defer { restarted.shutdown() }
        restarted.controller.recover()
        #expect(try setup.fixture.catalog.task(task.id)?.status == .success)
        #expect(try setup.fixture.catalog.image(image.id)?.status == .active)
        #expect(restarted.store.contains(image.id))
        #expect(restarted.area.stagedFile(named: image.id) == nil)
    }

    @Test("a failing step reverts the executed ones in reverse order: lock dropped, data back in staging")
    func flowRevert() throws {
        let setup = try Setup()
        defer { setup.shutdown() }
        let data = Data(repeating: 3, count: 50_000)
        let (image, task) = try importingImage(setup, data: data)
        /// A step that fails after promotion, to exercise every revert before it.
        struct Fail: ImportStep {
            let name = "fail"
            func execute(_ context: ImportContext) throws(ImportFailure) { throw .catalog(reason: "injected") }
            func revert(_ context: ImportContext) {}
        }
        let context = setup.context(image.id, lease: try #require(task.lease))
        #expect(throws: ImportFailure.catalog(reason: "injected")) {
            try ImportFlow.run([VerifyImageLock(), HoldStagedData(), EnsureDigests(), PromoteToStore(), Fail()], context)
        }
        #expect(context.promotion == .renamed)
        #expect(!setup.store.contains(image.id))
        #expect(setup.area.stagedFile(named: image.id)?.state == .staged)
        let reverted = try #require(try setup.fixture.catalog.image(image.id))
        #expect(reverted.status == .queued && reverted.importTask == nil)
        #expect(try Data(contentsOf: URL(fileURLWithPath: setup.fixture.root + "/backing/" + image.id)) == data)
    }

    @Test("a lock taken by another task makes the flow refuse without touching anything")
    func lockLost() throws {
        let setup = try Setup()
        defer { setup.shutdown() }
        let (image, _) = try importingImage(setup, data: Data(repeating: 3, count: 1000))
        let context = setup.context(image.id, lease: TaskLease(taskID: "someone-else", holder: "elsewhere", epoch: 1))
        #expect(throws: ImportFailure.lockLost(imageID: image.id, taskID: "someone-else", holder: image.importTask)) {
            try ImportFlow.run(ImportFlow.glanceDirect(plugins: []), context)
        }
        #expect(try setup.fixture.catalog.image(image.id)?.status == .importing, "the holder's lock is left alone")
    }
}

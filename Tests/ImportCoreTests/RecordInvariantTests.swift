// The record invariants of docs/architecture.md, one by one, without a mount: what the catalog durably says at
// each step is what a crash at that step would leave.
import Foundation
import Logging
import StagingTestSupport
import Synchronization
import SystemPackage
import Testing

@testable import ImportCore

@Suite("Record invariants")
struct RecordInvariantTests {
    func create(_ area: StagingArea, _ name: String, as caller: Caller = Fixture.alice) throws -> StagedFileHandle {
        try area.create(try StagedName(name), mode: 0o644, exclusive: false, request: OpenRequest(read: true, write: true), caller: caller).0
    }

    /// A file of the service's with `count` bytes, sealed by a duplicate's close (dd's way); its writer stays open.
    func sealedWithWriterOpen(_ area: StagingArea, _ name: String, bytes count: Int) throws -> StagedFileHandle {
        let handle = try create(area, name, as: Fixture.service)
        _ = try area.write(handle, Data(repeating: 3, count: count), at: 0)
        area.flush(handle)
        return handle
    }

    @Test("dd's pattern: a seal by a duplicate's close, then writes: the catalog says writing before the first write returns")
    func writeAfterSealIsANewGeneration() throws {
        let fixture = try Fixture()
        let area = try fixture.area()
        defer { area.shutdown() }
        let handle = try create(area, "dd.img")
        #expect(try fixture.catalog.stagedFile(named: "dd.img")?.state == .writing, "create records writing first")
        area.flush(handle)  // dd closes a dup of its output before writing: the empty file seals
        #expect(try fixture.catalog.stagedFile(named: "dd.img")?.state == .staged)
        _ = try area.write(handle, Data(repeating: 7, count: 4096), at: 0)
        let durable = try #require(try fixture.catalog.stagedFile(named: "dd.img"))
        #expect(durable.state == .writing, "a crash now must not find 'staged, 0 bytes'")
        area.flush(handle)
        area.release(handle)
        let sealed = try #require(try fixture.catalog.stagedFile(named: "dd.img"))
        #expect(sealed.state == .staged && sealed.size == 4096 && sealed.hashValue == fixture.sha512(Data(repeating: 7, count: 4096)))
        let attributes = try fixture.backing.attributes(of: "dd.img")
        #expect(sealed.sealedInode == attributes.inode && sealed.sealedModification == attributes.modificationNanoseconds)
    }

    @Test("a staged record whose file changed behind StagingFS is incomplete on lookup, at restart and for an import")
    func changedFileIsNeverStaged() throws {
        let fixture = try Fixture()
        let area = try fixture.area()
        let handle = try create(area, "img", as: Fixture.service)
        _ = try area.write(handle, Data(repeating: 1, count: 1000), at: 0)
        area.release(handle)
        #expect(area.stagedFile(named: "img")?.state == .staged)
        // A byte changed in the backing directory, as a crash between a write and its record could leave it.
        usleep(10_000)
        let descriptor = try fixture.backing.open("img", access: .readWrite, truncate: false, sync: false, createMode: nil)
        try fixture.backing.write(descriptor, Data([9]), at: 10)
        try descriptor.close()
        let (looked, _) = try area.lookup(try StagedName("img"), caller: Fixture.service)
        #expect(looked.state == .incomplete && looked.hashValue == nil)
        #expect(looked.message?.contains("modified after it was sealed") == true, "\(looked.message ?? "")")
        #expect(throws: ImportFailure.stagedDataChanged(imageID: "img", what: "modified after it was sealed")) { try area.beginImport("img", owner: nil) }
        area.shutdown()
        let restarted = try fixture.area()
        defer { restarted.shutdown() }
        #expect(try fixture.catalog.stagedFile(named: "img")?.state == .incomplete, "recovery records it incomplete")
        #expect(restarted.stagedFile(named: "img")?.state == .incomplete)
    }

    @Test("a writer still open from before the seal is held by an import: its next write is EBUSY; after the import it is detached")
    func importOwnsItsFile() throws {
        let area = try Fixture().area()
        defer { area.shutdown() }
        let handle = try sealedWithWriterOpen(area, "held.img", bytes: 5000)
        let reader = try area.open(try StagedName("held.img"), request: OpenRequest(read: true, write: false), caller: Fixture.service)
        let held = try area.beginImport("held.img", owner: nil)
        #expect(held.state == .importing)
        #expect(throws: StagingError.busy(name: "held.img")) { try area.write(handle, Data([0]), at: 0) }
        #expect(throws: StagingError.busy(name: "held.img")) { try area.truncate(handle, to: 0) }
        #expect(throws: StagingError.busy(name: "held.img")) {
            try area.open(try StagedName("held.img"), request: OpenRequest(read: false, write: true), caller: Fixture.service)
        }
        #expect(throws: StagingError.busy(name: "held.img")) { try area.remove(try StagedName("held.img"), caller: Fixture.service) }
        area.finishImport("held.img", promotion: .copied)
        #expect(reader.isDetached && handle.isDetached, "no handle refers to the imported inode")
        #expect(throws: StagingError.busy(name: "held.img")) { try area.write(handle, Data([0]), at: 0) }
        area.release(reader)
        area.release(handle)
    }

    @Test("a write generation running refuses the import, saying so")
    func writingRefusesImport() throws {
        let area = try Fixture().area()
        defer { area.shutdown() }
        let handle = try sealedWithWriterOpen(area, "busy.img", bytes: 100)
        _ = try area.write(handle, Data(repeating: 4, count: 100), at: 100)
        #expect(
            throws: ImportFailure.stagedDataNotReady(
                imageID: "busy.img", state: "being written",
                reason: "a handle has written to it since it was sealed; close it first")
        ) {
            try area.beginImport("busy.img", owner: nil)
        }
        area.release(handle)
        #expect(try area.beginImport("busy.img", owner: nil).size == 200)
    }

    @Test("tenants cannot create the import flow's intermediate names; the daemon's intermediate inherits nothing")
    func intermediatesBelongToTheDaemon() throws {
        let fixture = try Fixture()
        let area = try fixture.area()
        defer { area.shutdown() }
        let id = UUID().uuidString.lowercased()
        for name in ["\(id).raw", "\(id).uncompressed"] {
            #expect(throws: StagingError.accessDenied(action: .create, rule: "names <image_id>.<ext> are the import flow's intermediates")) {
                _ = try create(area, name)
            }
        }
        #expect(throws: StagingError.accessDenied(action: .create, rule: "names <image_id>.<ext> are the import flow's intermediates")) {
            _ = try create(area, "plain.img")
            try area.rename(try StagedName("plain.img"), to: try StagedName("\(id).qcow2"), replace: false, caller: Fixture.alice)
        }
        // A file of the service's under that name, held open: the intermediate replaces it, record and all.
        let old = try create(area, "\(id).raw", as: Fixture.service)
        _ = try area.write(old, Data(repeating: 5, count: 10), at: 0)
        area.flush(old)
        let fresh = try area.createIntermediate("\(id).raw")
        #expect(old.isDetached)
        let catalogued = try fixture.catalog.stagedFile(named: "\(id).raw")
        #expect(area.stagedFile(named: "\(id).raw") == nil && catalogued == nil)
        #expect(try fixture.backing.attributes(of: fresh).size == 0)
        try fresh.close()
        area.release(old)
    }

    @Test("a rename's record is under the new name before rename(2): a kill at any moment leaves no renamed file without one")
    func renameRecordsFirst() throws {
        let fixture = try Fixture()
        let store = FailingBackingStore(fixture.backing, failing: .ioError, after: Int.max)
        let catalog = fixture.catalog
        let ahead = Mutex<StagedFile?>(nil)
        store.beforeRename = { _, target in ahead.withLock { $0 = try? catalog.stagedFile(named: target) } }
        let area = try fixture.area(backing: store)
        defer { area.shutdown() }
        for replacing in [false, true] {
            let temporary = try create(area, ".final.img.XYZ")
            _ = try area.write(temporary, Data(repeating: replacing ? 2 : 1, count: 3000), at: 0)
            area.release(temporary)
            let inode = try fixture.backing.attributes(of: ".final.img.XYZ").inode
            try area.rename(try StagedName(".final.img.XYZ"), to: try StagedName("final.img"), replace: true, caller: Fixture.alice)
            let before = try #require(ahead.withLock { $0 }, "the target's record exists before rename(2) (replacing: \(replacing))")
            #expect(before.state == .staged && before.sealedInode == inode, "bound to the inode that is about to get the name")
            #expect(try catalog.stagedFile(named: ".final.img.XYZ") == nil)
            let after = try #require(try catalog.stagedFile(named: "final.img"))
            #expect(after.state == .staged && after.sealedInode == inode && after.size == 3000)
        }
    }
}

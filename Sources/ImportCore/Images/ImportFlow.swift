// An import as a linear flow of small steps, each with execute and a revert that undoes only its own effect.
import Foundation

/// What the steps of one import share. Used by one executor thread at a time.
final class ImportContext: @unchecked Sendable {
    let taskID: String
    let imageID: String
    let controller: ImportController
    var staged: StagedFile?
    var hashes: [DigestAlgorithm: String] = [:]
    var promotion: Promotion?

    init(taskID: String, imageID: String, controller: ImportController) {
        self.taskID = taskID
        self.imageID = imageID
        self.controller = controller
    }

    var staging: StagingArea { controller.staging }
    var store: FilesystemImageStore { controller.store }
}

/// One step of an import. `revert` must tolerate state that is already gone (it also runs after a crash).
protocol ImportStep: Sendable {
    var name: String { get }
    func execute(_ context: ImportContext) throws(ImportFailure)
    func revert(_ context: ImportContext)
}

/// Re-checks that this task holds the image's lock; its revert drops the lock (only if it is still ours) and
/// puts the image back to `queued`, so that re-stage and re-import work.
struct VerifyImageLock: ImportStep {
    let name = "verify-image-lock"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        let image = try context.controller.lockedImage(context.imageID, taskID: context.taskID)
        guard image.importTask == context.taskID, image.status == .importing else {
            throw .lockLost(imageID: context.imageID, taskID: context.taskID, holder: image.importTask)
        }
    }

    func revert(_ context: ImportContext) {
        context.controller.releaseLock(imageID: context.imageID, taskID: context.taskID)
    }
}

/// Holds the staged data (`importing`: writers are refused) after checking it is complete and unchanged.
struct HoldStagedData: ImportStep {
    let name = "hold-staged-data"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        context.staged = try context.staging.beginImport(context.imageID)
    }

    func revert(_ context: ImportContext) {
        context.staging.endImport(context.imageID)
    }
}

/// Reuses the digests computed while staging; computes them from the file only when staging could not.
struct EnsureDigests: ImportStep {
    let name = "ensure-digests"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        let algorithm = context.staging.configuration.hashingAlgorithm
        if let staged = context.staged, let value = staged.hashValue, let checksum = staged.checksum, staged.hashAlgorithm == algorithm {
            context.hashes = [algorithm: value, .md5: checksum]
        } else {
            context.hashes = try context.staging.computeDigests(of: context.imageID)
        }
    }

    func revert(_ context: ImportContext) {}
}

/// Puts the data into the store under the image's id: a rename on the same filesystem, a verified copy otherwise.
/// Its revert moves a renamed file back into staging, or removes the copy: nothing is left in the store.
struct PromoteToStore: ImportStep {
    let name = "promote-to-store"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        let expected = context.hashes[context.staging.configuration.hashingAlgorithm] ?? ""
        context.promotion = try context.staging.promote(context.imageID, into: context.store, as: context.imageID, expectedHash: expected) {
            context.controller.reportProgress(taskID: context.taskID, bytesDone: $0)
        }
    }

    func revert(_ context: ImportContext) {
        context.controller.removeFromStore(imageID: context.imageID, promotion: context.promotion)
    }
}

/// The commit point: size, checksum, os_hash_algo, os_hash_value, status `active`, lock dropped, in one unit of
/// work that re-checks the lock first.
struct ActivateImage: ImportStep {
    let name = "activate-image"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        let algorithm = context.staging.configuration.hashingAlgorithm
        let size = context.staged?.size ?? 0
        try context.controller.changeLockedImage(context.imageID, taskID: context.taskID) { image in
            image.size = size
            image.virtualSize = image.virtualSize ?? size
            image.checksum = context.hashes[.md5]
            image.osHashAlgo = algorithm.rawValue
            image.osHashValue = context.hashes[algorithm]
            image.status = .active
            image.importTask = nil
        }
    }

    func revert(_ context: ImportContext) {}
}

/// The staged data is no longer staging's: forget the moved file, or remove the copied one.
struct ReleaseStagedData: ImportStep {
    let name = "release-staged-data"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        context.staging.finishImport(context.imageID, promotion: context.promotion ?? .renamed)
    }

    func revert(_ context: ImportContext) {}
}

enum ImportFlow {
    /// The glance-direct flow, top to bottom.
    static func glanceDirect() -> [any ImportStep] {
        [VerifyImageLock(), HoldStagedData(), EnsureDigests(), PromoteToStore(), ActivateImage(), ReleaseStagedData()]
    }

    /// Runs the steps in order; on a failure, reverts the executed ones in reverse order and rethrows.
    static func run(_ steps: [any ImportStep], _ context: ImportContext) throws(ImportFailure) {
        var executed: [any ImportStep] = []
        for step in steps {
            do {
                try step.execute(context)
                executed.append(step)
            } catch {
                context.controller.logger.warning("import step failed; reverting", metadata: [
                    "task.id": "\(context.taskID)", "image.id": "\(context.imageID)", "import.step": "\(step.name)", "error": "\(error)",
                ])
                // The failed step may have done part of its work: revert it too, then the executed ones.
                step.revert(context)
                for done in executed.reversed() { done.revert(context) }
                throw error
            }
        }
    }
}

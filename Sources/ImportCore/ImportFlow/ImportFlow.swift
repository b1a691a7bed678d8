// An import as a linear flow of small steps, each with execute and a revert that undoes only its own effect.
import FormatInspection
import Foundation
import Logging
import SystemPackage

/// What the steps of one import share: the narrow things they use (the unit of work, the staging area, the
/// store, the import options), never the controller. Used by one executor thread at a time.
final class ImportContext: @unchecked Sendable {
    /// The one way to change the image and the task: every change is fenced by the lock and the lease.
    let action: ImportAction
    let staging: StagingArea
    let store: FilesystemImageStore
    let imports: ImportConfiguration
    let logger: Logger
    /// The importing user's roles (inject_image_metadata skips callers with `ignore_user_roles`).
    let roles: [String]
    var staged: StagedFile?
    /// The file in staging that holds the data to store: the staged data, or the last plugin's output.
    lazy var dataName = imageID
    /// Plugin outputs written so far, removed when the import ends either way, with the bytes each is charged
    /// to the image owner's project.
    var intermediates: [String] = []
    var charged: [String: Int64] = [:]
    /// What the inspector found in `dataName`; the image's disk_format once a plugin converted it.
    var inspection: InspectedImage?
    var diskFormat: String?
    var containerFormat: String?
    var size: Int64 = 0
    var injectedProperties: [String: String] = [:]
    var hashes: [DigestAlgorithm: String] = [:]
    var promotion: Promotion?
    /// The store file this import put there (its inode), so that a revert removes only that.
    var promoted: UInt64?

    init(action: ImportAction, roles: [String], staging: StagingArea, store: FilesystemImageStore, imports: ImportConfiguration, logger: Logger) {
        self.action = action
        self.roles = roles
        self.staging = staging
        self.store = store
        self.imports = imports
        self.logger = logger
    }

    var imageID: String { action.imageID }
    var taskID: String { action.taskID }
    var plugins: PluginConfiguration { imports.plugins }

    /// Inspects `name` (the staged data or a plugin's output) and makes it the data to store: refused unless
    /// it is safe and `expectation` accepts it.
    func adopt(_ name: String, expectation: FormatExpectation) throws(ImportFailure) {
        let (verdict, size) = try staging.inspect(name, imageID: imageID)
        switch verdict {
        case let .refused(refusal): throw .refusedByInspector(imageID: imageID, reason: refusal.reason)
        case let .accepted(image):
            if let mismatch = expectation.mismatch(image) { throw .refusedByInspector(imageID: imageID, reason: mismatch.reason) }
            dataName = name
            inspection = image
            self.size = size
            diskFormat = expectation.diskFormat
        }
    }

    /// Creates plugin output `name`, with what it may take (at most `bound`, named `boundName` in messages)
    /// reserved in the image owner's project quota.
    func createOutput(_ name: String, bound: Int64, boundName: String, plugin: ImportPlugin) throws(ImportFailure) -> (FileDescriptor, IntermediateAllowance) {
        intermediates.append(name)
        let allowance: IntermediateAllowance
        do { allowance = try staging.reserveIntermediate(for: staged?.projectID, bound: bound, boundName: boundName) } catch {
            throw .pluginFailed(plugin: plugin, imageID: imageID, reason: error.description)
        }
        charged[name] = allowance.bytes
        return (try staging.createIntermediate(name), allowance)
    }

    /// The output is written: only its size stays charged.
    func settleOutput(_ name: String, _ allowance: IntermediateAllowance, size: Int64) {
        charged[name] = staging.settle(allowance, size: size, for: staged?.projectID)
    }

    func removeOutput(_ name: String) {
        staging.removeIntermediate(name)
        if let bytes = charged.removeValue(forKey: name) { staging.release(bytes, for: staged?.projectID) }
    }
}

/// One step of an import. `revert` must tolerate state that is already gone (it also runs after a crash).
protocol ImportStep: Sendable {
    var name: String { get }
    func execute(_ context: ImportContext) throws(ImportFailure)
    func revert(_ context: ImportContext)
    /// Whether `revert` still runs when another node has taken the task over (the lease was lost): only steps
    /// whose effects nobody else can see or undo; the new holder reverts the rest.
    var revertsWhenSuperseded: Bool { get }
}

extension ImportStep {
    var revertsWhenSuperseded: Bool { false }
}

/// Re-checks that this task holds the image's lock; its revert drops the lock (only if it is still ours) and
/// puts the image back to `queued`, so that re-stage and re-import work.
struct VerifyImageLock: ImportStep {
    let name = "verify-image-lock"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        _ = try context.action.lockedImage()
    }

    func revert(_ context: ImportContext) {
        context.action.releaseLock()
    }
}

/// Holds the staged data (`importing`: writers are refused) after checking it is complete and unchanged.
struct HoldStagedData: ImportStep {
    let name = "hold-staged-data"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        let image = try context.action.image()
        context.staged = try context.staging.beginImport(context.imageID, owner: image.owner)
    }

    func revert(_ context: ImportContext) {
        context.staging.endImport(context.imageID)
    }
}

/// The authoritative format check, before any plugin or copy: the staged data must be a safe image of the
/// declared disk_format (or a compressed one, when image_decompression will unpack it).
struct InspectStagedData: ImportStep {
    let name = "inspect-staged-data"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        let image = try context.action.image()
        context.containerFormat = image.containerFormat
        try context.adopt(context.imageID, expectation: FormatExpectation(for: image, imports: context.imports))
    }

    func revert(_ context: ImportContext) {}
}

/// Reuses the digests computed while staging when the staged data is what will be stored; otherwise (hash_on_write
/// off, or a plugin changed the data) computes them from the file: the hashes describe the stored bytes.
struct EnsureDigests: ImportStep {
    let name = "ensure-digests"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        let algorithm = context.staging.configuration.hashingAlgorithm
        if context.dataName == context.imageID, let staged = context.staged, let value = staged.hashValue, let checksum = staged.checksum,
            staged.hashAlgorithm == algorithm
        {
            context.hashes = [algorithm: value, .md5: checksum]
        } else {
            context.hashes = try context.staging.digests(of: context.dataName, imageID: context.imageID)
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
        context.promotion = try context.staging.promote(context.dataName, into: context.store, as: context.imageID, expectedHash: expected) {
            context.action.reportProgress(bytesDone: $0)
        }
        context.promoted = context.store.fileID(of: context.imageID)
    }

    /// Its effect is this node's own file in the store: undone even after another node took the task over.
    var revertsWhenSuperseded: Bool { true }

    func revert(_ context: ImportContext) {
        // A plugin's output is disposable: it leaves the store; the staged data itself goes back into staging.
        let promotion = context.dataName == context.imageID ? context.promotion : context.promotion.map { _ in .copied }
        context.staging.withdraw(context.imageID, from: context.store, promotion: promotion, promoted: context.promoted)
    }
}

/// The commit point: size, checksum, os_hash_algo, os_hash_value, status `active`, lock dropped, in one unit of
/// work that re-checks the lock first.
struct ActivateImage: ImportStep {
    let name = "activate-image"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        let algorithm = context.staging.configuration.hashingAlgorithm
        let (size, virtualSize, diskFormat, injected) = (context.size, context.inspection?.virtualSize, context.diskFormat, context.injectedProperties)
        try context.action.change { image in
            image.size = size
            image.virtualSize = virtualSize ?? size
            if let diskFormat { image.diskFormat = diskFormat }
            image.properties.merge(injected) { $1 }
            image.checksum = context.hashes[.md5]
            image.osHashAlgo = algorithm.rawValue
            image.osHashValue = context.hashes[algorithm]
            image.status = .active
            image.importTask = nil
        }
    }

    func revert(_ context: ImportContext) {}
}

/// The staged data is no longer staging's: forget the moved file, or remove the copied one (and a plugin's
/// output left the staged data itself in place).
struct ReleaseStagedData: ImportStep {
    let name = "release-staged-data"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        let promotion = context.dataName == context.imageID ? context.promotion ?? .renamed : .copied
        context.staging.finishImport(context.imageID, promotion: promotion)
        for name in context.intermediates { context.removeOutput(name) }
    }

    func revert(_ context: ImportContext) {}
}

enum ImportFlow {
    /// The glance-direct flow, top to bottom, with the configured plugins (in their configured order) between
    /// the inspection and the store.
    static func glanceDirect(plugins: [ImportPlugin]) -> [any ImportStep] {
        [VerifyImageLock(), HoldStagedData(), InspectStagedData()] + plugins.map(pluginStep)
            + [EnsureDigests(), PromoteToStore(), ActivateImage(), ReleaseStagedData()]
    }

    /// web-download: the URI is streamed into staging first (`download`), then the import goes on as glance-direct.
    static func webDownload(_ download: DownloadToStaging, plugins: [ImportPlugin]) -> [any ImportStep] {
        var steps = glanceDirect(plugins: plugins)
        steps.insert(download, at: 1)
        return steps
    }

    /// Runs the steps in order; on a failure, reverts the executed ones in reverse order and rethrows.
    static func run(_ steps: [any ImportStep], _ context: ImportContext) throws(ImportFailure) {
        var executed: [any ImportStep] = []
        for step in steps {
            do {
                try step.execute(context)
                executed.append(step)
            } catch {
                context.logger.warning(
                    "import step failed; reverting",
                    metadata: [
                        "task.id": "\(context.taskID)", "image.id": "\(context.imageID)", "import.step": "\(step.name)", "error": "\(error)",
                    ])
                // The failed step may have done part of its work: revert it too, then the executed ones.
                let superseded = if case .leaseLost = error { true } else { false }
                for done in ([step] + executed.reversed()) where !superseded || done.revertsWhenSuperseded { done.revert(context) }
                throw error
            }
        }
    }
}

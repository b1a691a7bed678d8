// One import's unit of work on its image and its task, as Glance's ImportActionWrapper.
import Foundation
import Logging
import Synchronization

/// Every change an import makes to its image and its task goes through here, and each one re-checks, in the
/// catalog transaction that makes it, that the task still holds the image's import lock and this node the
/// task's lease. The flow's steps and the lease keeper's takeovers use it; nothing else changes an image while
/// an import holds it.
final class ImportAction: Sendable {
    let imageID: String
    let lease: TaskLease
    private let catalog: any ImageCatalog & ClusterCatalog
    private let logger: Logger
    /// When progress was last written: at most once a second.
    private let progressWritten = Mutex<Date?>(nil)

    init(imageID: String, lease: TaskLease, catalog: any ImageCatalog & ClusterCatalog, logger: Logger) {
        self.imageID = imageID
        self.lease = lease
        self.catalog = catalog
        self.logger = logger
    }

    var taskID: String { lease.taskID }
    private var ids: Logger.Metadata { ["image.id": "\(imageID)", "task.id": "\(taskID)"] }

    /// The image; gone (deleted) counts as the task having lost its lock.
    func image() throws(ImportFailure) -> Image {
        do {
            guard let image = try catalog.image(imageID) else { throw ImportFailure.lockLost(imageID: imageID, taskID: taskID, holder: nil) }
            return image
        } catch let error as ImportFailure { throw error } catch { throw .catalog(reason: "\(error)") }
    }

    /// The image, which must still be `importing` under this task's lock.
    func lockedImage() throws(ImportFailure) -> Image {
        let image = try image()
        guard image.importTask == taskID, image.status == .importing else {
            throw .lockLost(imageID: imageID, taskID: taskID, holder: image.importTask)
        }
        return image
    }

    /// Changes the image in one transaction that first checks this task's lock and this node's lease.
    func change(_ change: @escaping (inout Image) -> Void) throws(ImportFailure) {
        let (imageID, taskID) = (imageID, taskID)
        do {
            try catalog.updateImage(imageID, holding: lease) { image in
                guard image.importTask == taskID else { throw ImportFailure.lockLost(imageID: imageID, taskID: taskID, holder: image.importTask) }
                change(&image)
            }
        } catch let error as ImportFailure { throw error } catch CatalogError.leaseLost {
            throw .leaseLost(taskID: taskID, node: lease.holder)
        } catch { throw .catalog(reason: "\(error)") }
    }

    /// Drops the lock, if this task still holds it, and puts the image back to `queued` so that it can be staged
    /// and imported again. A lock lost meanwhile is another's to release; any other failure is logged (the lock
    /// then expires, or recovery releases it).
    func releaseLock() {
        do { try change { Self.unlock(&$0) } } catch {
            switch error {
            case .lockLost, .leaseLost: logger.info("import lock already released or taken over", metadata: ids)
            default: logger.error("could not release the import lock", metadata: ids.merging(["error": "\(error)"]) { $1 })
            }
        }
    }

    /// An image no longer locked: `importing` goes back to `queued`.
    static func unlock(_ image: inout Image) {
        image.importTask = nil
        if image.status == .importing { image.status = .queued }
    }

    /// The bytes an import step has done, written to the task at most once a second.
    func reportProgress(bytesDone: Int64) {
        let due = progressWritten.withLock { last -> Bool in
            if let last, Date().timeIntervalSince(last) < 1 { return false }
            last = Date()
            return true
        }
        if due { updateTask { $0.bytesDone = bytesDone } }
    }

    /// Changes the task, if this node still holds it: a node that lost it to another writes nothing.
    func updateTask(_ change: (inout ImportTask) -> Void) {
        let task: ImportTask?
        do { task = try catalog.task(taskID) } catch {
            return logger.error("could not read the task to update it", metadata: ids.merging(["error": "\(error)"]) { $1 })
        }
        guard var task, task.lease == lease else { return }
        change(&task)
        task.updatedAt = Date()
        do { try catalog.save(task) } catch {
            logger.error("could not update the task", metadata: ids.merging(["error": "\(error)"]) { $1 })
        }
    }

    /// Records how the task ended; it expires `timeToLive` hours later (`[task] task_time_to_live`).
    func finish(_ status: TaskStatus, message: String, result: [String: String]?, timeToLive: Double) {
        updateTask { task in
            task.status = status
            task.message = message
            task.result = result
            if status == .success { task.bytesDone = task.bytesTotal }
            task.expiresAt = Date().addingTimeInterval(timeToLive * 3600)
        }
    }
}

// Tasks as the API shows them, and start-up recovery and expiry.
import Foundation
import Logging

extension ImportController {
    // MARK: - Tasks

    /// `GET /v2/tasks` and `GET /v2/tasks/{id}`: `tasks_api_access` (admins by default), then `get_tasks`/`get_task`.
    public func tasks(for caller: CallerIdentity) throws(ImageError) -> [ImportTask] {
        try authorize("tasks_api_access", caller, ["project_id": caller.projectID ?? ""])
        try authorize("get_tasks", caller, ["project_id": caller.projectID ?? ""])
        return try catalogCall { try catalog.tasks(imageID: nil) }
    }

    public func task(_ id: String, for caller: CallerIdentity) throws(ImageError) -> ImportTask {
        try authorize("tasks_api_access", caller, ["project_id": caller.projectID ?? ""])
        guard let task = try catalogCall({ try catalog.task(id) }) else { throw .notFound("no task with ID \(id)") }
        try authorize("get_task", caller, ["project_id": task.owner ?? ""])
        return task
    }

    /// `GET /v2/images/{id}/tasks`: of an image the caller may see, the tasks of the caller's project (all of
    /// them for admins). A task's input (a web-download URI may carry a signed query) is its owner's.
    public func tasks(ofImage id: String, for caller: CallerIdentity) throws(ImageError) -> [ImportTask] {
        _ = try image(id, for: caller)
        let tasks = try catalogCall { try catalog.tasks(imageID: id) }
        if PolicyCredentials(caller).isAdmin { return tasks }
        return tasks.filter { ExactText.same($0.owner, caller.projectID) }
    }

    /// `importctl policy-check`: what the policy decides for `caller` (or, for admins, someone else) on a target.
    public func checkPolicy(
        _ action: String, as subject: CallerIdentity, target: [String: String], by caller: CallerIdentity
    ) throws(ImageError) -> PolicyDecision {
        try requireKnown(caller)
        if subject != caller, !PolicyCredentials(caller).isAdmin {
            throw .forbidden("only admins may check the policy as another user")
        }
        return policy.enforce(action, credentials: PolicyCredentials(subject), target: target)
    }

    // MARK: - Start-up and housekeeping

    /// After a (re)start: interrupted copies this node may remove leave the store, images left `importing`
    /// without a lock are `queued` again, deleted images' staging residue is removed, expired tasks are purged;
    /// then the node registers and takes back the tasks it held before (see ImportController+Nodes).
    public func recover() {
        for name in store.partialFiles() where !heldElsewhere(imageID: String(name.dropFirst().dropLast(".partial".count))) {
            store.removePartial(name)
        }
        let images = bestEffort("list images to recover those left importing", [:]) { try catalog.images() } ?? []
        for image in images where image.status == .importing && image.importTask == nil {
            bestEffort("queue an image left importing without a task", ["image.id": "\(image.id)"]) {
                _ = try catalog.updateImage(image.id) { $0.status = .queued }
            }
        }
        for (id, names) in staging.imageFileNames() {
            let image = bestEffort("read an image to see whether its staging residue may go", ["image.id": "\(id)"]) { try catalog.image(id) } ?? nil
            if image?.status == .deleted { names.forEach { staging.removeResidue($0) } }
        }
        _ = purgeExpiredTasks()
        startNode()
    }

    /// Deletes tasks past their `expires_at` (`[task] task_time_to_live` after they ended).
    @discardableResult
    public func purgeExpiredTasks(now: Date = Date()) -> Int {
        var purged = 0
        bestEffort("purge expired tasks", [:]) { purged = try catalog.purgeTasks(expiredBefore: now) }
        if purged > 0 { logger.info("expired tasks purged", metadata: ["task.count": "\(purged)"]) }
        return purged
    }
}

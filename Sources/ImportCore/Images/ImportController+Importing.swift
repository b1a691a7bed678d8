// Importing: acceptance of an import request (the lock, the task), and running its flow.
import Foundation
import Logging

extension ImportController {
    // MARK: - Importing

    public func importMethods() -> [String] {
        configuration.imports.enabledImportMethods.filter { $0 == "glance-direct" || ($0 == "web-download" && downloader != nil) }
    }

    /// `POST /v2/images/{id}/import`: locks the image for a new task (409 if a live import holds it) and runs the flow.
    /// glance-direct imports the staged data; web-download (`uri`) first streams the URI into staging through the
    /// write path as `stagingCaller` (hashed, inspected, within the caller's quota), then continues the same way.
    public func importImage(
        _ id: String, method: String, uri: String? = nil, by caller: CallerIdentity,
        stagingAs stagingCaller: Caller? = nil
    ) throws(ImageError) -> ImportTask {
        let current = try image(id, for: caller)
        // Glance checks modify_image on the image; the task it creates is add_task's.
        try authorize("modify_image", caller, current.policyTarget)
        try authorize("add_task", caller, ["project_id": current.owner ?? ""])
        guard importMethods().contains(method) else {
            throw .badRequest("import method \(method) is not available; available: \(importMethods().joined(separator: ", "))")
        }
        guard current.diskFormat != nil, current.containerFormat != nil else {
            throw .conflict("image \(id) needs disk_format and container_format set before it can be imported")
        }
        let webDownload = method == "web-download"
        if webDownload {
            guard let uri, !uri.isEmpty else {
                throw .badRequest("web-download needs the image's URI: {\"method\": {\"name\": \"web-download\", \"uri\": \"http://…\"}}")
            }
            do { try configuration.imports.webDownload.filtering.validate(uri) } catch { throw .badRequest(error.description) }
            try checkDownloadShare(of: current.owner)
            guard current.status == .queued else {
                throw .conflict("image \(id) is \(current.status.rawValue); web-download needs a queued image (no data yet)")
            }
        }
        var task = ImportTask(
            imageID: id, method: method, owner: current.owner,
            userID: {
                if case let .mapped(identity) = caller { return identity.userID } else { return nil }
            }())
        let taskID = task.id
        let staged = staging.stagedFile(named: id)
        if !webDownload, let staged, !staged.mayBeImported(byOwner: current.owner) {
            throw .conflict(ImportFailure.stagedByAnotherProject(imageID: id, writer: staged.projectID ?? "-", owner: current.owner).description)
        }
        let stagedIntact = staged?.state == .staged
        var preempted: String?
        // The holder's task is read before the image's unit of work: that closure must not use the catalog again
        // (a PostgreSQL catalog would need a second connection while holding one). A holder that changed since
        // is a concurrent import: 409.
        let holderTask = try catalogCall { try current.importTask.flatMap { try catalog.task($0) } }
        try catalogCall {
            try catalog.updateImage(id) { image in
                if let holder = image.importTask {
                    guard holder == holderTask?.id else {
                        throw ImageError.conflict("image \(id) is being imported by task \(holder); a prior operation is still in progress")
                    }
                    let live =
                        holderTask.map { [.pending, .processing].contains($0.status) && Date().timeIntervalSince($0.updatedAt) < Self.staleLock } ?? false
                    if live { throw ImageError.conflict("image \(id) is being imported by task \(holder); a prior operation is still in progress") }
                    preempted = holder
                }
                switch image.status {
                case .queued where webDownload: break
                case _ where webDownload: throw ImageError.conflict("image \(id) is \(image.status.rawValue); web-download needs a queued image")
                case .uploading: break
                case .queued where stagedIntact: break
                case .queued: throw ImageError.conflict("image \(id) has no staged data: stage it first")
                default: throw ImageError.conflict("image \(id) is \(image.status.rawValue); glance-direct import needs staged data (status uploading)")
                }
                image.importTask = taskID
                image.status = .importing
            }
        }
        if let preempted, var old = try? catalog.task(preempted) {
            old.status = .failure
            old.message = "Expired lock preempted by task \(taskID)"
            bestEffort("fail the preempted task", ["task.id": "\(preempted)", "image.id": "\(id)"]) { try catalog.save(old) }
        }
        task.status = .pending
        task.bytesTotal = staging.stagedFile(named: id)?.size ?? 0
        // The accepting node holds the new task from the start; its heartbeat renews the lease.
        task.leaseHolder = node
        task.leaseExpiresAt = Date().addingTimeInterval(leaseDuration)
        task.leaseEpoch = 1
        if webDownload, let uri {
            task.input["uri"] = uri
            task.bytesTotal = 0
            do {
                guard let stagingCaller else { throw ImageError.badRequest("web-download needs the caller's credentials to stage as") }
                let (handle, _) = try staging.create(
                    try StagedName(id), mode: 0o640, exclusive: false,
                    request: OpenRequest(read: false, write: true, truncate: true), caller: stagingCaller)
                downloads.withLock { $0[taskID] = handle }
            } catch {
                releaseLock(imageID: id, taskID: taskID)
                if let error = error as? ImageError { throw error }
                throw .forbidden("web-download cannot stage image \(id): \(error)")
            }
        }
        let pending = task
        do { try catalogCall { try catalog.save(pending) } } catch {
            if let handle = takeDownload(taskID) { staging.release(handle) }
            releaseLock(imageID: id, taskID: taskID)
            throw error
        }
        logger.info("import accepted", metadata: ["task.id": "\(taskID)", "image.id": "\(id)", "import.method": "\(method)"])
        if let lease = task.lease { schedule(lease, imageID: id) }
        return task
    }

    /// `[stagingfs] web_download_per_project`: one project's downloads cannot take every import worker. Checked
    /// at acceptance, over the whole catalog (all nodes).
    private func checkDownloadShare(of project: String?) throws(ImageError) {
        let limit = configuration.imports.webDownload.perProject
        guard limit > 0 else { return }
        let active = try catalogCall { try catalog.tasks(status: .pending) + catalog.tasks(status: .processing) }
        let running = active.filter { $0.input["import_req"] == "web-download" && ExactText.same($0.owner, project) }.count
        if running >= limit {
            throw .overLimit(
                "project \(project ?? "-") already runs \(running) web-download imports, the limit of [stagingfs] web_download_per_project; wait until one ends"
            )
        }
    }

    /// Runs a task this node holds, unless it already runs here.
    func schedule(_ lease: TaskLease, imageID: String) {
        guard running.withLock({ $0.insert(lease.taskID).inserted }) else { return }
        executor.submit { [self] in
            run(lease, imageID: imageID)
            running.withLock { _ = $0.remove(lease.taskID) }
        }
    }

    /// Runs one import flow and records how it ended.
    func run(_ lease: TaskLease, imageID: String) {
        let taskID = lease.taskID
        let action = ImportAction(imageID: imageID, lease: lease, catalog: catalog, logger: logger)
        action.updateTask { $0.status = .processing }
        let task: ImportTask?
        do { task = try catalog.task(taskID) } catch {
            logger.error("could not read the task to run it; its roles and input are unknown", metadata: ["task.id": "\(taskID)", "error": "\(error)"])
            task = nil
        }
        let context = ImportContext(
            action: action, roles: roles(of: task), staging: staging, store: store,
            imports: configuration.imports, logger: logger)
        let plugins = configuration.imports.plugins.plugins
        let flow =
            task?.input["import_req"] == "web-download"
            ? ImportFlow.webDownload(DownloadToStaging(uri: task?.input["uri"] ?? "", handle: takeDownload(taskID), downloader: downloader), plugins: plugins)
            : ImportFlow.glanceDirect(plugins: plugins)
        do {
            try ImportFlow.run(flow, context)
            let result = [
                "image_id": imageID, "os_hash_value": context.hashes[configuration.hashingAlgorithm] ?? "",
                "promotion": context.promotion?.rawValue ?? "",
            ]
            action.finish(.success, message: "", result: result, timeToLive: configuration.imports.taskTimeToLive)
            logger.info(
                "import succeeded",
                metadata: [
                    "task.id": "\(taskID)", "image.id": "\(imageID)",
                    "import.promotion": "\(context.promotion?.rawValue ?? "-")",
                ])
        } catch {
            action.finish(.failure, message: error.description, result: nil, timeToLive: configuration.imports.taskTimeToLive)
            logger.warning("import failed", metadata: ["task.id": "\(taskID)", "image.id": "\(imageID)", "error": "\(error)"])
        }
    }

    /// The roles of the user who asked for an import, from the identity map (the service user counts as admin).
    private func roles(of task: ImportTask?) -> [String] {
        guard let userID = task?.userID else { return Array(PolicyCredentials(.service).roles) }
        return configuration.identityMap.rules.first { $0.identity.userID == userID }?.identity.roles ?? []
    }

    /// The staged file a web-download task writes; nil after a restart (the task is then interrupted).
    private func takeDownload(_ taskID: String) -> StagedFileHandle? {
        downloads.withLock { $0.removeValue(forKey: taskID) }
    }

    /// Releases the lock of a task not yet recorded (its acceptance failed).
    private func releaseLock(imageID: String, taskID: String) {
        bestEffort("release the import lock", ["image.id": "\(imageID)", "task.id": "\(taskID)"]) {
            _ = try catalog.updateImage(imageID) { image in if image.importTask == taskID { ImportAction.unlock(&image) } }
        }
    }
}

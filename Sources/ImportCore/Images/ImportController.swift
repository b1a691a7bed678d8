// The import controller: images, staging through the API, imports as tasks, recovery and task expiry.
import Foundation
import Logging
import Synchronization

/// A JSON-patch operation on an image (`PATCH /v2/images/{id}`).
public struct ImagePatch: Sendable {
    public enum Operation: String, Sendable { case add, replace, remove }
    public var operation: Operation
    public var path: String
    public var value: String?
    public var boolValue: Bool?

    public init(operation: Operation, path: String, value: String? = nil, boolValue: Bool? = nil) {
        self.operation = operation
        self.path = path
        self.value = value
        self.boolValue = boolValue
    }
}

/// What `POST /v2/images` may set.
public struct ImageCreation: Sendable {
    public var name: String?
    public var diskFormat: String?
    public var containerFormat: String?
    public var visibility: String?
    public var isProtected: Bool?
    public var id: String?
    public var properties: [String: String]

    public init(name: String? = nil, diskFormat: String? = nil, containerFormat: String? = nil, visibility: String? = nil,
                isProtected: Bool? = nil, id: String? = nil, properties: [String: String] = [:]) {
        self.name = name
        self.diskFormat = diskFormat
        self.containerFormat = containerFormat
        self.visibility = visibility
        self.isProtected = isProtected
        self.id = id
        self.properties = properties
    }
}

/// Images and their imports. The API is a thin adapter over this type; it knows nothing of HTTP.
public final class ImportController: Sendable {
    public let configuration: StagingConfiguration
    let catalog: any ImageCatalog & ClusterCatalog
    public let staging: StagingArea
    let store: FilesystemImageStore
    let executor: TaskExecutor
    let policy: PolicyEngine
    /// Fetches web-download URIs; nil: web-download is not offered.
    let downloader: (any WebDownloading)?
    let logger: Logger
    /// The staged files web-download tasks write, opened (as the caller) when the import was accepted.
    private let downloads = Mutex<[String: StagedFileHandle]>([:])
    /// This node's id among the nodes sharing the catalog, and how long its hold on a task lasts unrenewed.
    let node: String
    let leaseDuration: TimeInterval
    /// Tasks this node is running now: a claim never starts one twice here.
    let running = Mutex<Set<String>>([])
    /// Ends the lease keeper.
    let stopping = Atomic<Bool>(false)
    /// Last time each running task's progress was written, to write it at most once a second.
    private let progressWritten = Mutex<[String: Date]>([:])

    static let diskFormats = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
    static let containerFormats = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]
    /// Glance's rule: a lock older than this (its task not updated) may be taken over by a new import.
    static let staleLock: TimeInterval = 60 * 60

    public init(configuration: StagingConfiguration, catalog: any ImageCatalog & ClusterCatalog, staging: StagingArea,
                store: FilesystemImageStore, policy: PolicyEngine, downloader: (any WebDownloading)? = nil, logger: Logger) {
        self.configuration = configuration
        node = configuration.node
        leaseDuration = configuration.leaseSeconds
        self.policy = policy
        self.downloader = downloader
        self.catalog = catalog
        self.staging = staging
        self.store = store
        self.logger = logger
        executor = TaskExecutor(workers: configuration.imports.workers)
        staging.onSeal { [weak self] file in self?.stagedThroughMount(file) }
        staging.expectFormats { [weak self] name in self?.formatExpectation(forStaged: name) }
    }

    public func shutdown() {
        stopping.store(true, ordering: .relaxed)
        executor.shutdown()
    }

    // MARK: - Who may do what: the oslo.policy engine, with Glance's names and targets

    private func requireKnown(_ caller: CallerIdentity) throws(ImageError) {
        if case .unknown = caller { throw .forbidden("you are not in StagingFS's identity map; ask the operator to add an [identity:…] section for you") }
    }

    /// Glance's visibility rule (its database layer, below the policy): admins see every image, others their
    /// project's and public or community ones; a shared image is seen by its members, and there are none here.
    private func visible(_ image: Image, _ caller: CallerIdentity) -> Bool {
        PolicyCredentials(caller).isAdmin || ExactText.same(image.owner, caller.projectID)
            || ["public", "community"].contains(image.visibility)
    }

    private func allowed(_ action: String, _ caller: CallerIdentity, _ target: [String: String]) -> Bool {
        policy.enforce(action, credentials: PolicyCredentials(caller), target: target).allowed
    }

    /// Enforces `action`; a denial is logged with the caller, target and rule. With `hidden`, a denial answers
    /// 404 with that message (Glance hides images a caller may not see).
    func authorize(_ action: String, _ caller: CallerIdentity, _ target: [String: String], hidden: String? = nil) throws(ImageError) {
        try requireKnown(caller)
        let decision = policy.enforce(action, credentials: PolicyCredentials(caller), target: target)
        guard !decision.allowed else { return }
        logger.notice("denied", metadata: [
            "caller.identity": "\(caller)", "policy.action": "\(action)", "policy.target": "\(target.sorted { $0.key < $1.key })",
            "policy.rule": "\(decision.ruleName): \(decision.ruleText)",
        ])
        if let hidden { throw .notFound(hidden) }
        throw .forbidden("policy does not allow \(action) (rule \(decision.ruleName): \"\(decision.ruleText)\")")
    }

    @discardableResult
    func catalogCall<T>(_ body: () throws -> T) throws(ImageError) -> T {
        do { return try body() } catch let error as ImageError { throw error } catch {
            logger.error("catalog failed", metadata: ["error": "\(error)"])
            throw .unavailable("the catalog database failed: \(error)")
        }
    }

    // MARK: - Images

    public func createImage(_ request: ImageCreation, by caller: CallerIdentity) throws(ImageError) -> Image {
        if let format = request.diskFormat, !Self.diskFormats.contains(format) {
            throw .badRequest("invalid disk_format '\(format)': expected one of \(Self.diskFormats.joined(separator: ", "))")
        }
        if let format = request.containerFormat, !Self.containerFormats.contains(format) {
            throw .badRequest("invalid container_format '\(format)': expected one of \(Self.containerFormats.joined(separator: ", "))")
        }
        let visibility = request.visibility ?? "shared"
        guard ["public", "private", "shared", "community"].contains(visibility) else {
            throw .badRequest("invalid visibility '\(visibility)': expected public, private, shared or community")
        }
        try authorize("add_image", caller, ["project_id": caller.projectID ?? "", "owner": caller.projectID ?? "", "visibility": visibility])
        if visibility == "public" { try authorize("publicize_image", caller, ["project_id": caller.projectID ?? ""]) }
        if let id = request.id, UUID(uuidString: id) == nil { throw .badRequest("invalid id '\(id)': expected a UUID") }
        var image = Image(id: request.id?.lowercased() ?? UUID().uuidString.lowercased(), name: request.name, diskFormat: request.diskFormat,
                          containerFormat: request.containerFormat, owner: caller.projectID, visibility: visibility,
                          isProtected: request.isProtected ?? false, properties: request.properties)
        image.updatedAt = image.createdAt
        let created = image
        if try catalogCall({ try catalog.image(created.id) }) != nil { throw .conflict("an image with ID \(created.id) already exists") }
        try catalogCall { try catalog.insert(created) }
        logger.info("image created", metadata: ["image.id": "\(image.id)", "caller.identity": "\(caller)"])
        return image
    }

    public func images(for caller: CallerIdentity) throws(ImageError) -> [Image] {
        try authorize("get_images", caller, ["project_id": caller.projectID ?? ""])
        return try catalogCall { try catalog.images() }.filter { visible($0, caller) && allowed("get_image", caller, $0.policyTarget) }.map(withStagedFormat)
    }

    /// Before import, an image shows the format the inspector found in its staged data, as soon as the header has
    /// arrived (`stagingfs_detected_format`, `stagingfs_detected_virtual_size`).
    private func withStagedFormat(_ image: Image) -> Image {
        guard [.queued, .uploading, .importing].contains(image.status), let detected = staging.detectedFormat(of: image.id) else { return image }
        var shown = image
        shown.properties["stagingfs_detected_format"] = detected.format.rawValue
        shown.properties["stagingfs_detected_virtual_size"] = String(detected.virtualSize)
        return shown
    }

    public func image(_ id: String, for caller: CallerIdentity) throws(ImageError) -> Image {
        try requireKnown(caller)
        guard let image = try catalogCall({ try catalog.image(id) }), image.status != .deleted, visible(image, caller) else {
            throw .notFound("no image with ID \(id)")
        }
        try authorize("get_image", caller, image.policyTarget, hidden: "no image with ID \(id)")
        return withStagedFormat(image)
    }

    public func updateImage(_ id: String, _ patches: [ImagePatch], by caller: CallerIdentity) throws(ImageError) -> Image {
        let current = try image(id, for: caller)
        try authorize("modify_image", caller, current.policyTarget)
        if patches.contains(where: { $0.path == "/visibility" && $0.value == "public" }) {
            try authorize("publicize_image", caller, current.policyTarget)
        }
        return try catalogCall {
            try catalog.updateImage(id) { image in
                for patch in patches { try Self.apply(patch, to: &image) }
            }
        }
    }

    private static func apply(_ patch: ImagePatch, to image: inout Image) throws(ImageError) {
        let field = String(patch.path.drop { $0 == "/" })
        let readOnly = ["id", "status", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value", "owner", "created_at",
                        "updated_at", "self", "file", "schema", "os_glance_import_task"]
        guard !readOnly.contains(field), !field.isEmpty else { throw .forbidden("attribute '\(field)' is read-only") }
        // Glance's namespace and ours: users neither set nor remove them.
        if field.hasPrefix("os_glance_") || field.hasPrefix("stagingfs_") { throw .forbidden("attribute '\(field)' is reserved") }
        let value = patch.operation == .remove ? nil : patch.value
        switch field {
        case "name": image.name = value
        case "disk_format", "container_format":
            guard image.status == .queued else {
                throw .conflict("\(field) can only be changed while the image is queued; it is \(image.status.rawValue)")
            }
            let allowed = field == "disk_format" ? diskFormats : containerFormats
            if let value, !allowed.contains(value) { throw .badRequest("invalid \(field) '\(value)'") }
            if field == "disk_format" { image.diskFormat = value } else { image.containerFormat = value }
        case "visibility":
            guard let value, ["public", "private", "shared", "community"].contains(value) else {
                throw .badRequest("invalid visibility '\(patch.value ?? "")'")
            }
            image.visibility = value
        case "protected":
            guard let flag = patch.boolValue else { throw .badRequest("protected must be true or false") }
            image.isProtected = flag
        default:
            if let value { image.properties[field] = value } else if image.properties.removeValue(forKey: field) == nil, patch.operation == .remove {
                throw .conflict("property '\(field)' does not exist")
            }
        }
    }

    public func deleteImage(_ id: String, by caller: CallerIdentity) throws(ImageError) {
        let current = try image(id, for: caller)
        try authorize("delete_image", caller, current.policyTarget)
        if current.isProtected { throw .forbidden("image \(id) is protected: set protected to false first") }
        if current.status == .importing {
            throw .conflict("image \(id) is being imported (task \(current.importTask ?? "?")); wait for the import to end")
        }
        try catalogCall { try catalog.updateImage(id) { $0.status = .deleted } }
        store.remove(id)
        removeStagingResidue(of: id)
        logger.info("image deleted", metadata: ["image.id": "\(id)", "caller.identity": "\(caller)"])
    }

    /// Staged data of a deleted image (`<id>` and Glance's `<id>.<ext>` intermediates), unless being written.
    private func removeStagingResidue(of id: String) {
        for name in (try? staging.backing.names()) ?? [] where name == id || name.hasPrefix(id + ".") {
            staging.removeResidue(name)
        }
    }

    /// The `<id>.<ext>` outputs an interrupted import's plugins left.
    func removeIntermediates(of id: String) {
        for name in (try? staging.backing.names()) ?? [] where name.hasPrefix(id + ".") { staging.removeIntermediate(name) }
    }

    // MARK: - Staging through the API

    /// `PUT /v2/images/{id}/stage`: the image must be queued; the data goes through the staging write path.
    public func beginStage(_ id: String, caller: Caller) throws(ImageError) -> StagedFileHandle {
        let who = staging.identify(caller)
        let current = try image(id, for: who)
        try authorize("upload_image", who, current.policyTarget)
        guard current.status == .queued else {
            throw .conflict("image \(id) is \(current.status.rawValue); data can only be staged while it is queued")
        }
        do {
            let (handle, _) = try staging.create(try StagedName(id), mode: 0o640, exclusive: false,
                                                 request: OpenRequest(read: false, write: true, truncate: true), caller: caller)
            return handle
        } catch {
            throw error == .busy(name: id) ? .conflict("image \(id) is being imported") : .forbidden("staging refused: \(error)")
        }
    }

    /// Ends an API upload: `complete` is false when the body was cut short (the file then stays `incomplete`).
    public func finishStage(_ id: String, handle: StagedFileHandle, complete: Bool, failure: String?) throws(ImageError) {
        if !complete { staging.markIncomplete(handle, reason: failure ?? "the upload ended before all its bytes arrived") }
        staging.flush(handle)
        staging.release(handle)
        guard complete, staging.stagedFile(named: id)?.state == .staged else {
            throw .badRequest("the upload of image \(id) was incomplete (\(failure ?? "truncated")); nothing was staged, send it again")
        }
    }

    /// A file sealed in staging under an image's id, by that image's project (or the service): the image's data is staged.
    /// Also records on the image why its staged data cannot be imported (a refused format, a failed write), in
    /// the `stagingfs_staging_message` property, and clears it once good data is staged.
    private func stagedThroughMount(_ file: StagedFile) {
        guard UUID(uuidString: file.name) != nil, let image = try? catalog.image(file.name),
              image.status == .queued, file.mayBeImported(byOwner: image.owner) else { return }
        // Sealed without an inspection while inspection is on means the inspector refused it.
        let refused = file.state == .incomplete || (configuration.inspectOnWrite && file.inspection == nil)
        let problem = refused ? file.message : nil
        bestEffort("record staged data on image", ["image.id": "\(file.name)", "staging.file": "\(file.name)"]) {
            _ = try catalog.updateImage(file.name) { image in
                guard image.status == .queued else { return }
                if file.state == .staged, problem == nil { image.status = .uploading }
                image.properties[Self.stagingMessageProperty] = problem
            }
        }
    }

    /// A catalog write whose failure must not stop its caller (a cleanup, a progress note): the failure is
    /// logged with the ids involved, never swallowed.
    func bestEffort(_ what: String, _ ids: Logger.Metadata, _ body: () throws -> Void) {
        do { try body() } catch {
            logger.error("could not \(what)", metadata: ids.merging(["error": "\(error)"]) { $1 })
        }
    }

    /// The image property that tells why staged data was refused.
    static let stagingMessageProperty = "stagingfs_staging_message"

    /// What the write path holds an image's data to: its declared disk_format, when it has one.
    private func formatExpectation(forStaged name: String) -> FormatExpectation? {
        guard UUID(uuidString: name) != nil, let image = try? catalog.image(name), image.diskFormat != nil else { return nil }
        return FormatExpectation(for: image, imports: configuration.imports)
    }

    // MARK: - Importing

    public func importMethods() -> [String] {
        configuration.imports.enabledImportMethods.filter { $0 == "glance-direct" || ($0 == "web-download" && downloader != nil) }
    }

    /// `POST /v2/images/{id}/import`: locks the image for a new task (409 if a live import holds it) and runs the flow.
    /// glance-direct imports the staged data; web-download (`uri`) first streams the URI into staging through the
    /// write path as `stagingCaller` (hashed, inspected, within the caller's quota), then continues the same way.
    public func importImage(_ id: String, method: String, uri: String? = nil, by caller: CallerIdentity,
                            stagingAs stagingCaller: Caller? = nil) throws(ImageError) -> ImportTask {
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
            guard let uri, !uri.isEmpty else { throw .badRequest("web-download needs the image's URI: {\"method\": {\"name\": \"web-download\", \"uri\": \"http://…\"}}") }
            do { try configuration.imports.webDownload.filtering.validate(uri) } catch { throw .badRequest(error.description) }
            try checkDownloadShare(of: current.owner)
            guard current.status == .queued else {
                throw .conflict("image \(id) is \(current.status.rawValue); web-download needs a queued image (no data yet)")
            }
        }
        var task = ImportTask(imageID: id, method: method, owner: current.owner, userID: {
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
                    let live = holderTask.map { [.pending, .processing].contains($0.status) && Date().timeIntervalSince($0.updatedAt) < Self.staleLock } ?? false
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
                let (handle, _) = try staging.create(try StagedName(id), mode: 0o640, exclusive: false,
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
            throw .overLimit("project \(project ?? "-") already runs \(running) web-download imports, the limit of [stagingfs] web_download_per_project; wait until one ends")
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
        updateTask(lease) { $0.status = .processing }
        let task = try? catalog.task(taskID)
        let context = ImportContext(lease: lease, imageID: imageID, roles: roles(of: task), controller: self)
        let plugins = configuration.imports.plugins.plugins
        let flow = task?.input["import_req"] == "web-download"
            ? ImportFlow.webDownload(uri: task?.input["uri"] ?? "", plugins: plugins)
            : ImportFlow.glanceDirect(plugins: plugins)
        do {
            try ImportFlow.run(flow, context)
            let result = ["image_id": imageID, "os_hash_value": context.hashes[configuration.hashingAlgorithm] ?? "",
                          "promotion": context.promotion?.rawValue ?? ""]
            finishTask(lease, status: .success, message: "", result: result)
            logger.info("import succeeded", metadata: ["task.id": "\(taskID)", "image.id": "\(imageID)",
                                                       "import.promotion": "\(context.promotion?.rawValue ?? "-")"])
        } catch {
            finishTask(lease, status: .failure, message: error.description, result: nil)
            logger.warning("import failed", metadata: ["task.id": "\(taskID)", "image.id": "\(imageID)", "error": "\(error)"])
        }
    }

    // MARK: - What the steps use

    /// The roles of the user who asked for an import, from the identity map (the service user counts as admin).
    private func roles(of task: ImportTask?) -> [String] {
        guard let userID = task?.userID else { return Array(PolicyCredentials(.service).roles) }
        return configuration.identityMap.rules.first { $0.identity.userID == userID }?.identity.roles ?? []
    }

    /// The staged file a web-download task writes; nil after a restart (the task is then interrupted).
    func takeDownload(_ taskID: String) -> StagedFileHandle? {
        downloads.withLock { $0.removeValue(forKey: taskID) }
    }

    /// The image a task imports; gone (deleted) counts as the task having lost its lock.
    func lockedImage(_ id: String, taskID: String) throws(ImportFailure) -> Image {
        do {
            guard let image = try catalog.image(id) else { throw ImportFailure.lockLost(imageID: id, taskID: taskID, holder: nil) }
            return image
        } catch let error as ImportFailure { throw error } catch { throw .catalog(reason: "\(error)") }
    }

    /// Changes an image only while the task holds its lock and this node its lease: the one unit of work every
    /// flow change goes through.
    func changeLockedImage(_ id: String, lease: TaskLease, _ change: @escaping (inout Image) -> Void) throws(ImportFailure) {
        do {
            try catalog.updateImage(id, holding: lease) { image in
                guard image.importTask == lease.taskID else {
                    throw ImportFailure.lockLost(imageID: id, taskID: lease.taskID, holder: image.importTask)
                }
                change(&image)
            }
        } catch let error as ImportFailure { throw error } catch CatalogError.leaseLost {
            throw .leaseLost(taskID: lease.taskID, node: node)
        } catch { throw .catalog(reason: "\(error)") }
    }

    /// Drops this task's lock, if it still holds it (and this node the task), and puts the image back to `queued`.
    func releaseLock(imageID: String, lease: TaskLease) {
        try? changeLockedImage(imageID, lease: lease) { Self.unlock(&$0) }
    }

    /// `releaseLock` for a task not yet recorded (its acceptance failed).
    private func releaseLock(imageID: String, taskID: String) {
        bestEffort("release the import lock", ["image.id": "\(imageID)", "task.id": "\(taskID)"]) {
            _ = try catalog.updateImage(imageID) { image in if image.importTask == taskID { Self.unlock(&image) } }
        }
    }

    private static func unlock(_ image: inout Image) {
        image.importTask = nil
        if image.status == .importing { image.status = .queued }
    }

    /// Takes an import's data out of the store again, but only the file this import put there (`promoted`, its
    /// inode): after a takeover, the store may already hold another import's file under the same name.
    func removeFromStore(imageID: String, promotion: Promotion?, promoted: UInt64?) {
        if let promoted, store.fileID(of: imageID) != promoted { return }
        switch promotion {
        case .renamed?:
            do { try staging.restore(from: store, id: imageID, to: imageID) } catch {
                logger.error("could not move promoted data back into staging; removing it from the store",
                             metadata: ["image.id": "\(imageID)", "error": "\(error)"])
                store.remove(imageID)
            }
        case .copied?: store.remove(imageID)
        case nil: break
        }
    }

    func reportProgress(_ lease: TaskLease, bytesDone: Int64) {
        let due = progressWritten.withLock { written -> Bool in
            if let last = written[lease.taskID], Date().timeIntervalSince(last) < 1 { return false }
            written[lease.taskID] = Date()
            return true
        }
        if due { updateTask(lease) { $0.bytesDone = bytesDone } }
    }

    /// Changes a task this node holds; a node that lost the task to another writes nothing.
    func updateTask(_ lease: TaskLease, _ change: (inout ImportTask) -> Void) {
        guard var task = try? catalog.task(lease.taskID), task.lease == lease else { return }
        change(&task)
        task.updatedAt = Date()
        bestEffort("update the task", ["task.id": "\(task.id)", "image.id": "\(task.imageID)"]) { try catalog.save(task) }
    }

    func finishTask(_ lease: TaskLease, status: TaskStatus, message: String, result: [String: String]?) {
        progressWritten.withLock { $0[lease.taskID] = nil }
        updateTask(lease) { task in
            task.status = status
            task.message = message
            task.result = result
            if status == .success { task.bytesDone = task.bytesTotal }
            task.expiresAt = Date().addingTimeInterval(configuration.imports.taskTimeToLive * 3600)
        }
    }

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
    public func checkPolicy(_ action: String, as subject: CallerIdentity, target: [String: String], by caller: CallerIdentity) throws(ImageError) -> PolicyDecision {
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
        for image in (try? catalog.images()) ?? [] where image.status == .importing && image.importTask == nil {
            bestEffort("queue an image left importing without a task", ["image.id": "\(image.id)"]) {
                _ = try catalog.updateImage(image.id) { $0.status = .queued }
            }
        }
        for name in (try? staging.backing.names()) ?? [] {
            if let id = ProjectOwnershipPolicy.imageIDPrefix(of: name), let image = try? catalog.image(id), image.status == .deleted {
                staging.removeResidue(name)
            }
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

// The import controller: images and staging through the API. Imports are in +Importing, tasks and recovery in
// +Tasks, the lease keeper in +Nodes; every change an import makes to its image goes through ImportAction.
import Foundation
import Logging
import Synchronization

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
    let downloads = Mutex<[String: StagedFileHandle]>([:])
    /// This node's id among the nodes sharing the catalog, and how long its hold on a task lasts unrenewed.
    let node: String
    let leaseDuration: TimeInterval
    /// Tasks this node is running now: a claim never starts one twice here.
    let running = Mutex<Set<String>>([])
    /// Ends the lease keeper.
    let stopping = Atomic<Bool>(false)

    public static let diskFormats = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
    public static let containerFormats = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]
    /// Glance's rule: a lock older than this (its task not updated) may be taken over by a new import.
    static let staleLock: TimeInterval = 60 * 60

    public init(
        configuration: StagingConfiguration, catalog: any ImageCatalog & ClusterCatalog, staging: StagingArea,
        store: FilesystemImageStore, policy: PolicyEngine, downloader: (any WebDownloading)? = nil, logger: Logger
    ) {
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

    /// Refuses a caller outside the identity map (the API's informational calls ask this too).
    public func requireKnown(_ caller: CallerIdentity) throws(ImageError) {
        if case .unknown = caller { throw .forbidden("you are not in StagingFS's identity map; ask the operator to add an [identity:…] section for you") }
    }

    /// Glance's visibility rule (its database layer, below the policy): admins see every image, others their
    /// project's and public or community ones; a shared image is seen by its members, and there are none here.
    func visible(_ image: Image, _ caller: CallerIdentity) -> Bool {
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
        logger.notice(
            "denied",
            metadata: [
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
        if let id = request.id, !ImageID.isValid(id) { throw .badRequest("invalid id '\(id)': expected a UUID (8-4-4-4-12 hex digits)") }
        var image = Image(
            id: request.id?.lowercased() ?? UUID().uuidString.lowercased(), name: request.name, diskFormat: request.diskFormat,
            containerFormat: request.containerFormat, owner: caller.projectID, visibility: visibility,
            isProtected: request.isProtected ?? false, properties: request.properties)
        image.name = try Image.checkedName(request.name)
        try Image.checkPropertyCount(request.properties)
        image.tags = try Image.checkedTags(request.tags)
        image.minDisk = try Image.checkedMinimum(request.minDisk, "min_disk")
        image.minRam = try Image.checkedMinimum(request.minRam, "min_ram")
        image.isHidden = request.isHidden ?? false
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
        if patches.contains(where: { $0.attribute == "visibility" && $0.value == .text("public") }) {
            try authorize("publicize_image", caller, current.policyTarget)
        }
        return try catalogCall {
            try catalog.updateImage(id) { image in
                for patch in patches { try image.apply(patch) }
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
        staging.removeResidue(ofImage: id)
        logger.info("image deleted", metadata: ["image.id": "\(id)", "caller.identity": "\(caller)"])
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
            let (handle, _) = try staging.create(
                try StagedName(id), mode: 0o640, exclusive: false,
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
        guard ImageID.isValid(file.name), let image = try? catalog.image(file.name),
            image.status == .queued, file.mayBeImported(byOwner: image.owner)
        else { return }
        // Sealed without an inspection while inspection is on means the inspector refused it.
        let refused = file.state == .incomplete || (configuration.inspectOnWrite && file.inspection == nil)
        let problem = refused ? file.message : nil
        bestEffort("record staged data on image", ["image.id": "\(file.name)", "staging.file": "\(file.name)"]) {
            _ = try catalog.updateImage(file.name) { image in
                guard image.status == .queued else { return }
                // Glance shows the staged size from the stage on; the import sets the stored size.
                if file.state == .staged, problem == nil { (image.status, image.size) = (.uploading, file.size) }
                image.properties[Self.stagingMessageProperty] = problem
            }
        }
    }

    /// A catalog write whose failure must not stop its caller (a cleanup, a progress note): the failure is
    /// logged with the ids involved, never swallowed.
    /// Runs a catalog or store call whose failure must not stop what calls it, and says when it fails.
    @discardableResult
    func bestEffort<T>(_ what: String, _ ids: Logger.Metadata, _ body: () throws -> T) -> T? {
        do { return try body() } catch {
            logger.error("could not \(what)", metadata: ids.merging(["error": "\(error)"]) { $1 })
            return nil
        }
    }

    /// The image property that tells why staged data was refused.
    static let stagingMessageProperty = "stagingfs_staging_message"

    /// What the write path holds an image's data to: its declared disk_format, when it has one.
    private func formatExpectation(forStaged name: String) -> FormatExpectation? {
        guard ImageID.isValid(name), let image = try? catalog.image(name), image.diskFormat != nil else { return nil }
        return FormatExpectation(for: image, imports: configuration.imports)
    }
}

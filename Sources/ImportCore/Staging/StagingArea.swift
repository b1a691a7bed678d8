// The staging area: its state, recovery at start, access decisions and lookups. The write path, sealing and
// namespace changes are in the extensions beside this file.
import FormatInspection
import Foundation
import Logging
import Synchronization
import SystemPackage

/// The staging area: the backing directory's files as staged files, with their records, owners, quotas and digests.
/// Everything a caller does goes through here, whether it came through the FUSE mount or (later) the API.
public final class StagingArea: Sendable {
    public let configuration: StagingConfiguration
    let backing: any BackingStore
    let catalog: any StagedFileCatalog
    let policy: any StagingAccessPolicy
    let digests: DigestPipeline
    /// The hashing algorithm alone, to verify copies into the store (md5 is not needed there).
    let verification: DigestPipeline
    let ledger: QuotaLedger
    let logger: Logger

    /// Records and open files by name. Lock order: `namespace`, then a `LiveFile`'s state, then the ledger.
    struct Namespace {
        var records: NameTable<StagedFile>
        var live = NameTable<LiveFile>()
    }

    let namespace: Mutex<Namespace>
    let sealObservers = Mutex<[@Sendable (StagedFile) -> Void]>([])
    let detachObservers = Mutex<[@Sendable () -> Void]>([])
    let formatExpectations = Mutex<(@Sendable (String) -> FormatExpectation?)?>(nil)

    public init(
        configuration: StagingConfiguration, backing: any BackingStore, catalog: any StagedFileCatalog,
        policy: any StagingAccessPolicy = ProjectOwnershipPolicy(), logger: Logger
    ) throws {
        self.configuration = configuration
        self.backing = backing
        self.catalog = catalog
        self.policy = policy
        self.logger = logger
        self.digests = DigestPipeline(algorithms: [configuration.hashingAlgorithm, .md5])
        self.verification = DigestPipeline(algorithms: [configuration.hashingAlgorithm])
        let config = configuration
        self.ledger = QuotaLedger { config.quota(forProject: $0) }
        let records = try Self.recover(backing: backing, catalog: catalog, node: configuration.node, logger: logger)
        self.namespace = Mutex(Namespace(records: records))
        for file in records.values {
            if let project = file.projectID { ledger.add(bytes: file.size, files: 1, for: project) }
        }
    }

    /// Ends the digest threads. Call once, after the last handle is released.
    public func shutdown() {
        digests.shutdown()
        verification.shutdown()
    }

    /// Reconciles the catalog with the backing directory after a start: files this node left `writing` when it
    /// stopped become `incomplete` (other nodes' are theirs: they may still be writing); `staged` records whose
    /// file is no longer the one they hashed become `incomplete`; records whose file is gone are dropped.
    static func recover(backing: any BackingStore, catalog: any StagedFileCatalog, node: String, logger: Logger) throws -> NameTable<StagedFile> {
        try moveIntoProjectNamespaces(backing: backing, catalog: catalog, logger: logger)
        let present = NameSet(try backing.names())
        var records = NameTable<StagedFile>()
        for var file in try catalog.allStagedFiles() {
            guard present.contains(file.name), let attributes = try? backing.attributes(of: file.name), attributes.isRegularFile else {
                if file.state == .importing {
                    // An import moved it into the store and was interrupted: the import controller's recovery decides.
                    records[file.name] = file
                    continue
                }
                logger.notice("staged file vanished from the backing directory; dropping its record", metadata: ["staging.file": "\(file.name)"])
                try catalog.removeStagedFile(named: file.name)
                continue
            }
            if file.state == .writing, file.writerNode == nil || file.writerNode == node {
                file.state = .incomplete
                file.size = attributes.size
                file.hashValue = nil
                file.checksum = nil
                file.inspection = nil
                file.message =
                    "the daemon stopped while this file was being written; write it again (or reopen it for writing and close it to hash what is there)"
                file.updatedAt = Date()
                try catalog.save(file)
                logger.warning("file was being written when the daemon stopped; marked incomplete", metadata: ["staging.file": "\(file.name)"])
            } else if file.state == .staged, !file.isBound(to: attributes) {
                file = file.trusted(against: attributes)
                file.updatedAt = Date()
                try catalog.save(file)
                logger.warning(
                    "staged file is no longer the one its record hashed; marked incomplete",
                    metadata: [
                        "staging.file": "\(file.name)", "staging.message": "\(file.message ?? "")",
                    ])
            }
            records[file.name] = file
        }
        return records
    }

    // MARK: - Identity and decisions

    public func identify(_ caller: Caller) -> CallerIdentity {
        configuration.identityMap.resolve(caller)
    }

    func authorize(_ action: StagingAction, _ who: CallerIdentity, _ caller: Caller, file: StagedFile?, name: String?) throws(StagingError) {
        guard case let .deny(rule) = policy.decide(action, caller: who, file: file, name: name) else { return }
        logger.notice(
            "denied",
            metadata: [
                "caller.uid": "\(caller.uid)", "caller.gid": "\(caller.gid)", "caller.pid": "\(caller.pid)",
                "caller.identity": "\(who)", "staging.action": "\(action.rawValue)", "staging.file": "\(name ?? "/")",
                "policy.rule": "\(rule)",
            ])
        throw .accessDenied(action: action, rule: rule)
    }

    /// The record for `name`, or a service-owned one for a file that appeared in the backing directory
    /// without passing through StagingFS (e.g. written there by Glance itself).
    /// A record is trusted only as far as it is bound to the file there now (`StagedFile.trusted(against:)`).
    func record(_ name: String, in ns: Namespace, attributes: BackingAttributes) -> StagedFile {
        ns.records[name].map { $0.trusted(against: attributes) }
            ?? StagedFile(
                name: name, state: .staged, projectID: nil, userID: nil, ownerUID: attributes.uid, ownerGID: attributes.gid,
                size: attributes.size, hashAlgorithm: configuration.hashingAlgorithm,
                message: "found in the backing directory; not written through StagingFS, so not hashed")
    }

    func regularFile(_ name: String) throws(StagingError) -> BackingAttributes {
        let attributes: BackingAttributes
        do {
            attributes = try backing.attributes(of: name)
        } catch .noSuchFileOrDirectory {
            throw .notFound(name: name)
        } catch {
            throw .system(error, context: "stat \(name)")
        }
        guard attributes.isRegularFile else { throw .notFound(name: name) }
        return attributes
    }

    /// Runs a backing-store call, turning its errno into a `StagingError` that says what was being done.
    func system<T>(_ context: @autoclosure () -> String, existing: String? = nil, _ body: () throws(Errno) -> T) throws(StagingError) -> T {
        do {
            return try body()
        } catch {
            if error == .fileExists, let existing { throw .exists(name: existing) }
            throw .system(error, context: context())
        }
    }

    // MARK: - Looking

    /// Where a name the caller wrote lives (StagedName.swift): a member's free names are in its project's own
    /// namespace; `<image_id>` names and their intermediates, and the service user's names, are shared.
    public func place(_ name: StagedName, caller: Caller) throws(StagingError) -> StagedName {
        switch identify(caller) {
        case .unknown: return name  // refused by whatever it is used for, whatever the name
        case let .mapped(identity) where ProjectOwnershipPolicy.imageIDPrefix(of: name.value) == nil:
            return name.placed(inProject: identity.projectID)
        default: break
        }
        guard name.value != StagedName.projectsDirectory else {
            throw .invalidName(reason: "'\(name)' is where StagingFS keeps each project's own files; choose another name")
        }
        return name
    }

    /// A visible file's record and attributes. Files the caller may not see are reported as not found.
    public func lookup(_ name: StagedName, caller: Caller) throws(StagingError) -> (StagedFile, BackingAttributes) {
        let who = try known(caller, for: .lookup, name: name.value)
        let attributes = try regularFile(name.value)
        refresh(name.value)
        let file = namespace.withLock { record(name.value, in: $0, attributes: attributes) }
        if case .deny = policy.decide(.lookup, caller: who, file: file, name: name.value) { throw .notFound(name: name.value) }
        return (file, attributes)
    }

    /// A caller outside the identity map is refused whatever it asks and whether or not the name exists: no
    /// answer tells it more than that.
    func known(_ caller: Caller, for action: StagingAction, name: String? = nil) throws(StagingError) -> CallerIdentity {
        let who = identify(caller)
        if case .unknown = who { try authorize(action, who, caller, file: nil, name: name) }
        return who
    }

    /// The staging directory's own attributes (the mount's root).
    public func directoryAttributes(caller: Caller) throws(StagingError) -> BackingAttributes {
        _ = try known(caller, for: .list)
        do { return try backing.directoryAttributes() } catch { throw .system(error, context: "stat the backing directory") }
    }

    /// The files the caller may see, with their names and attributes: the shared names it may see and its
    /// project's own namespace; another project's namespace is not read at all.
    public func list(caller: Caller) throws(StagingError) -> [(StagedName, StagedFile, BackingAttributes)] {
        let who = identify(caller)
        try authorize(.list, who, caller, file: nil, name: nil)
        let names: [String]
        do { names = try backing.names() } catch { throw .system(error, context: "list the backing directory") }
        let own = who.projectID.map { StagedName.directoryName(ofProject: $0) }
        refreshAll()
        var visible: [(StagedName, StagedFile, BackingAttributes)] = []
        for key in names.sorted() {
            guard let name = try? StagedName(key: key), !name.isInProjectNamespace || name.isInNamespace(own),
                let attributes = try? backing.attributes(of: key), attributes.isRegularFile
            else { continue }
            let file = namespace.withLock { record(key, in: $0, attributes: attributes) }
            if policy.decide(.lookup, caller: who, file: file, name: key) == .allow { visible.append((name, file, attributes)) }
        }
        return visible
    }

    /// The file's `user.staging.*` extended attributes, in a stable order.
    public func extendedAttributes(of name: StagedName, caller: Caller) throws(StagingError) -> [(String, String)] {
        let (file, attributes) = try lookup(name, caller: caller)
        try authorize(.readExtendedAttributes, identify(caller), caller, file: file, name: name.value)
        // Writing means open for writing with bytes not yet sealed: a flush by the last writer seals the file,
        // so `cp` returning means `staged` even before the kernel's asynchronous release arrives.
        let writing = namespace.withLock { $0.live[name.value].map { $0.state.withLock { $0.writers > 0 && $0.dirty } } } ?? false
        var result: [(String, String)] = [
            ("user.staging.state", (writing ? StagedFileState.writing : file.state).rawValue),
            ("user.staging.size", String(writing ? attributes.size : file.size)),
            ("user.staging.os_hash_algo", file.hashAlgorithm.rawValue),
        ]
        if !writing {
            if let value = file.hashValue { result.append(("user.staging.os_hash_value", value)) }
            if let checksum = file.checksum { result.append(("user.staging.checksum", checksum)) }
        }
        if let inspected = detectedFormat(of: name.value) {
            result.append(("user.staging.format", inspected.format.rawValue))
            result.append(("user.staging.virtual_size", String(inspected.virtualSize)))
        }
        if let project = file.projectID { result.append(("user.staging.project_id", project)) }
        if let user = file.userID { result.append(("user.staging.user_id", user)) }
        if !writing, let message = file.message { result.append(("user.staging.message", message)) }
        return result
    }

    /// The format found in a staged file: while it is written, as soon as its header has arrived; once sealed,
    /// what the final inspection found (nil when it was refused or not inspected).
    public func detectedFormat(of name: String) -> InspectedImage? {
        // The inspector is copied out under the locks and evaluated outside them: its state runs every probe.
        let (writing, sealed) = namespace.withLock { ns -> (StreamingInspector?, InspectedImage?) in
            let writing = ns.live[name].flatMap { live in live.state.withLock { $0.writers > 0 && $0.dirty ? $0.inspector : nil } }
            return (writing, ns.records[name]?.inspection)
        }
        if case let .detected(image)? = writing?.state { return image }
        return sealed
    }

    /// Free space as this caller may use it: the reserve is not available, and neither is what a project's quota forbids.
    public func filesystemStats(caller: Caller) throws(StagingError) -> FilesystemStats {
        let who = try known(caller, for: .list)
        var stats: FilesystemStats
        do { stats = try backing.filesystemStats() } catch { throw .system(error, context: "statfs the backing directory") }
        let unit = max(stats.fragmentSize, 1)
        var available = stats.blocksAvailable
        available -= min(available, UInt64(configuration.freeSpaceReserve) / unit)
        if let project = who.projectID {
            let quota = configuration.quota(forProject: project)
            if quota.bytes > 0 {
                let left = max(0, quota.bytes - ledger.usage(of: project).bytes)
                available = min(available, UInt64(left) / unit)
            }
        }
        stats.blocksAvailable = available
        stats.blocksFree = max(stats.blocksFree, available)
        return stats
    }

    /// access(2): may the caller read or write the file (or, with nil, the directory)?
    public func checkAccess(_ name: StagedName?, write: Bool, caller: Caller) throws(StagingError) {
        let who = identify(caller)
        guard let name else {
            try authorize(write ? .create : .list, who, caller, file: nil, name: nil)
            return
        }
        let (file, _) = try lookup(name, caller: caller)
        try authorize(write ? .write : .read, who, caller, file: file, name: name.value)
    }
}

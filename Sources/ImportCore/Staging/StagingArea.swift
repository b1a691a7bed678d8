// The staging area's rules: who may do what to which staged file, the write path, quotas and sealing.
import Foundation
import Logging
import Synchronization
import SystemPackage

/// The write state one open file's handles share.
final class LiveFile: Sendable {
    struct State {
        var name: String
        var handles = 0
        var writers = 0
        /// Written or truncated since the last seal.
        var dirty = false
        var digest: DigestStream?
        /// Bytes fed to `digest`, in order from offset 0.
        var hashedUpTo: Int64 = 0
        /// A write or truncate broke the sequence: the digests must be recomputed from the file at seal.
        var stale = false
        /// The size accounted in the project's quota.
        var size: Int64
        /// Why a write of this writing session failed; the file then seals `incomplete`.
        var failure: String?
        /// Bytes written since writeback was last started.
        var unwrittenBack: Int64 = 0
        var unlinked = false
        /// The format inspector this writing session feeds (nil with `inspect_on_write` off).
        var inspector: StreamingInspector?
        /// The image's declared format, when the file is an image's data.
        var expectation: FormatExpectation?
        /// Set when the inspector refused the bytes: later writes of the session are refused too.
        var refusal: InspectionRefusal?
    }

    let state: Mutex<State>

    init(name: String, size: Int64) {
        state = Mutex(State(name: name, size: size))
    }
}

/// An open staged file. The FUSE layer keeps it in its handle table; the API layer will use it the same way.
public final class StagedFileHandle: Sendable {
    public let descriptor: FileDescriptor
    public let readable: Bool
    public let writable: Bool
    let live: LiveFile
    let project: String?

    init(descriptor: FileDescriptor, readable: Bool, writable: Bool, live: LiveFile, project: String?) {
        self.descriptor = descriptor
        self.readable = readable
        self.writable = writable
        self.live = live
        self.project = project
    }

    public var name: String { live.state.withLock { $0.name } }
}

/// How a caller opens a staged file.
public struct OpenRequest: Sendable {
    public var read: Bool
    public var write: Bool
    public var truncate: Bool
    public var sync: Bool

    public init(read: Bool, write: Bool, truncate: Bool = false, sync: Bool = false) {
        self.read = read
        self.write = write
        self.truncate = truncate
        self.sync = sync
    }
}

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
        var records: [String: StagedFile]
        var live: [String: LiveFile] = [:]
    }

    let namespace: Mutex<Namespace>
    let sealObservers = Mutex<[@Sendable (StagedFile) -> Void]>([])
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
    /// stopped become `incomplete` (other nodes' are theirs: they may still be writing); records whose file is
    /// gone are dropped.
    static func recover(backing: any BackingStore, catalog: any StagedFileCatalog, node: String, logger: Logger) throws -> [String: StagedFile] {
        let present = Set(try backing.names())
        var records: [String: StagedFile] = [:]
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
                file.message = "the daemon stopped while this file was being written; write it again (or reopen it for writing and close it to hash what is there)"
                file.updatedAt = Date()
                try catalog.save(file)
                logger.warning("file was being written when the daemon stopped; marked incomplete", metadata: ["staging.file": "\(file.name)"])
            }
            records[file.name] = file
        }
        return records
    }

    // MARK: - Identity and decisions

    public func identify(_ caller: Caller) -> CallerIdentity {
        configuration.identityMap.resolve(caller)
    }

    private func authorize(_ action: StagingAction, _ who: CallerIdentity, _ caller: Caller, file: StagedFile?, name: String?) throws(StagingError) {
        guard case let .deny(rule) = policy.decide(action, caller: who, file: file, name: name) else { return }
        logger.notice("denied", metadata: [
            "caller.uid": "\(caller.uid)", "caller.gid": "\(caller.gid)", "caller.pid": "\(caller.pid)",
            "caller.identity": "\(who)", "staging.action": "\(action.rawValue)", "staging.file": "\(name ?? "/")",
            "policy.rule": "\(rule)",
        ])
        throw .accessDenied(action: action, rule: rule)
    }

    /// The record for `name`, or a service-owned one for a file that appeared in the backing directory
    /// without passing through StagingFS (e.g. written there by Glance itself).
    private func record(_ name: String, in ns: Namespace, attributes: BackingAttributes) -> StagedFile {
        ns.records[name] ?? StagedFile(
            name: name, state: .staged, projectID: nil, userID: nil, ownerUID: attributes.uid, ownerGID: attributes.gid,
            size: attributes.size, hashAlgorithm: configuration.hashingAlgorithm,
            message: "found in the backing directory; not written through StagingFS, so not hashed")
    }

    private func regularFile(_ name: String) throws(StagingError) -> BackingAttributes {
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
    private func system<T>(_ context: @autoclosure () -> String, existing: String? = nil, _ body: () throws(Errno) -> T) throws(StagingError) -> T {
        do {
            return try body()
        } catch {
            if error == .fileExists, let existing { throw .exists(name: existing) }
            throw .system(error, context: context())
        }
    }

    // MARK: - Looking

    /// A visible file's record and attributes. Files the caller may not see are reported as not found.
    public func lookup(_ name: StagedName, caller: Caller) throws(StagingError) -> (StagedFile, BackingAttributes) {
        let who = identify(caller)
        let attributes = try regularFile(name.value)
        refresh(name.value)
        let file = namespace.withLock { record(name.value, in: $0, attributes: attributes) }
        if case .deny = policy.decide(.lookup, caller: who, file: file, name: name.value) {
            if case .unknown = who { try authorize(.lookup, who, caller, file: file, name: name.value) }
            throw .notFound(name: name.value)
        }
        return (file, attributes)
    }

    public func directoryAttributes() throws(StagingError) -> BackingAttributes {
        do { return try backing.directoryAttributes() } catch { throw .system(error, context: "stat the backing directory") }
    }

    /// The files the caller may see, with their attributes.
    public func list(caller: Caller) throws(StagingError) -> [(StagedFile, BackingAttributes)] {
        let who = identify(caller)
        try authorize(.list, who, caller, file: nil, name: nil)
        let names: [String]
        do { names = try backing.names() } catch { throw .system(error, context: "list the backing directory") }
        refreshAll()
        var visible: [(StagedFile, BackingAttributes)] = []
        for name in names.sorted() {
            guard (try? StagedName(name)) != nil, let attributes = try? backing.attributes(of: name), attributes.isRegularFile else { continue }
            let file = namespace.withLock { record(name, in: $0, attributes: attributes) }
            if policy.decide(.lookup, caller: who, file: file, name: name) == .allow { visible.append((file, attributes)) }
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
        var stats: FilesystemStats
        do { stats = try backing.filesystemStats() } catch { throw .system(error, context: "statfs the backing directory") }
        let unit = max(stats.fragmentSize, 1)
        var available = stats.blocksAvailable
        available -= min(available, UInt64(configuration.freeSpaceReserve) / unit)
        if let project = identify(caller).projectID {
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

    // MARK: - Opening

    /// Creates a new staged file, owned by the caller's project, open for writing.
    public func create(_ name: StagedName, mode: UInt32, exclusive: Bool, request: OpenRequest, caller: Caller) throws(StagingError) -> (StagedFileHandle, BackingAttributes) {
        guard mode & 0o7000 == 0 else {
            logger.notice("refused setuid/setgid/sticky bits", metadata: ["staging.file": "\(name)", "caller.uid": "\(caller.uid)"])
            throw .notPermitted(operation: "creating a file with setuid, setgid or sticky bits", reason: "staged images are data, never programs")
        }
        let who = identify(caller)
        if let existing = try? backing.attributes(of: name.value), existing.isRegularFile {
            // The name is taken. A file the caller may not see is refused as such: never opened, never replaced.
            let file = namespace.withLock { record(name.value, in: $0, attributes: existing) }
            try authorize(.write, who, caller, file: file, name: name.value)
            if exclusive { throw .exists(name: name.value) }
            let handle = try open(name, request: OpenRequest(read: request.read, write: true, truncate: request.truncate, sync: request.sync), caller: caller)
            return (handle, try attributes(of: handle))
        }
        try authorize(.create, who, caller, file: nil, name: name.value)
        let project = who.projectID
        if let project { try ledger.reserve(bytes: 0, files: 1, for: project) }
        let handle: StagedFileHandle
        do {
            handle = try namespace.withLock { (ns: inout Namespace) throws(StagingError) -> StagedFileHandle in
                let descriptor: FileDescriptor
    descriptor = try system("create \(name)", existing: name.value) { () throws(Errno) in
                    try backing.open(name.value, access: .readWrite, truncate: false, sync: request.sync, createMode: mode & 0o777)
                }
                let userID: String? = if case let .mapped(identity) = who { identity.userID } else { nil }
                let file = StagedFile(
                    name: name.value, state: .writing, projectID: project, userID: userID, ownerUID: caller.uid, ownerGID: caller.gid,
                    hashAlgorithm: configuration.hashingAlgorithm, writerNode: configuration.node)
                do { try catalog.save(file) } catch {
                    try? descriptor.close()
                    try? backing.unlink(name.value)
                    throw .system(.ioError, context: "record \(name) in the catalog: \(error)")
                }
                ns.records[name.value] = file
                let live = LiveFile(name: name.value, size: 0)
                ns.live[name.value] = live
                live.state.withLock {
                    $0.handles = 1
                    $0.writers = 1
                    startWriting(&$0, truncated: true)
                }
                return StagedFileHandle(descriptor: descriptor, readable: true, writable: true, live: live, project: project)
            }
        } catch {
            if let project { ledger.release(bytes: 0, files: 1, for: project) }
            throw error
        }
        logger.info("created", metadata: ["staging.file": "\(name)", "caller.identity": "\(who)", "caller.uid": "\(caller.uid)"])
        return (handle, try attributes(of: handle))
    }

    /// Opens a visible staged file for reading and/or writing.
    public func open(_ name: StagedName, request: OpenRequest, caller: Caller) throws(StagingError) -> StagedFileHandle {
        let who = identify(caller)
        let (file, attributes) = try lookup(name, caller: caller)
        if request.read { try authorize(.read, who, caller, file: file, name: name.value) }
        if request.write { try authorize(.write, who, caller, file: file, name: name.value) }
        if request.write, file.state == .importing { throw .busy(name: name.value) }
        let handle = try namespace.withLock { (ns: inout Namespace) throws(StagingError) -> StagedFileHandle in
            let descriptor: FileDescriptor
            descriptor = try system("open \(name)") { () throws(Errno) in
                try backing.open(name.value, access: request.write ? .readWrite : .readOnly, truncate: false, sync: request.sync, createMode: nil)
            }
            let live = ns.live[name.value] ?? LiveFile(name: name.value, size: attributes.size)
            ns.live[name.value] = live
            live.state.withLock { $0.handles += 1 }
            let handle = StagedFileHandle(descriptor: descriptor, readable: request.read, writable: request.write, live: live, project: file.projectID)
            guard request.write else { return handle }
            if request.truncate {
                do { try truncateLocked(handle, to: 0) } catch let error as StagingError {
                    live.state.withLock { $0.handles -= 1 }
                    try? descriptor.close()
                    throw error
                } catch {}
            }
            live.state.withLock {
                $0.writers += 1
                if $0.writers == 1 { startWriting(&$0, truncated: request.truncate) }
            }
            var updated = file
            updated.state = .writing
            updated.writerNode = configuration.node
            updated.updatedAt = Date()
            ns.records[name.value] = updated
            try? catalog.save(updated)
            return handle
        }
        return handle
    }

    /// A writing session begins: digests start from offset 0 (exact when the writer rewrites from the start).
    private func startWriting(_ state: inout LiveFile.State, truncated: Bool) {
        state.dirty = true
        state.failure = nil
        state.digest?.cancel()
        state.digest = configuration.hashOnWrite ? digests.makeStream() : nil
        state.hashedUpTo = 0
        state.stale = !truncated && state.size > 0
        state.refusal = nil
        state.inspector = configuration.inspectOnWrite ? StreamingInspector() : nil
        state.expectation = configuration.inspectOnWrite ? formatExpectations.withLock({ $0 })?(state.name) : nil
    }

    public func attributes(of handle: StagedFileHandle) throws(StagingError) -> BackingAttributes {
        do { return try backing.attributes(of: handle.descriptor) } catch { throw .system(error, context: "stat \(handle.name)") }
    }

    // MARK: - The write path

    /// Writes `data` at `offset`: quota and reserve first, then the backing file, then (when it continues the
    /// sequence) hands the same buffer to the digest lanes. Nothing acknowledged is ever undone.
    public func write(_ handle: StagedFileHandle, _ data: Data, at offset: Int64) throws(StagingError) -> Int {
        try write(handle, count: data.count, at: offset, digestible: data) { () throws(Errno) in
            try backing.write(handle.descriptor, data, at: offset)
        }
    }

    /// Writes `count` bytes that `transfer` moves into the backing file itself (the FUSE layer splices them from
    /// the kernel when nothing needs to see them: with `hash_on_write = false`). Same rules as `write(_:_:at:)`;
    /// with digests running, such a write breaks the sequence and the digests are recomputed at seal.
    public func write(_ handle: StagedFileHandle, count: Int, at offset: Int64,
                      transfer: (FileDescriptor) throws(Errno) -> Void) throws(StagingError) -> Int {
        try write(handle, count: count, at: offset, digestible: nil) { () throws(Errno) in try transfer(handle.descriptor) }
    }

    private func write(_ handle: StagedFileHandle, count: Int, at offset: Int64, digestible data: Data?,
                       perform: () throws(Errno) -> Void) throws(StagingError) -> Int {
        guard handle.writable else { throw .badHandle(reason: "the file was not opened for writing") }
        let end = offset + Int64(count)
        return try handle.live.state.withLock { (state: inout LiveFile.State) throws(StagingError) -> Int in
            if let refusal = state.refusal { throw .formatRefused(name: state.name, reason: refusal.reason) }
            state.dirty = true
            let growth = max(0, end - state.size)
            if growth > 0 {
                do { try reserve(growth, for: handle.project) } catch let error as StagingError {
                    state.failure = state.failure ?? error.description
                    throw error
                } catch {}
            }
            do {
                try perform()
            } catch let error as Errno {
                let actual = (try? backing.attributes(of: handle.descriptor).size) ?? state.size
                release(growth - max(0, actual - state.size), for: handle.project)
                state.size = max(state.size, actual)
                state.stale = true
                state.failure = state.failure ?? "writing at offset \(offset) failed: \(error)"
                throw .system(error, context: "write \(state.name)")
            } catch {}
            state.size = max(state.size, end)
            state.unwrittenBack += Int64(count)
            if state.unwrittenBack >= Self.writebackInterval {
                backing.startWriteback(handle.descriptor, offset: max(0, end - state.unwrittenBack), count: state.unwrittenBack)
                state.unwrittenBack = 0
            }
            if let digest = state.digest, let data, !state.stale, offset == state.hashedUpTo {
                digest.feed(data)
                state.hashedUpTo = end
            } else if state.digest != nil, !state.stale {
                state.stale = true
                logger.debug("write out of sequence; digests will be recomputed at seal", metadata: [
                    "staging.file": "\(state.name)", "write.offset": "\(offset)", "staging.hashed_up_to": "\(state.hashedUpTo)",
                ])
            }
            if state.inspector != nil { try inspect(&state, data, at: offset, count: count, descriptor: handle.descriptor) }
            return count
        }
    }

    /// Feeds the written bytes the format inspector still needs (read back from the file when they were spliced)
    /// and refuses the write as soon as they prove the image unsafe or not its declared format. The bytes stay.
    private func inspect(_ state: inout LiveFile.State, _ data: Data?, at offset: Int64, count: Int,
                         descriptor: FileDescriptor) throws(StagingError) {
        // The inspector sees every write it can (it tracks how far the file has grown, and copies only what its
        // checks want); spliced bytes are read back only when wanted. Its verdict is worked out again only after
        // a write it wanted: the other writes cannot change it.
        let wanted = state.inspector?.wants(offset: offset, count: count) == true
        if let data {
            state.inspector?.feed(data, at: offset)
        } else if wanted, let bytes = try? backing.read(descriptor, at: offset, count: count) {
            state.inspector?.feed(bytes, at: offset)
        }
        guard wanted else { return }
        let refusal: InspectionRefusal?
        switch state.inspector?.state {
        case let .refused(unsafe)?: refusal = unsafe
        case let .detected(image)? where FormatExpectation.isDefinite(image): refusal = state.expectation?.mismatch(image)
        default: refusal = nil
        }
        guard let refusal else { return }
        state.refusal = refusal
        state.failure = state.failure ?? "refused by the format inspector: \(refusal.reason)"
        logger.warning("write refused by the format inspector", metadata: [
            "staging.file": "\(state.name)", "write.offset": "\(offset)", "inspection.reason": "\(refusal.reason)",
        ])
        throw .formatRefused(name: state.name, reason: refusal.reason)
    }

    /// Writeback is started every this many bytes, so that storage works while the bytes still arrive and the
    /// writer's fsync at the end finds little left to do.
    static let writebackInterval: Int64 = 8 << 20

    private func reserve(_ bytes: Int64, for project: String?) throws(StagingError) {
        if configuration.freeSpaceReserve > 0 {
            let available = (try? backing.filesystemStats().bytesAvailable) ?? Int64.max
            if available - bytes < configuration.freeSpaceReserve {
                throw .noSpace(reason: "the backing filesystem must keep \(configuration.freeSpaceReserve) bytes free (free_space_reserve); \(available) are free")
            }
        }
        if let project { try ledger.reserve(bytes: bytes, for: project) }
    }

    private func release(_ bytes: Int64, for project: String?) {
        if let project, bytes > 0 { ledger.release(bytes: bytes, for: project) }
    }

    /// Truncates through a handle (ftruncate, or open with O_TRUNC).
    public func truncate(_ handle: StagedFileHandle, to size: Int64) throws(StagingError) {
        guard handle.writable else { throw .badHandle(reason: "the file was not opened for writing") }
        try truncateLocked(handle, to: size)
    }

    private func truncateLocked(_ handle: StagedFileHandle, to size: Int64) throws(StagingError) {
        try handle.live.state.withLock { (state: inout LiveFile.State) throws(StagingError) in
            let growth = size - state.size
            if growth > 0 { try reserve(growth, for: handle.project) }
            do { try backing.truncate(handle.descriptor, to: size) } catch let error as Errno {
                release(growth, for: handle.project)
                throw .system(error, context: "truncate \(state.name)")
            } catch {}
            if growth < 0 { release(-growth, for: handle.project) }
            state.size = size
            state.dirty = true
            if size == 0, state.digest != nil || configuration.hashOnWrite {
                state.digest?.cancel()
                state.digest = configuration.hashOnWrite ? digests.makeStream() : nil
                state.hashedUpTo = 0
                state.stale = false
            } else if size != state.hashedUpTo {
                state.stale = true
            }
        }
    }

    /// Truncates by name (truncate(2) without an open handle).
    public func truncate(_ name: StagedName, to size: Int64, caller: Caller) throws(StagingError) {
        let handle = try open(name, request: OpenRequest(read: false, write: true), caller: caller)
        defer { release(handle) }
        try truncate(handle, to: size)
    }

    public func sync(_ handle: StagedFileHandle, dataOnly: Bool) throws(StagingError) {
        do { try backing.sync(handle.descriptor, dataOnly: dataOnly) } catch { throw .system(error, context: "fsync \(handle.name)") }
    }

    /// close(2) of one descriptor: when it is the file's only writer, the file is sealed now, so that
    /// `cp` returning means the file is staged with its hashes.
    public func flush(_ handle: StagedFileHandle) {
        guard handle.writable, handle.live.state.withLock({ $0.writers == 1 }) else { return }
        seal(handle)
    }

    /// The last reference to a handle is gone: seal when the last writer leaves, and forget the file when nobody has it open.
    public func release(_ handle: StagedFileHandle) {
        let lastWriter = handle.live.state.withLock { state -> Bool in
            if handle.writable { state.writers -= 1 }
            return handle.writable && state.writers == 0
        }
        if lastWriter {
            seal(handle)
            handle.live.state.withLock { state in
                if state.writers == 0 {
                    state.digest?.cancel()
                    state.digest = nil
                }
            }
        }
        namespace.withLock { ns in
            handle.live.state.withLock { state in
                state.handles -= 1
                if state.handles == 0, ns.live[state.name] === handle.live { ns.live[state.name] = nil }
            }
        }
        try? handle.descriptor.close()
    }

    /// Records the file as `staged` (or `incomplete`) with its size and digests.
    private func seal(_ handle: StagedFileHandle) {
        guard let session = handle.live.state.withLock({ state -> (DigestStream?, Bool, Int64, String?, StreamingInspector?)? in
            guard state.dirty, !state.unlinked else { return nil }
            state.dirty = false
            // The stream stays: finishing digests a copy of its state, so writes through a descriptor that is
            // still open (dd closes a dup of its output before writing) keep hashing in sequence.
            return (state.digest, state.stale, state.hashedUpTo, state.failure, state.inspector)
        }) else { return }
        let (digest, stale, hashedUpTo, writeFailure, inspector) = session
        var failure = writeFailure
        // `staged` promises that these bytes are there after a crash too: an import renames them into the store
        // without reading them again. Writeback started while writing, so this is mostly already done.
        do { try backing.sync(handle.descriptor, dataOnly: false) } catch {
            failure = failure ?? "the bytes could not be made durable (fsync: \(error))"
        }
        let size = (try? backing.attributes(of: handle.descriptor).size) ?? 0
        var hashes: [DigestAlgorithm: String] = [:]
        var message: String?
        var state = StagedFileState.staged
        if let failure {
            state = .incomplete
            message = "a write failed (\(failure)); the bytes before it are intact, but write the file again before importing it"
        } else if configuration.hashOnWrite {
            if let digest, !stale, hashedUpTo == size {
                hashes = digest.finish()
            } else {
                do {
                    hashes = try digests.digest { (offset, count) throws(Errno) in try backing.read(handle.descriptor, at: offset, count: count) }
                } catch {
                    state = .incomplete
                    message = "the file could not be read back to hash it: \(error)"
                }
            }
        } else {
            message = "hash_on_write is off: hashes are computed at import"
        }
        var inspection: InspectedImage?
        if state == .staged, let inspector {
            switch inspectSealed(handle.descriptor, inspector, size: size) {
            case let .accepted(image): inspection = image
            case let .refused(refusal): message = "refused by the format inspector: \(refusal.reason)"
            }
        }
        let file = namespace.withLock { ns -> StagedFile? in
            let name = handle.live.state.withLock { $0.name }
            guard var file = ns.records[name] else { return nil }
            file.state = state
            file.size = size
            file.hashValue = hashes[configuration.hashingAlgorithm]
            file.checksum = hashes[.md5]
            file.message = message
            file.updatedAt = Date()
            file.sealedModification = try? backing.attributes(of: handle.descriptor).modificationNanoseconds
            file.inspection = inspection
            ns.records[name] = file
            try? catalog.save(file)
            return file
        }
        guard let file else { return }
        for observer in sealObservers.withLock({ $0 }) { observer(file) }
        logger.info("sealed", metadata: [
            "staging.file": "\(file.name)", "staging.state": "\(file.state.rawValue)", "staging.size": "\(file.size)",
            "staging.rehashed": "\(stale || hashedUpTo != size)", "image.os_hash_value": "\(file.hashValue ?? "-")",
        ])
    }

    /// The sealed file's format: the streaming inspector's verdict when it kept every region its checks need,
    /// otherwise whole-file inspection (a few small reads). An unreadable file is refused as such.
    private func inspectSealed(_ descriptor: FileDescriptor, _ inspector: StreamingInspector, size: Int64) -> InspectionVerdict {
        let tailStart = max(0, size - 512)
        if let tail = try? backing.read(descriptor, at: tailStart, count: Int(size - tailStart)),
           let verdict = inspector.finish(size: size, tail: [UInt8](tail)) {
            return verdict
        }
        return inspect(descriptor, size: size)
    }

    /// Whole-file inspection of an open backing file.
    func inspect(_ descriptor: FileDescriptor, size: Int64) -> InspectionVerdict {
        do {
            return try FormatInspector.inspect(size: size) { offset, count in [UInt8](try backing.read(descriptor, at: offset, count: count)) }
        } catch {
            return .refused(InspectionRefusal(format: nil, reason: "the file could not be read to inspect it: \(error)"))
        }
    }

    /// Tells the write path which format an image's data must have (the import controller knows the images).
    public func expectFormats(_ provider: @escaping @Sendable (String) -> FormatExpectation?) {
        formatExpectations.withLock { $0 = provider }
    }

    // MARK: - Changing the namespace

    /// unlink(2).
    public func remove(_ name: StagedName, caller: Caller) throws(StagingError) {
        let who = identify(caller)
        let (file, attributes) = try lookup(name, caller: caller)
        try authorize(.remove, who, caller, file: file, name: name.value)
        if file.state == .importing { throw .busy(name: name.value) }
        try namespace.withLock { (ns: inout Namespace) throws(StagingError) in
            try system("unlink \(name)") { () throws(Errno) in try backing.unlink(name.value) }
            forget(name.value, in: &ns, size: attributes.size)
        }
        logger.info("removed", metadata: ["staging.file": "\(name)", "caller.identity": "\(who)"])
    }

    /// Drops the record of a name that no longer exists (removed, or replaced by a rename) and its quota.
    func forget(_ name: String, in ns: inout Namespace, size: Int64) {
        let file = ns.records.removeValue(forKey: name)
        try? catalog.removeStagedFile(named: name)
        var accounted = size
        if let live = ns.live.removeValue(forKey: name) {
            live.state.withLock {
                $0.unlinked = true
                $0.digest?.cancel()
                accounted = $0.size
            }
        }
        if let project = file?.projectID { ledger.release(bytes: accounted, files: 1, for: project) }
    }

    /// rename(2) within the staging area, with or without replacing the target.
    public func rename(_ source: StagedName, to target: StagedName, replace: Bool, caller: Caller) throws(StagingError) {
        let who = identify(caller)
        let (file, _) = try lookup(source, caller: caller)
        try authorize(.rename, who, caller, file: file, name: source.value)
        // The new name is decided as a create: renaming onto an image's name is staging into that image.
        try authorize(.create, who, caller, file: nil, name: target.value)
        if file.state == .importing || stagedFile(named: target.value)?.state == .importing {
            throw .busy(name: file.state == .importing ? source.value : target.value)
        }
        if let existing = try? backing.attributes(of: target.value) {
            guard replace else { throw .exists(name: target.value) }
            let targetFile = namespace.withLock { record(target.value, in: $0, attributes: existing) }
            try authorize(.remove, who, caller, file: targetFile, name: target.value)
        }
        try namespace.withLock { (ns: inout Namespace) throws(StagingError) in
            let replaced = try? backing.attributes(of: target.value)
            try system("rename \(source) to \(target)", existing: target.value) { () throws(Errno) in
                try backing.rename(source.value, to: target.value, replace: replace)
            }
            if let replaced, source != target { forget(target.value, in: &ns, size: replaced.size) }
            if var moved = ns.records.removeValue(forKey: source.value) {
                moved.name = target.value
                ns.records[target.value] = moved
            }
            try? catalog.renameStagedFile(from: source.value, to: target.value)
            if let live = ns.live.removeValue(forKey: source.value) {
                live.state.withLock { $0.name = target.value }
                ns.live[target.value] = live
            }
        }
        logger.info("renamed", metadata: ["staging.file": "\(source)", "staging.target": "\(target)", "caller.identity": "\(who)"])
    }

    /// utimensat(2).
    public func setTimes(_ name: StagedName, access: TimeChange?, modification: TimeChange?, caller: Caller) throws(StagingError) {
        let (file, _) = try lookup(name, caller: caller)
        try authorize(.setTimes, identify(caller), caller, file: file, name: name.value)
        do { try backing.setTimes(of: name.value, access: access, modification: modification) } catch {
            throw .system(error, context: "set times of \(name)")
        }
        // Setting times (rsync does it after closing) changes no byte: a sealed file stays importable.
        namespace.withLock { ns in
            guard var record = ns.records[name.value], record.state == .staged, record.sealedModification != nil else { return }
            record.sealedModification = try? backing.attributes(of: name.value).modificationNanoseconds
            ns.records[name.value] = record
            try? catalog.save(record)
        }
    }

    /// chmod(2): permission bits only. They are kept for tools that set them (rsync, cp -p) but do not grant
    /// access: StagingFS decides every operation from the caller's identity.
    public func setMode(_ name: StagedName, to mode: UInt32, caller: Caller) throws(StagingError) {
        guard mode & 0o7000 == 0 else {
            logger.notice("refused setuid/setgid/sticky bits", metadata: ["staging.file": "\(name)", "caller.uid": "\(caller.uid)"])
            throw .notPermitted(operation: "setting setuid, setgid or sticky bits", reason: "staged images are data, never programs")
        }
        let (file, _) = try lookup(name, caller: caller)
        try authorize(.setMode, identify(caller), caller, file: file, name: name.value)
        do { try backing.setMode(of: name.value, to: mode & 0o777) } catch { throw .system(error, context: "chmod \(name)") }
    }

    /// Changing owners is not part of staging: ownership is the caller's project, recorded at create.
    public func refuseOwnerChange(_ name: StagedName, caller: Caller) -> StagingError {
        logger.notice("refused chown", metadata: ["staging.file": "\(name)", "caller.uid": "\(caller.uid)"])
        return .notPermitted(operation: "changing a staged file's owner", reason: "a staged file belongs to the project that wrote it")
    }

    /// The record of a file, as the catalog has it now.
    public func stagedFile(named name: String) -> StagedFile? {
        refresh(name)
        return namespace.withLock { $0.records[name] }
    }

    /// Several nodes share the catalog: a file this node does not have open may have been written, sealed or
    /// imported through another node since this node last looked, so its record is read again. (Files this node
    /// has open are this node's to record.) A catalog that cannot be read leaves the record as it was.
    func refresh(_ name: String) {
        guard namespace.withLock({ $0.live[name] == nil }), let stored = try? Result(catching: { try catalog.stagedFile(named: name) }).get() else {
            return
        }
        namespace.withLock { ns in
            guard ns.live[name] == nil else { return }
            ns.records[name] = stored
        }
    }

    /// `refresh` for every record at once (a directory listing).
    private func refreshAll() {
        guard let stored = try? catalog.allStagedFiles() else { return }
        let byName = Dictionary(stored.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
        namespace.withLock { ns in
            for name in Set(ns.records.keys).union(byName.keys) where ns.live[name] == nil { ns.records[name] = byName[name] }
        }
    }

    /// Files other nodes were writing when they stopped heartbeating become `incomplete`, as this node's own do
    /// when it restarts: their bytes cannot be trusted whole.
    public func abandonWrites(ofNodes nodes: Set<String>) {
        guard !nodes.isEmpty, let stored = try? catalog.allStagedFiles() else { return }
        for var file in stored where file.state == .writing && nodes.contains(file.writerNode ?? "") {
            file.state = .incomplete
            file.hashValue = nil
            file.checksum = nil
            file.message = "node \(file.writerNode ?? "?") stopped while this file was being written through it; write it again"
            file.updatedAt = Date()
            try? catalog.save(file)
            namespace.withLock { ns in if ns.live[file.name] == nil { ns.records[file.name] = file } }
            logger.warning("file was being written by a node that stopped; marked incomplete", metadata: [
                "staging.file": "\(file.name)", "node.id": "\(file.writerNode ?? "?")",
            ])
        }
    }

    public func usage(ofProject project: String) -> (bytes: Int64, files: Int) {
        let usage = ledger.usage(of: project)
        return (usage.bytes, usage.files)
    }
}

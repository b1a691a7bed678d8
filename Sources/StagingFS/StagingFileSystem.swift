// FUSE operations in Swift terms: inode numbers and handles in, results or errnos out. No libfuse types here.
import Foundation
import ImportCore
import Logging
import SystemPackage

/// Attributes of a node as the kernel sees them.
public struct NodeAttributes: Sendable {
    public var ino: UInt64
    public var mode: UInt32
    public var linkCount: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: Int64
    public var blocks: Int64
    public var blockSize: Int
    public var accessTime: timespec
    public var modificationTime: timespec
    public var changeTime: timespec
}

/// A looked-up name: the node the kernel will hold a reference to.
public struct NodeEntry: Sendable {
    public var attributes: NodeAttributes
}

/// What a setattr call asks to change.
public struct AttributeChanges: Sendable {
    public var size: Int64?
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var accessTime: TimeChange?
    public var modificationTime: TimeChange?

    public init() {}
}

/// open(2) flags, as the kernel passed them.
public struct OpenFlags: Sendable {
    public var rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    var request: OpenRequest {
        let access = rawValue & O_ACCMODE
        return OpenRequest(
            read: access != O_WRONLY, write: access != O_RDONLY, truncate: rawValue & O_TRUNC != 0,
            sync: rawValue & (O_SYNC | O_DSYNC) != 0)
    }

    var exclusive: Bool { rawValue & O_EXCL != 0 }
}

/// The staging filesystem: FUSE's operations over a `StagingArea`, with the inode and handle tables.
public final class StagingFileSystem: Sendable {
    public let area: StagingArea
    let inodes = InodeTable()
    let handles = HandleTable()
    let logger: Logger

    public init(area: StagingArea, logger: Logger) {
        self.area = area
        self.logger = logger
    }

    /// Runs a staging call, turning its error into the caller's errno (see ErrnoMapping.swift). An EIO tells the
    /// caller nothing of its cause: the cause is logged first (a backing-store failure, with what was being done).
    private func run<T>(_ body: () throws(StagingError) -> T) -> Result<T, Errno> {
        do { return .success(try body()) } catch {
            if error.errno == .ioError { logger.error("answering EIO", metadata: ["error": "\(error)"]) }
            return .failure(error.errno)
        }
    }

    private func name(of ino: UInt64) throws(StagingError) -> StagedName {
        guard ino != InodeTable.root, let node = inodes.node(ino) else { throw .notFound(name: "inode \(ino)") }
        return try StagedName(key: node.name)
    }

    private func attributes(_ file: StagedFile?, _ backing: BackingAttributes, ino: UInt64) -> NodeAttributes {
        NodeAttributes(
            ino: ino, mode: backing.mode, linkCount: backing.isDirectory ? 2 : 1,
            uid: file?.ownerUID ?? backing.uid, gid: file?.ownerGID ?? backing.gid, size: backing.size,
            // st_blksize is what cp, rsync and qemu-img size their writes by: the backing 4 KiB would cost eight
            // FUSE requests per 128 KiB; the largest write the mount accepts costs one.
            blocks: backing.blocks, blockSize: max(backing.blockSize, Int(FuseOperations.maxWrite)),
            accessTime: backing.accessTime, modificationTime: backing.modificationTime, changeTime: backing.changeTime)
    }

    private func flatDirectory(_ parent: UInt64) throws(StagingError) {
        // The staging area is one flat directory, as Glance's node_staging_uri is.
        guard parent == InodeTable.root else { throw .notFound(name: "inode \(parent)") }
    }

    // MARK: - Names and attributes

    public func lookup(parent: UInt64, name: some Collection<UInt8>, caller: Caller) -> Result<NodeEntry, Errno> {
        run { () throws(StagingError) in
            try flatDirectory(parent)
            let staged = try area.place(StagedName(bytes: name), caller: caller)
            let (file, backing) = try area.lookup(staged, caller: caller)
            let ino = inodes.remember(name: staged.value, backingInode: backing.inode)
            return NodeEntry(attributes: attributes(file, backing, ino: ino))
        }
    }

    public func forget(_ ino: UInt64, count: UInt64) {
        inodes.forget(ino, count: count)
    }

    public func getattr(_ ino: UInt64, handle: UInt64?, caller: Caller) -> Result<NodeAttributes, Errno> {
        run { () throws(StagingError) in
            if ino == InodeTable.root { return attributes(nil, try area.directoryAttributes(caller: caller), ino: ino) }
            if let handle, let open = handles.file(handle) { return try attributes(of: open, ino: ino) }
            let staged = try name(of: ino)
            // fstat(2) comes without a handle: an open file whose name is gone (or is another file's) is still itself.
            do throws(StagingError) {
                let (file, backing) = try area.lookup(staged, caller: caller)
                if backing.inode == inodes.node(ino)?.backingInode { return attributes(file, backing, ino: ino) }
            } catch .notFound {}
            guard let open = handles.file(onInode: ino) else { throw .notFound(name: staged.value) }
            return try attributes(of: open, ino: ino)
        }
    }

    /// An open file's attributes, from its descriptor, with the owner it had when opened.
    private func attributes(of open: StagedFileHandle, ino: UInt64) throws(StagingError) -> NodeAttributes {
        // Imported while open: the descriptor names an image in the store now, as for reads (ESTALE).
        guard !open.isDetached else { throw .detached(name: open.name) }
        var shown = attributes(nil, try area.attributes(of: open), ino: ino)
        (shown.uid, shown.gid) = (open.ownerUID, open.ownerGID)
        return shown
    }

    public func setattr(_ ino: UInt64, _ changes: AttributeChanges, handle: UInt64?, caller: Caller) -> Result<NodeAttributes, Errno> {
        let changed = run { () throws(StagingError) in
            if ino == InodeTable.root {
                throw .notPermitted(operation: "changing the staging directory's attributes", reason: "it is the mount itself")
            }
            // ftruncate(2) acts on the open file, which needs no name: it may have been unlinked or renamed since.
            // (The kernel sends no owner or mode with it; a time it sends is the truncate's own "now".)
            if let size = changes.size, changes.mode == nil, changes.uid == nil, changes.gid == nil,
                let handle, let open = handles.file(handle), open.writable
            {
                return try area.truncate(open, to: size)
            }
            let staged = try name(of: ino)
            let (file, backing) = try area.lookup(staged, caller: caller)
            let current = attributes(file, backing, ino: ino)
            if let uid = changes.uid, uid != current.uid { throw area.refuseOwnerChange(staged, caller: caller) }
            if let gid = changes.gid, gid != current.gid { throw area.refuseOwnerChange(staged, caller: caller) }
            if let mode = changes.mode { try area.setMode(staged, to: mode & 0o7777, caller: caller) }
            if let size = changes.size { try area.truncate(staged, to: size, caller: caller) }
            if changes.accessTime != nil || changes.modificationTime != nil {
                try area.setTimes(staged, access: changes.accessTime, modification: changes.modificationTime, caller: caller)
            }
        }
        if case let .failure(errno) = changed { return .failure(errno) }
        return getattr(ino, handle: handle, caller: caller)
    }

    // MARK: - Files

    public func create(parent: UInt64, name: some Collection<UInt8>, mode: UInt32, flags: OpenFlags, caller: Caller) -> Result<(NodeEntry, UInt64), Errno> {
        run { () throws(StagingError) in
            try flatDirectory(parent)
            let staged = try area.place(StagedName(bytes: name), caller: caller)
            let (handle, backing) = try area.create(staged, mode: mode, exclusive: flags.exclusive, request: flags.request, caller: caller)
            let ino = inodes.remember(name: staged.value, backingInode: backing.inode)
            let id = handles.add(.file(handle, ino: ino))
            return (NodeEntry(attributes: attributes(area.stagedFile(named: staged.value), backing, ino: ino)), id)
        }
    }

    public func open(_ ino: UInt64, flags: OpenFlags, caller: Caller) -> Result<UInt64, Errno> {
        run { () throws(StagingError) in
            let handle = try area.open(try name(of: ino), request: flags.request, caller: caller)
            return handles.add(.file(handle, ino: ino))
        }
    }

    /// Inodes with handles whose file went into the store since they were opened: the kernel must drop its cached
    /// pages of them, or their reads would be served from the page cache instead of answering ESTALE.
    public func detachedInodes() -> Set<UInt64> {
        handles.detachedInodes()
    }

    /// The open descriptor to serve a read from (the adapter splices from it).
    public func readSource(_ handle: UInt64) -> Result<FileDescriptor, Errno> {
        guard let open = handles.file(handle) else { return .failure(.badFileDescriptor) }
        guard open.readable else { return .failure(.badFileDescriptor) }
        // Imported while open: the descriptor now names an image in the store, which no tenant handle may read.
        guard !open.isDetached else { return .failure(StagingError.detached(name: open.name).errno) }
        return .success(open.descriptor)
    }

    public func write(_ handle: UInt64, _ data: Data, at offset: Int64) -> Result<Int, Errno> {
        guard let open = handles.file(handle) else { return .failure(.badFileDescriptor) }
        return run { () throws(StagingError) in try area.write(open, data, at: offset) }
    }

    /// A write whose bytes `transfer` moves into the backing file (spliced by the adapter, never copied to us).
    public func write(_ handle: UInt64, count: Int, at offset: Int64, transfer: (FileDescriptor) throws(Errno) -> Void) -> Result<Int, Errno> {
        guard let open = handles.file(handle) else { return .failure(.badFileDescriptor) }
        return run { () throws(StagingError) in try area.write(open, count: count, at: offset, transfer: transfer) }
    }

    public func flush(_ handle: UInt64) -> Result<Void, Errno> {
        guard let open = handles.file(handle) else { return .failure(.badFileDescriptor) }
        area.flush(open)
        return .success(())
    }

    public func release(_ handle: UInt64) {
        if case let .file(open, _) = handles.remove(handle) { area.release(open) }
    }

    public func fsync(_ handle: UInt64, dataOnly: Bool) -> Result<Void, Errno> {
        guard let open = handles.file(handle) else { return .failure(.badFileDescriptor) }
        return run { () throws(StagingError) in try area.sync(open, dataOnly: dataOnly) }
    }

    public func unlink(parent: UInt64, name: some Collection<UInt8>, caller: Caller) -> Result<Void, Errno> {
        run { () throws(StagingError) in
            try flatDirectory(parent)
            try area.remove(try area.place(StagedName(bytes: name), caller: caller), caller: caller)
        }
    }

    /// rename(2) and renameat2(2) with RENAME_NOREPLACE; RENAME_EXCHANGE and RENAME_WHITEOUT are refused.
    public func rename(
        parent: UInt64, name: some Collection<UInt8>, newParent: UInt64, newName: some Collection<UInt8>,
        noReplace: Bool, otherFlags: Bool, caller: Caller
    ) -> Result<Void, Errno> {
        run { () throws(StagingError) in
            try flatDirectory(parent)
            try flatDirectory(newParent)
            guard !otherFlags else { throw .invalidName(reason: "exchange and whiteout renames are not supported") }
            let source = try area.place(StagedName(bytes: name), caller: caller)
            let target = try area.place(StagedName(bytes: newName), caller: caller)
            let (_, backing) = try area.lookup(source, caller: caller)
            try area.rename(source, to: target, replace: !noReplace, caller: caller)
            inodes.renamed(backingInode: backing.inode, to: target.value)
        }
    }

    // MARK: - The directory

    public func opendir(_ ino: UInt64, caller: Caller) -> Result<UInt64, Errno> {
        run { () throws(StagingError) in
            guard ino == InodeTable.root else { throw .system(.notDirectory, context: "opendir") }
            let root = attributes(nil, try area.directoryAttributes(caller: caller), ino: InodeTable.root)
            var entries: [DirectorySnapshot.Entry] = [.init(name: ".", attributes: root), .init(name: "..", attributes: root)]
            for (name, file, backing) in try area.list(caller: caller) {
                // Plain readdir reports the backing inode; readdirplus replaces it with a remembered one.
                entries.append(.init(name: name.shown, key: name.value, attributes: attributes(file, backing, ino: backing.inode)))
            }
            return handles.add(.directory(DirectorySnapshot(entries: entries)))
        }
    }

    public func directoryEntries(_ handle: UInt64) -> Result<DirectorySnapshot, Errno> {
        guard let snapshot = handles.directory(handle) else { return .failure(.badFileDescriptor) }
        return .success(snapshot)
    }

    /// readdirplus hands the kernel a reference to each entry but "." and "..": remember it.
    public func rememberListed(_ entry: DirectorySnapshot.Entry) -> NodeAttributes {
        var attributes = entry.attributes
        if let key = entry.key {
            attributes.ino = inodes.remember(name: key, backingInode: entry.attributes.ino)
        }
        return attributes
    }

    public func releasedir(_ handle: UInt64) {
        _ = handles.remove(handle)
    }

    public func statfs(caller: Caller) -> Result<FilesystemStats, Errno> {
        run { () throws(StagingError) in try area.filesystemStats(caller: caller) }
    }

    public func access(_ ino: UInt64, write: Bool, caller: Caller) -> Result<Void, Errno> {
        run { () throws(StagingError) in
            try area.checkAccess(ino == InodeTable.root ? nil : try name(of: ino), write: write, caller: caller)
        }
    }

    // MARK: - Extended attributes

    public func getxattr(_ ino: UInt64, name: String, caller: Caller) -> Result<[UInt8], Errno> {
        switch listedAttributes(ino, caller: caller) {
        case let .failure(errno): return .failure(errno)
        case let .success(attributes):
            guard let value = attributes.first(where: { $0.0 == name })?.1 else { return .failure(.noData) }
            return .success(Array(value.utf8))
        }
    }

    /// listxattr's answer: the names, each NUL-terminated.
    public func listxattr(_ ino: UInt64, caller: Caller) -> Result<[UInt8], Errno> {
        listedAttributes(ino, caller: caller).map { $0.flatMap { Array($0.0.utf8) + [0] } }
    }

    private func listedAttributes(_ ino: UInt64, caller: Caller) -> Result<[(String, String)], Errno> {
        return run { () throws(StagingError) in
            if ino == InodeTable.root {
                _ = try area.directoryAttributes(caller: caller)  // the root has none, but an unmapped caller is refused
                return []
            }
            return try area.extendedAttributes(of: try name(of: ino), caller: caller)
        }
    }

    /// setxattr/removexattr: `user.staging.*` is StagingFS's own and read-only; other attributes are not kept.
    public func changeXattr(_ ino: UInt64, name: String, caller: Caller) -> Errno {
        if name.hasPrefix("user.staging.") {
            logger.notice("refused to change a staging attribute", metadata: ["fuse.op": "setxattr", "xattr.name": "\(name)", "caller.uid": "\(caller.uid)"])
            return .notPermitted
        }
        return .notSupported
    }

    /// Operations that make no sense in a flat staging area of regular files.
    public func refuse(_ operation: String, caller: Caller, errno: Errno = .notPermitted) -> Errno {
        logger.notice(
            "refused",
            metadata: [
                "fuse.op": "\(operation)", "caller.uid": "\(caller.uid)", "caller.pid": "\(caller.pid)",
                "reason": "staging holds only regular files in one directory",
            ])
        return errno
    }
}

// What an import asks of the staging area: hold a staged file, hash it if needed, promote it, or give it back.
import Foundation
import SystemPackage

/// How staged data reached the store.
public enum Promotion: String, Sendable {
    /// Same filesystem: the staged file itself was renamed into the store (O(1)).
    case renamed
    /// Another filesystem: copied to a temporary name, synced, verified against the staged hash, renamed.
    case copied
}

extension StagingArea {
    /// Holds a staged file for an import: it must be `staged`, still the file its record hashed, and written by the
    /// image's project or the service user; from now on
    /// until the import ends no handle writes it (docs/architecture.md, invariant 3). Writers still open from
    /// before the seal, with nothing written since, get EBUSY on their next write; a file with a write
    /// generation running is refused. All of it is decided under the namespace lock, in one step.
    /// Data written by a project other than `owner` (the image's) is refused: staged data binds to its writer.
    public func beginImport(_ name: String, owner: String?) throws(ImportFailure) -> StagedFile {
        refresh(name)
        return try namespace.withLock { (ns: inout Namespace) throws(ImportFailure) -> StagedFile in
            guard let recorded = ns.records[name], let attributes = try? backing.attributes(of: name), attributes.isRegularFile else {
                throw .noStagedData(imageID: name)
            }
            let live = ns.live[name]
            if let live, live.state.withLock({ $0.isBeingWritten }) {
                throw .stagedDataNotReady(imageID: name, state: "being written", reason: "a handle has written to it since it was sealed; close it first")
            }
            guard recorded.state == .staged else {
                throw .stagedDataNotReady(imageID: name, state: recorded.state.rawValue, reason: recorded.message)
            }
            if let change = recorded.change(since: attributes) { throw .stagedDataChanged(imageID: name, what: change) }
            if !recorded.mayBeImported(byOwner: owner) {
                throw .stagedByAnotherProject(imageID: name, writer: recorded.projectID ?? "-", owner: owner)
            }
            var file = recorded
            file.state = .importing
            file.updatedAt = Date()
            // In one catalog transaction: another node may have begun writing it since this node read the record.
            let saved: Bool
            do { saved = try catalog.save(file, if: .unchangedSince(recorded)) } catch { throw .catalog(reason: "\(error)") }
            guard saved else {
                throw .stagedDataNotReady(
                    imageID: name, state: "changed", reason: "its record changed in the catalog while the import checked it (another node); try again")
            }
            ns.records[name] = file
            live?.state.withLock { $0.held = true }
            return file
        }
    }

    /// Gives a held file back (`importing` → `staged`) after a failed import; tolerates a file already gone.
    public func endImport(_ name: String) {
        refresh(name)
        namespace.withLock { ns in
            guard var file = ns.records[name], file.state == .importing else { return }
            file.state = .staged
            file.updatedAt = Date()
            do { try catalog.save(file) } catch {
                // The durable record stays `importing`; the import controller's recovery gives it back after a restart.
                logger.error("could not give staged data back in the catalog", metadata: ["staging.file": "\(name)", "error": "\(error)"])
            }
            ns.records[name] = file
            ns.live[name]?.state.withLock { $0.held = false }
        }
    }

    /// Moves a held file into the store as `id`: a rename on the same filesystem; otherwise a copy to a
    /// temporary name, fsync, verification against `expectedHash`, and a rename. `progress` gets bytes done.
    public func promote(
        _ name: String, into store: FilesystemImageStore, as id: String, expectedHash: String,
        progress: (Int64) -> Void
    ) throws(ImportFailure) -> Promotion {
        let attributes: BackingAttributes
        do { attributes = try backing.attributes(of: name) } catch { throw .noStagedData(imageID: name) }
        if attributes.device == store.device {
            // The store's copy is these very blocks: they must be durable before the image can become active.
            do {
                let descriptor = try backing.open(name, access: .readOnly, truncate: false, sync: false, createMode: nil)
                defer { try? descriptor.close() }
                try backing.sync(descriptor, dataOnly: false)
            } catch {
                throw .storeFailed(path: name, reason: "the staged data could not be made durable before the move: \(error)")
            }
            do { try backing.move(name, to: store.directory, as: id) } catch {
                throw .storeFailed(path: store.location(of: id), reason: "\(error)")
            }
            store.syncDirectory()
            progress(attributes.size)
            return .renamed
        }
        try copy(name, into: store, as: id, expectedHash: expectedHash, progress: progress)
        return .copied
    }

    private func copy(
        _ name: String, into store: FilesystemImageStore, as id: String, expectedHash: String,
        progress: (Int64) -> Void
    ) throws(ImportFailure) {
        let location = store.location(of: id)
        let source: FileDescriptor
        do { source = try backing.open(name, access: .readOnly, truncate: false, sync: false, createMode: nil) } catch {
            throw .noStagedData(imageID: name)
        }
        defer { try? source.close() }
        let (target, temporary): (FileDescriptor, String)
        do { (target, temporary) = try store.createTemporary(for: id) } catch {
            throw .storeFailed(path: location, reason: "\(error)")
        }
        var committed = false
        defer {
            try? target.close()
            if !committed { store.discard(temporary) }
        }
        let stream = verification.makeStream()
        defer { stream.cancel() }
        var offset: Int64 = 0
        while true {
            let chunk: Data
            do { chunk = try backing.read(source, at: offset, count: 1 << 20) } catch {
                throw .stagedDataNotReady(imageID: name, state: "unreadable", reason: "\(error)")
            }
            if chunk.isEmpty { break }
            do {
                _ = try chunk.withUnsafeBytes { try target.writeAll(toAbsoluteOffset: offset, $0) }
            } catch {
                throw .storeFailed(path: location, reason: "\(error)")
            }
            stream.feed(chunk)
            offset += Int64(chunk.count)
            progress(offset)
        }
        guard fsync(target.rawValue) == 0 else { throw .storeFailed(path: location, reason: "fsync: \(Errno(rawValue: errno))") }
        let actual = stream.finish()[configuration.hashingAlgorithm] ?? ""
        guard actual == expectedHash else { throw .verificationFailed(imageID: id, expected: expectedHash, actual: actual) }
        do { try store.commit(temporary, as: id) } catch { throw .storeFailed(path: location, reason: "\(error)") }
        committed = true
    }

    /// Takes an import's data out of the store again, but only the file this import put there (`promoted`, its
    /// inode; nil: whatever is there): after a takeover the store may hold another import's file under that name.
    /// Renamed data goes back into staging; a copy is removed.
    func withdraw(_ id: String, from store: FilesystemImageStore, promotion: Promotion?, promoted: UInt64?) {
        if let promoted, store.fileID(of: id) != promoted { return }
        switch promotion {
        case .renamed?:
            do { try restore(from: store, id: id, to: id) } catch {
                logger.error(
                    "could not move promoted data back into staging; removing it from the store",
                    metadata: ["image.id": "\(id)", "error": "\(error)"])
                store.remove(id)
            }
        case .copied?: store.remove(id)
        case nil: break
        }
    }

    /// Undoes a rename promotion: the store's file goes back into staging, `staged` again, with its quota.
    func restore(from store: FilesystemImageStore, id: String, to name: String) throws(ImportFailure) {
        do { try backing.move(id, from: store.directory, as: name) } catch {
            throw .storeFailed(path: store.location(of: id), reason: "moving it back into staging failed: \(error)")
        }
        endImport(name)
    }

    /// The import succeeded: the staged data is gone from staging (moved, or removed now after a copy). Handles
    /// still open on it are detached: none refers to an inode in the store.
    public func finishImport(_ name: String, promotion: Promotion) {
        refresh(name)
        namespace.withLock { ns in
            if promotion == .copied {
                do { try backing.unlink(name) } catch {
                    logger.error("could not remove staged data after copying it into the store", metadata: ["staging.file": "\(name)", "error": "\(error)"])
                }
            }
            let size = ns.records[name]?.size ?? 0
            forget(name, in: &ns, size: size, detaching: true)
        }
        announceDetachment()
        logger.info("staged data imported", metadata: ["staging.file": "\(name)", "import.promotion": "\(promotion.rawValue)"])
    }

    /// Marks a file being written as failed (an API upload cut short): it will seal `incomplete`.
    public func markIncomplete(_ handle: StagedFileHandle, reason: String) {
        handle.live.state.withLock { $0.failure = $0.failure ?? reason }
    }

    /// Removes leftover staged data (of a deleted image) unless someone is writing it, through this node or
    /// (as the shared catalog says) another.
    public func removeResidue(_ name: String) {
        refresh(name)
        namespace.withLock { ns in
            if let live = ns.live[name], live.state.withLock({ $0.writers > 0 }) { return }
            if ns.live[name] == nil, ns.records[name]?.state == .writing { return }
            do throws(Errno) { try backing.unlink(name) } catch {
                // Gone already is what was wanted; anything else leaves the bytes (and their quota) in place, said.
                if error != .noSuchFileOrDirectory {
                    logger.error("could not remove staging residue of a deleted image", metadata: ["staging.file": "\(name)", "error": "\(error)"])
                }
                return
            }
            forget(name, in: &ns, size: ns.records[name]?.size ?? 0)
        }
        logger.info("removed staging residue of a deleted image", metadata: ["staging.file": "\(name)"])
    }

    /// Observes seals (the import controller marks images `uploading` when their data is staged through the mount).
    public func onSeal(_ observer: @escaping @Sendable (StagedFile) -> Void) {
        sealObservers.withLock { $0.append(observer) }
    }

    /// Observes detachments: handles were detached (their file went into the store, or the daemon took its name).
    /// The FUSE layer drops what the kernel cached of those files, which reads would otherwise be served from.
    public func onDetach(_ observer: @escaping @Sendable () -> Void) {
        detachObservers.withLock { $0.append(observer) }
    }

    /// Called after the namespace lock is released: an observer may wait on the kernel, whose requests take it.
    func announceDetachment() {
        for observer in detachObservers.withLock({ $0 }) { observer() }
    }
}

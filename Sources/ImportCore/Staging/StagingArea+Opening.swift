// Opening staged files: create and open, each a new write generation when it writes.
import FormatInspection
import Foundation
import Logging
import Synchronization
import SystemPackage

extension StagingArea {
    // MARK: - Opening

    /// Creates a new staged file, owned by the caller's project, open for writing.
    public func create(
        _ name: StagedName, mode: UInt32, exclusive: Bool, request: OpenRequest, caller: Caller
    ) throws(StagingError) -> (StagedFileHandle, BackingAttributes) {
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
        do throws(StagingError) {
            handle = try namespace.withLock { (ns: inout Namespace) throws(StagingError) -> StagedFileHandle in
                // An import's record (its file may be in the store by now) is not replaced.
                if ns.records[name.value]?.state == .importing { throw .busy(name: name.value) }
                // Decided again under the lock, before the record is written: another create of the name may have
                // won since the check above, and its record must not be replaced (and then dropped) by this one.
                if (try? backing.attributes(of: name.value)) != nil { throw .exists(name: name.value) }
                let userID: String? = if case let .mapped(identity) = who { identity.userID } else { nil }
                let file = StagedFile(
                    name: name.value, state: .writing, projectID: project, userID: userID, ownerUID: caller.uid, ownerGID: caller.gid,
                    hashAlgorithm: configuration.hashingAlgorithm, writerNode: configuration.node)
                // The record comes first: a crash between the two leaves a record without a file (dropped at the
                // next start), never a tenant's file without a record (it would pass for the service's own).
                guard try saveRecord(file, if: .stateIsNot(.importing), doing: "record \(name) as being written") else {
                    throw .busy(name: name.value)  // an import through another node holds the name
                }
                let descriptor: FileDescriptor
                do throws(StagingError) {
                    descriptor = try system("create \(name)", existing: name.value) { () throws(Errno) in
                        try backing.open(name.value, access: .readWrite, truncate: false, sync: request.sync, createMode: mode & 0o777)
                    }
                } catch {
                    dropRecord(name.value, because: "creating its file failed")
                    throw error
                }
                ns.records[name.value] = file
                let live = LiveFile(name: name.value, size: 0)
                ns.live[name.value] = live
                live.state.withLock {
                    $0.handles = 1
                    $0.writers = 1
                    $0.writingRecorded = true
                    startWriting(&$0, truncated: true)
                }
                return StagedFileHandle(descriptor: descriptor, readable: true, writable: true, live: live, owner: file)
            }
        } catch {
            if let project { ledger.release(bytes: 0, files: 1, for: project) }
            throw error
        }
        logger.info("created", metadata: ["staging.file": "\(name)", "caller.identity": "\(who)", "caller.uid": "\(caller.uid)"])
        return (handle, try attributes(of: handle))
    }

    /// Opens a visible staged file for reading and/or writing. Opening for writing begins a write generation:
    /// `writing` is durable before the open returns, and before an `O_TRUNC` truncation.
    public func open(_ name: StagedName, request: OpenRequest, caller: Caller) throws(StagingError) -> StagedFileHandle {
        let who = identify(caller)
        let (file, _) = try lookup(name, caller: caller)
        if request.read { try authorize(.read, who, caller, file: file, name: name.value) }
        if request.write { try authorize(.write, who, caller, file: file, name: name.value) }
        return try namespace.withLock { (ns: inout Namespace) throws(StagingError) -> StagedFileHandle in
            // Decided again under the lock: an import may have taken the file since the lookup.
            if request.write, ns.records[name.value]?.state == .importing { throw .busy(name: name.value) }
            let descriptor: FileDescriptor
            descriptor = try system("open \(name)") { () throws(Errno) in
                try backing.open(name.value, access: request.write ? .readWrite : .readOnly, truncate: false, sync: request.sync, createMode: nil)
            }
            let size = (try? backing.attributes(of: descriptor).size) ?? 0
            let live = ns.live[name.value] ?? LiveFile(name: name.value, size: size)
            ns.live[name.value] = live
            live.state.withLock { $0.handles += 1 }
            let handle = StagedFileHandle(descriptor: descriptor, readable: request.read, writable: request.write, live: live, owner: file)
            guard request.write else { return handle }
            do throws(StagingError) {
                try markWriting(live, in: &ns)
                if request.truncate {
                    try live.state.withLock { (state: inout LiveFile.State) throws(StagingError) in try resize(&state, handle, to: 0) }
                }
            } catch {
                live.state.withLock { state in
                    state.handles -= 1
                    if state.handles == 0, ns.live[name.value] === live { ns.live[name.value] = nil }
                }
                try? descriptor.close()
                throw error
            }
            live.state.withLock {
                $0.writers += 1
                if $0.writers == 1 { startWriting(&$0, truncated: request.truncate) }
            }
            return handle
        }
    }

    /// Begins a write generation if none is running: the catalog durably says `writing` (on this node) before
    /// any byte of it is acknowledged, so that a crash can never leave an earlier `staged` record as the truth.
    /// Refused (EBUSY) while an import holds the file.
    func markWriting(_ live: LiveFile, in ns: inout Namespace) throws(StagingError) {
        try live.state.withLock { (state: inout LiveFile.State) throws(StagingError) in
            if state.refusesWrites { throw .busy(name: state.name) }
            guard !state.writingRecorded else { return }
            // A file removed while open has no record any more: its bytes can reach no import.
            if configuration.recordsWriteGenerations, !state.unlinked, ns.live[state.name] === live,
                let attributes = try? backing.attributes(of: state.name)
            {
                var file = record(state.name, in: ns, attributes: attributes)
                if file.state == .importing { throw .busy(name: state.name) }
                file.state = .writing
                file.writerNode = configuration.node
                file.updatedAt = Date()
                // In one catalog transaction: an import through another node may have taken the file.
                guard try saveRecord(file, if: .stateIsNot(.importing), doing: "record \(state.name) as being written") else {
                    throw .busy(name: state.name)
                }
                ns.records[state.name] = file
            }
            state.writingRecorded = true
            state.generation &+= 1
        }
    }

    /// Saves a record (with `condition`, only if the stored one meets it: returns whether it saved); a catalog
    /// that fails is logged with the file and becomes EIO for the caller.
    @discardableResult
    func saveRecord(_ file: StagedFile, if condition: StagedFileCondition? = nil, doing what: String) throws(StagingError) -> Bool {
        do {
            guard let condition else {
                try catalog.save(file)
                return true
            }
            return try catalog.save(file, if: condition)
        } catch {
            logger.error("catalog write failed", metadata: ["staging.file": "\(file.name)", "staging.state": "\(file.state.rawValue)", "error": "\(error)"])
            throw .system(.ioError, context: "\(what) in the catalog: \(error)")
        }
    }

    /// Removes a record from the catalog, logging (not hiding) a failure: a leftover row is harmless (lookups
    /// need the file), and the next start drops it.
    func dropRecord(_ name: String, because reason: String) {
        do { try catalog.removeStagedFile(named: name) } catch {
            logger.error(
                "could not remove a record from the catalog; the next start drops it",
                metadata: [
                    "staging.file": "\(name)", "reason": "\(reason)", "error": "\(error)",
                ])
        }
    }

    /// A writing session begins: digests start from offset 0 (exact when the writer rewrites from the start).
    func startWriting(_ state: inout LiveFile.State, truncated: Bool) {
        state.dirty = true
        state.failure = nil
        state.digest?.cancel()
        state.digest = configuration.hashOnWrite ? digests.makeStream() : nil
        state.hashedUpTo = 0
        state.stale = !truncated && state.size > 0
        state.refusal = nil
        state.inspector = configuration.inspectOnWrite ? StreamingInspector(options: configuration.imports.imageFormat) : nil
        state.expectation = configuration.inspectOnWrite ? formatExpectations.withLock({ $0 })?(state.name) : nil
    }

    public func attributes(of handle: StagedFileHandle) throws(StagingError) -> BackingAttributes {
        do { return try backing.attributes(of: handle.descriptor) } catch { throw .system(error, context: "stat \(handle.name)") }
    }
}

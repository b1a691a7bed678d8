// Changing the namespace: remove, rename, times and modes.
import Foundation
import Logging
import Synchronization
import SystemPackage

extension StagingArea {
    // MARK: - Changing the namespace

    /// unlink(2).
    public func remove(_ name: StagedName, caller: Caller) throws(StagingError) {
        let who = identify(caller)
        let (file, attributes) = try lookup(name, caller: caller)
        try authorize(.remove, who, caller, file: file, name: name.value)
        try namespace.withLock { (ns: inout Namespace) throws(StagingError) in
            // Decided under the lock: an import may have taken the file since the lookup.
            if ns.records[name.value]?.state == .importing { throw .busy(name: name.value) }
            try system("unlink \(name)") { () throws(Errno) in try backing.unlink(name.value) }
            forget(name.value, in: &ns, size: attributes.size)
        }
        logger.info("removed", metadata: ["staging.file": "\(name)", "caller.identity": "\(who)"])
    }

    /// Drops the record of a name that no longer exists (removed, replaced by a rename, imported) and its quota.
    /// With `detaching`, handles still open on it no longer refer to a staged file (it went into the store, or
    /// the daemon takes the name): their reads get ESTALE and their writes EBUSY.
    /// With `replacedByRename`, the catalog row stays: the rename has already written the moved record there.
    func forget(_ name: String, in ns: inout Namespace, size: Int64, detaching: Bool = false, replacedByRename: Bool = false) {
        let file = ns.records.removeValue(forKey: name)
        // The catalog may hold a row this node never read (another node's): it goes too.
        if !replacedByRename { dropRecord(name, because: "the file is gone from staging") }
        var accounted = size
        if let live = ns.live.removeValue(forKey: name) {
            live.state.withLock {
                $0.unlinked = true
                $0.detached = $0.detached || detaching
                $0.digest?.cancel()
                accounted = $0.size
                // Open handles keep a removed file's bytes, and may still write: as on any filesystem, its space
                // comes back at the last close (`release`). A detached file's bytes are in the store already.
                if !detaching, $0.handles > 0, file?.projectID != nil {
                    $0.chargedUntilLastClose = true
                    accounted = 0
                }
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
        if let existing = try? backing.attributes(of: target.value) {
            guard replace else { throw .exists(name: target.value) }
            let targetFile = namespace.withLock { record(target.value, in: $0, attributes: existing) }
            try authorize(.remove, who, caller, file: targetFile, name: target.value)
        }
        try namespace.withLock { (ns: inout Namespace) throws(StagingError) in
            // Decided under the lock: an import may have taken either name since the lookups.
            for name in [source.value, target.value] where ns.records[name]?.state == .importing { throw .busy(name: name) }
            let replaced = try? backing.attributes(of: target.value)
            // The record moves with the inode it is bound to, and is under the new name before the file is: a
            // crash after rename(2) finds it there, matching; a crash before finds it bound to another inode
            // (incomplete) or to no file (dropped). Never a renamed file without a record, which would pass for
            // the service's own.
            let recordMoves = source != target && ns.records[source.value] != nil
            if recordMoves, var ahead = ns.records[source.value] {
                ahead.name = target.value
                try saveRecord(ahead, doing: "record the rename of \(source) to \(target)")
            }
            do throws(StagingError) {
                try system("rename \(source) to \(target)", existing: target.value) { () throws(Errno) in
                    try backing.rename(source.value, to: target.value, replace: replace)
                }
            } catch {
                if recordMoves { putBackRecord(of: target.value, in: ns) }
                throw error
            }
            guard source != target else { return }
            // The target's row goes in the catalog transaction that renames the source's.
            if let replaced { forget(target.value, in: &ns, size: replaced.size, replacedByRename: recordMoves) }
            if var moved = ns.records.removeValue(forKey: source.value) {
                moved.name = target.value
                ns.records[target.value] = moved
                do { try catalog.renameStagedFile(from: source.value, to: target.value) } catch {
                    logger.error(
                        "could not rename a record in the catalog; the file is incomplete until written again",
                        metadata: [
                            "staging.file": "\(source)", "staging.target": "\(target)", "error": "\(error)",
                        ])
                    moved.state = moved.state == .staged ? .incomplete : moved.state
                    moved.message = "its record could not follow a rename (\(error)); write it again before importing it"
                    ns.records[target.value] = moved
                }
            }
            if let live = ns.live.removeValue(forKey: source.value) {
                live.state.withLock { $0.name = target.value }
                ns.live[target.value] = live
            }
        }
        logger.info("renamed", metadata: ["staging.file": "\(source)", "staging.target": "\(target)", "caller.identity": "\(who)"])
    }

    /// A rename that failed: the target's catalog row goes back to what this node knows of it.
    private func putBackRecord(of name: String, in ns: Namespace) {
        guard let known = ns.records[name] else { return dropRecord(name, because: "a rename onto it failed") }
        // saveRecord logs a failure; the row left then names the other inode, which reads as incomplete.
        do { try saveRecord(known, doing: "restore the record of \(name) after a failed rename") } catch {}
    }

    /// utimensat(2). Setting times (rsync does it after closing) changes no byte: a file bound to its record
    /// stays bound (the new mtime is bound under the same lock); any other file is left as it was.
    public func setTimes(_ name: StagedName, access: TimeChange?, modification: TimeChange?, caller: Caller) throws(StagingError) {
        let (file, _) = try lookup(name, caller: caller)
        try authorize(.setTimes, identify(caller), caller, file: file, name: name.value)
        try namespace.withLock { (ns: inout Namespace) throws(StagingError) in
            let before = try? backing.attributes(of: name.value)
            try system("set times of \(name)") { () throws(Errno) in
                try backing.setTimes(of: name.value, access: access, modification: modification)
            }
            let writing = ns.live[name.value]?.state.withLock { $0.isBeingWritten } ?? false
            guard !writing, var record = ns.records[name.value], record.state == .staged || record.state == .importing,
                let before, record.isBound(to: before), let after = try? backing.attributes(of: name.value)
            else { return }
            record.bind(to: after)
            ns.records[name.value] = record
            do { try catalog.save(record) } catch {
                // The durable record keeps the old mtime: after a restart the file is incomplete, never wrongly staged.
                logger.error("could not record new times of a staged file", metadata: ["staging.file": "\(name)", "error": "\(error)"])
            }
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
}

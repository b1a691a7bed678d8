// Plugin intermediates: files an import's plugins write beside the staged data, in Glance's layout `<image_id>.<ext>`.
import FormatInspection
import Foundation
import SystemPackage

extension StagingArea {
    /// Creates an intermediate owned by the daemon; only the service user sees it through the mount, and tenants
    /// cannot create such names (ProjectOwnershipPolicy). Whatever had the name before (a leftover of an earlier
    /// attempt, a file staged under it before that rule) is removed with its record, and its handles detached,
    /// under the namespace lock, so the new file inherits nothing. The caller closes the descriptor.
    func createIntermediate(_ name: String) throws(ImportFailure) -> FileDescriptor {
        defer { announceDetachment() }
        return try namespace.withLock { (ns: inout Namespace) throws(ImportFailure) -> FileDescriptor in
            let previous = try? backing.attributes(of: name)
            if previous != nil {
                do { try backing.unlink(name) } catch {
                    throw .storeFailed(path: backing.externalPath(of: name), reason: "removing what had the intermediate's name failed: \(error)")
                }
            }
            forget(name, in: &ns, size: previous?.size ?? 0, detaching: true)
            do { return try backing.open(name, access: .readWrite, truncate: true, sync: false, createMode: 0o600) } catch {
                throw .storeFailed(path: backing.externalPath(of: name), reason: "creating a plugin's output in staging failed: \(error)")
            }
        }
    }

    /// Reserves what a plugin's output for `project` may take, at most `bound` (named `boundName` in messages):
    /// no more than the project's quota and the free-space reserve leave. It is charged to the project at once,
    /// so the project's other writes see it taken while the output is written; `settle` trims it to the
    /// output's size, `release` gives it back when the output is removed.
    func reserveIntermediate(for project: String?, bound: Int64, boundName: String) throws(StagingError) -> IntermediateAllowance {
        var allowance = IntermediateAllowance(bytes: bound, limitedBy: boundName)
        if let project, let left = ledger.remainingBytes(for: project), left < allowance.bytes {
            allowance = IntermediateAllowance(bytes: left, limitedBy: "project \(project)'s staging quota (stage_quota_bytes)")
        }
        if configuration.freeSpaceReserve > 0, let available = try? backing.filesystemStats().bytesAvailable {
            let left = max(0, available - configuration.freeSpaceReserve)
            if left < allowance.bytes { allowance = IntermediateAllowance(bytes: left, limitedBy: "the free-space reserve (free_space_reserve)") }
        }
        if let project { try ledger.reserve(bytes: allowance.bytes, for: project) }
        return allowance
    }

    /// Keeps only `size` bytes of `allowance` charged.
    func settle(_ allowance: IntermediateAllowance, size: Int64, for project: String?) -> Int64 {
        release(max(0, allowance.bytes - size), for: project)
        return min(size, allowance.bytes)
    }

    /// Removes an intermediate; tolerates one already gone (reverts also run after a crash).
    func removeIntermediate(_ name: String) {
        do { try backing.unlink(name) } catch Errno.noSuchFileOrDirectory {} catch {
            logger.error("could not remove an intermediate", metadata: ["staging.file": "\(name)", "error": "\(error)"])
        }
    }

    /// Opens staged data or an intermediate for reading.
    func openForImport(_ name: String, imageID: String) throws(ImportFailure) -> FileDescriptor {
        do { return try backing.open(name, access: .readOnly, truncate: false, sync: false, createMode: nil) } catch {
            throw .noStagedData(imageID: imageID)
        }
    }

    func externalPath(of name: String) -> String { backing.externalPath(of: name) }

    /// Gives staged data that an import lent to qemu-img's sandbox, and never gave back (the daemon was killed
    /// during the run), its owner and mode back. A file already gone is fine.
    func reclaimFromSandbox(_ name: String) throws(SandboxError) {
        guard let descriptor = try? backing.open(name, access: .readOnly, truncate: false, sync: false, createMode: nil) else { return }
        defer { try? descriptor.close() }
        try QemuSandbox.Lending.reclaim(descriptor)
    }

    /// Whole-file inspection of staged data or an intermediate, with its size.
    func inspect(_ name: String, imageID: String) throws(ImportFailure) -> (InspectionVerdict, size: Int64) {
        let descriptor = try openForImport(name, imageID: imageID)
        defer { try? descriptor.close() }
        let size: Int64
        do { size = try backing.attributes(of: descriptor).size } catch { throw .noStagedData(imageID: imageID) }
        return (inspect(descriptor, size: size), size)
    }

    /// The digests of staged data or an intermediate, read from the file.
    func digests(of name: String, imageID: String) throws(ImportFailure) -> [DigestAlgorithm: String] {
        let descriptor = try openForImport(name, imageID: imageID)
        defer { try? descriptor.close() }
        do {
            return try digests.digest { (offset, count) throws(Errno) in try backing.read(descriptor, at: offset, count: count) }
        } catch {
            throw .stagedDataNotReady(imageID: imageID, state: "unreadable", reason: "\(error)")
        }
    }
}

/// What one plugin output may take, and which limit decided it.
struct IntermediateAllowance {
    let bytes: Int64
    let limitedBy: String
}

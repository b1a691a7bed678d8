// Plugin intermediates: files an import's plugins write beside the staged data, in Glance's layout `<image_id>.<ext>`.
import Foundation
import SystemPackage

extension StagingArea {
    /// Creates (replacing a leftover of an earlier attempt) an intermediate owned by the daemon; only the
    /// service user sees it through the mount. The caller closes the descriptor.
    func createIntermediate(_ name: String) throws(ImportFailure) -> FileDescriptor {
        try? backing.unlink(name)
        do { return try backing.open(name, access: .readWrite, truncate: true, sync: false, createMode: 0o600) } catch {
            throw .storeFailed(path: backing.externalPath(of: name), reason: "creating a plugin's output in staging failed: \(error)")
        }
    }

    /// Removes an intermediate; tolerates one already gone (reverts also run after a crash).
    func removeIntermediate(_ name: String) {
        try? backing.unlink(name)
    }

    /// Opens staged data or an intermediate for reading.
    func openForImport(_ name: String, imageID: String) throws(ImportFailure) -> FileDescriptor {
        do { return try backing.open(name, access: .readOnly, truncate: false, sync: false, createMode: nil) } catch {
            throw .noStagedData(imageID: imageID)
        }
    }

    func externalPath(of name: String) -> String { backing.externalPath(of: name) }

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

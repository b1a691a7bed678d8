// Glance's filesystem store: `<filesystem_store_datadir>/<image_id>`, never a partial file under that name.
import CLinux
import Foundation
import SystemPackage

/// The image store. Data arrives under a temporary name (or by an atomic rename from staging) and is renamed to
/// the image's id only when it is complete and synced, so a crash never leaves a partial file under that name.
public final class FilesystemImageStore: Sendable {
    public let path: String
    let directory: FileDescriptor
    public let device: UInt64

    /// Opens the store directory, creating it if needed (as Glance's filesystem store does).
    public init(path: String) throws(ImportFailure) {
        self.path = path
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            directory = try FileDescriptor.open(path, .readOnly, options: [.directory, .closeOnExec])
            device = UInt64(try Stat(directory).rawValue.st_dev)
        } catch {
            throw .storeFailed(path: path, reason: "\(error); create the directory or fix filesystem_store_datadir")
        }
    }

    deinit { try? directory.close() }

    public func location(of id: String) -> String { path + "/" + id }

    public func contains(_ id: String) -> Bool {
        (try? Stat(FilePath(id), relativeTo: directory, flags: .symlinkNoFollow)) != nil
    }

    /// The inode of an image's file, telling one import's file from another's under the same name.
    func fileID(of id: String) -> UInt64? {
        (try? Stat(FilePath(id), relativeTo: directory, flags: .symlinkNoFollow)).map { UInt64($0.rawValue.st_ino) }
    }

    public func remove(_ id: String) {
        _ = unlinkat(directory.rawValue, id, 0)
        syncDirectory()
    }

    /// A new file for an image's data, under a name no image has (`.<id>.partial`).
    func createTemporary(for id: String) throws(Errno) -> (FileDescriptor, String) {
        let name = ".\(id).partial"
        _ = unlinkat(directory.rawValue, name, 0)  // a leftover of an interrupted copy
        let fd = openat(directory.rawValue, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0o640)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        return (FileDescriptor(rawValue: fd), name)
    }

    /// Gives a complete, synced temporary file the image's name.
    func commit(_ temporary: String, as id: String) throws(Errno) {
        guard clinux_renameat2(directory.rawValue, temporary, directory.rawValue, id, clinux_rename_noreplace) == 0 else {
            throw Errno(rawValue: errno)
        }
        syncDirectory()
    }

    func discard(_ temporary: String) {
        _ = unlinkat(directory.rawValue, temporary, 0)
    }

    func syncDirectory() {
        _ = fsync(directory.rawValue)
    }

    /// Names in the store that are not a complete image (interrupted copies), for recovery.
    func partialFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasPrefix(".") && $0.hasSuffix(".partial") }
    }

    func removePartial(_ name: String) { _ = unlinkat(directory.rawValue, name, 0) }
}

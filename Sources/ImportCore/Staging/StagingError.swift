// Why a staging operation was refused, in words for people; the FUSE layer maps each case to one errno.
import SystemPackage

/// A refused or failed staging operation.
public enum StagingError: Error, Equatable, CustomStringConvertible {
    /// No visible file of that name.
    case notFound(name: String)
    /// The name is taken (exclusive create, or rename without replace).
    case exists(name: String)
    /// The name cannot be a staged file's name.
    case invalidName(reason: String)
    case nameTooLong(length: Int)
    /// The caller may not do this; `rule` says which rule refused it.
    case accessDenied(action: StagingAction, rule: String)
    /// The operation makes no sense in a staging area (device nodes, directories, setuid bits, links…).
    case notPermitted(operation: String, reason: String)
    /// A project quota would be crossed.
    case quotaExceeded(projectID: String, limit: String)
    /// A size or offset beyond what a staged file can have.
    case fileTooLarge(reason: String)
    /// Staged data would pass `[DEFAULT] image_size_cap`, which Glance holds staging to as well.
    case sizeCapExceeded(size: Int64, cap: Int64)
    /// The backing filesystem is full, or its free-space reserve would be crossed.
    case noSpace(reason: String)
    case notSupported(operation: String)
    /// The handle cannot do that (e.g. writing through a read-only handle).
    case badHandle(reason: String)
    /// The file is being imported: it cannot be written, truncated, renamed or removed until the import ends.
    case busy(name: String)
    /// The file this handle was opened on was imported into the image store (or replaced by an import's
    /// intermediate): the handle no longer refers to a staged file.
    case detached(name: String)
    /// The format inspector refused the bytes written: an unsafe image, or not the image's disk_format.
    case formatRefused(name: String, reason: String)
    /// An OS call on the backing directory failed.
    case system(Errno, context: String)

    public var description: String {
        switch self {
        case let .notFound(name): return "no staged file named '\(name)'"
        case let .exists(name): return "a file named '\(name)' already exists"
        case let .invalidName(reason): return "invalid name: \(reason)"
        case let .nameTooLong(length): return "name is \(length) bytes long; names are at most 255 bytes"
        case let .accessDenied(action, rule): return "\(action.rawValue) denied by rule '\(rule)'"
        case let .notPermitted(operation, reason): return "\(operation) is not permitted in a staging area: \(reason)"
        case let .quotaExceeded(project, limit):
            return "project \(project) would exceed its staging quota (\(limit)); remove staged files or ask for a larger quota"
        case let .fileTooLarge(reason): return "file too large: \(reason); staged images are at most \(Int64.max) bytes and must fit the backing filesystem"
        case let .sizeCapExceeded(size, cap):
            return "file too large: \(size) bytes would pass image_size_cap (\(cap) bytes), the largest image this deployment takes"
        case let .noSpace(reason): return "no space: \(reason)"
        case let .notSupported(operation): return "\(operation) is not supported by StagingFS"
        case let .badHandle(reason): return "bad file handle: \(reason)"
        case let .busy(name):
            return "'\(name)' is held by an import (no handle may write it until the import ends); wait for the import to end, then open it again"
        case let .detached(name): return "'\(name)' was imported into the image store while this handle was open; the handle no longer refers to a staged file"
        case let .formatRefused(name, reason):
            return "'\(name)' refused: \(reason); the bytes written so far are kept for inspection, remove the file or write a safe image of the right format"
        case let .system(errno, context): return "\(context): \(errno)"
        }
    }
}

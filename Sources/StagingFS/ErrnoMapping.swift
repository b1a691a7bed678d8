// The one place where a staging refusal becomes the errno the caller sees.
import Glibc
import ImportCore
import SystemPackage

extension StagingError {
    /// The errno a FUSE caller gets for this error (docs/operator-guide.md, "What the mount supports, and what it refuses").
    var errno: Errno {
        switch self {
        case .notFound: return .noSuchFileOrDirectory
        case .exists: return .fileExists
        case .invalidName: return .invalidArgument
        case .nameTooLong: return .fileNameTooLong
        case .accessDenied: return .permissionDenied
        case .notPermitted: return .notPermitted
        case .quotaExceeded: return .diskQuotaExceeded
        case .fileTooLarge, .sizeCapExceeded: return .fileTooLarge
        case .noSpace: return .noSpace
        case .notSupported: return .notSupported
        case .badHandle: return .badFileDescriptor
        case .busy: return .resourceBusy
        case .detached: return .staleNFSFileHandle
        case .formatRefused: return Errno(rawValue: EMEDIUMTYPE)  // "Wrong medium type": the bytes are not the image declared
        case let .system(errno, _): return errno
        }
    }
}

// Every error the API answers, mapped to its HTTP status in one place (as ErrnoMapping does for the mount):
// ImportCore knows no HTTP.
import ImportCore

extension ImageError {
    /// Glance's status for the same refusal.
    var httpStatus: Int {
        switch self {
        case .notFound: return 404
        case .forbidden: return 403
        case .conflict: return 409
        case .badRequest: return 400
        case .unavailable: return 503
        case .overLimit: return 413
        }
    }
}

extension StagingError {
    /// The status of a stage (`PUT …/stage`) that this write error ended: Glance answers 413 for a crossed quota
    /// or `image_size_cap`; anything else is a bad upload.
    var stageStatus: Int {
        switch self {
        case .quotaExceeded, .sizeCapExceeded: return 413
        default: return 400
        }
    }
}

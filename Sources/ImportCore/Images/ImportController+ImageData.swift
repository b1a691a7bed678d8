// An image's data for the API: download from the store (`GET /v2/images/{id}/file`) and the direct upload
// (`PUT …/file`), which stages through the same write path and imports with glance-direct.
import Foundation

/// What `GET /v2/images/{id}/file` serves.
public enum ImageData: Sendable {
    /// The image has no data yet (queued, or being staged or imported): Glance answers 204.
    case none
    /// The stored image, opened (a delete that follows cannot cut the download short), its size and md5
    /// (`Content-MD5`). The receiver closes the file.
    case stored(file: FileHandle, size: Int64, checksum: String?)
}

extension ImportController {
    public func imageData(_ id: String, for caller: CallerIdentity) throws(ImageError) -> ImageData {
        let current = try image(id, for: caller)
        try authorize("download_image", caller, current.policyTarget)
        switch current.status {
        case .active:
            let path = store.location(of: id)
            guard let file = FileHandle(forReadingAtPath: path) else {
                // Deleted since it was read: as if it had been gone already.
                _ = try image(id, for: caller)
                logger.error("an active image's data is missing from the store", metadata: ["image.id": "\(id)", "store.path": "\(path)"])
                throw .unavailable("the data of image \(id) is missing from the store; an operator must restore it or delete the image")
            }
            // The opened file's own size: what the download sends, whatever the catalog says.
            let size = (try? file.seekToEnd()).map(Int64.init) ?? current.size ?? 0
            try? file.seek(toOffset: 0)
            return .stored(file: file, size: size, checksum: current.checksum)
        case .deactivated:
            throw .forbidden("image \(id) is deactivated: its data cannot be downloaded")
        default:
            return .none
        }
    }

    /// Before a direct upload: Glance needs both formats first, and only a queued image takes data.
    public func checkUploadable(_ id: String, by caller: CallerIdentity) throws(ImageError) {
        let current = try image(id, for: caller)
        guard current.diskFormat != nil, current.containerFormat != nil else {
            throw .badRequest("Properties disk_format, container_format must be set prior to saving data.")
        }
        guard current.status == .queued else {
            throw .conflict("image \(id) is \(current.status.rawValue): only a queued image takes data")
        }
    }

    /// Waits until the import of `id` ends; the active image, or the failure its task recorded.
    public func awaitImport(_ id: String, by caller: CallerIdentity) throws(ImageError) -> Image {
        var pause: TimeInterval = 0.02
        while true {
            let current = try image(id, for: caller)
            switch current.status {
            case .active: return current
            case .uploading, .importing:
                Thread.sleep(forTimeInterval: pause)
                pause = min(pause * 2, 0.5)
            default:
                let task = try tasks(ofImage: id, for: caller).max { $0.createdAt < $1.createdAt }
                throw .badRequest("the upload of image \(id) was refused: \(task?.message ?? "the image is \(current.status.rawValue)")")
            }
        }
    }
}

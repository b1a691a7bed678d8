// web-download's first step: the URI's body goes into staging through the same write path as a copy into the
// mount (quota, hashing, format inspection), so the rest of the import is glance-direct's.
import Foundation

struct DownloadToStaging: ImportStep {
    let name = "web-download"
    let uri: String
    /// The staged file, opened as the caller when the import was accepted; nil after a restart (interrupted).
    let handle: StagedFileHandle?
    let downloader: (any WebDownloading)?

    func execute(_ context: ImportContext) throws(ImportFailure) {
        guard let handle, let downloader else { throw .interrupted(taskID: context.taskID) }
        let staging = context.staging
        let options = context.imports.webDownload
        var offset: Int64 = 0
        do {
            _ = try downloader.download(uri, filter: options.filtering, limits: options.limits) { chunk in
                offset += Int64(try staging.write(handle, chunk, at: offset))
                context.action.reportProgress(bytesDone: offset)
            }
        } catch {
            // Glance's revert of this step removes what it fetched: a partial download is of no use.
            staging.markIncomplete(handle, reason: error.description)
            staging.release(handle)
            staging.removeResidue(context.imageID)
            throw .downloadFailed(uri: uri, reason: error.description)
        }
        staging.flush(handle)
        staging.release(handle)
        guard let staged = staging.stagedFile(named: context.imageID), staged.state == .staged else {
            throw .stagedDataNotReady(imageID: context.imageID, state: "incomplete", reason: staging.stagedFile(named: context.imageID)?.message)
        }
    }

    func revert(_ context: ImportContext) {}
}

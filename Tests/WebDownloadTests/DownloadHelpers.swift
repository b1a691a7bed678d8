// Downloads in these tests run as the daemon runs them: on a thread of their own (an import worker's).
import Foundation
import ImportCore
import WebDownload

/// Runs `body` on a new thread and awaits it: the downloader blocks its caller, as it blocks an import worker.
func onWorkerThread<T: Sendable>(_ body: @escaping @Sendable () throws(DownloadError) -> T) async throws(DownloadError) -> T {
    let result = await withCheckedContinuation { (done: CheckedContinuation<Result<T, DownloadError>, Never>) in
        Thread {
            do throws(DownloadError) { done.resume(returning: .success(try body())) } catch { done.resume(returning: .failure(error)) }
        }.start()
    }
    return try result.get()
}

/// The body `downloader` fetched from `uri`, collected in memory.
func collect(
    _ downloader: WebDownloader, _ uri: String, filter: ImportFilteringOptions, limits: DownloadLimits = DownloadLimits()
) async throws(DownloadError) -> Data {
    try await onWorkerThread { () throws(DownloadError) -> Data in
        var data = Data()
        _ = try downloader.download(uri, filter: filter, limits: limits) { data.append($0) }
        return data
    }
}

// What web-download may fetch and how long it may take: Glance's [import_filtering_opts] and our time limits.
import Foundation

public struct WebDownloadConfiguration: Sendable, Equatable {
    public var filtering = ImportFilteringOptions()
    /// `maxBytes` is `[DEFAULT] image_size_cap`; the times are `[stagingfs] web_download_*` (Glance has none).
    public var limits = DownloadLimits()
    /// `[stagingfs] web_download_per_project`: web-download imports one project may run at once (0: no limit).
    public var perProject = 4

    public init() {}

    init(_ reader: OptionReader, sizeCap: Int64) throws(ConfigurationError) {
        filtering = try ImportFilteringOptions(reader.ini)
        filtering.refusePrivateAddresses = try reader.bool("stagingfs", "web_download_refuse_private_addresses", default: false)
        perProject = try reader.value(
            "stagingfs", "web_download_per_project", default: perProject,
            expected: "a whole number from 0 (no limit) to 1000"
        ) { Int($0).flatMap { (0...1000).contains($0) ? $0 : nil } }
        let seconds = { (text: String) -> Double? in Double(text).flatMap { $0 > 0 && $0 <= 86_400 ? $0 : nil } }
        limits = DownloadLimits(
            maxBytes: sizeCap,
            connectTimeout: try reader.value(
                "stagingfs", "web_download_connect_timeout", default: limits.connectTimeout,
                expected: "a number of seconds, above 0", seconds),
            stallTimeout: try reader.value(
                "stagingfs", "web_download_stall_timeout", default: limits.stallTimeout,
                expected: "a number of seconds, above 0", seconds),
            maxRedirects: try reader.value(
                "stagingfs", "web_download_max_redirects", default: limits.maxRedirects,
                expected: "a whole number from 0 to 30"
            ) { Int($0).flatMap { (0...30).contains($0) ? $0 : nil } },
            totalTimeout: try reader.value(
                "stagingfs", "web_download_timeout", default: limits.totalTimeout,
                expected: "a number of seconds, above 0 and at most 86400", seconds))
    }
}

// What an image's declared disk_format lets its data be: the rule the write path and the import both apply.
import Foundation

/// The format staged data must have: the image's `disk_format`, and whether a compressed container is acceptable
/// (when `image_decompression` will unpack it first; its contents are then held to the same rule).
public struct FormatExpectation: Sendable, Equatable {
    public var diskFormat: String
    public var allowsCompression: Bool

    public init(diskFormat: String, allowsCompression: Bool) {
        self.diskFormat = diskFormat
        self.allowsCompression = allowsCompression
    }

    /// What an image's data must be. A compressed container is accepted when image_decompression will unpack it,
    /// or when the image says it is compressed (`container_format = compressed`, which the plugin leaves alone, as Glance's does).
    public init(for image: Image, plugins: PluginConfiguration) {
        self.init(diskFormat: image.diskFormat ?? "raw",
                  allowsCompression: plugins.enabled(.imageDecompression) || image.containerFormat == "compressed")
    }

    /// Why `detected` cannot be this image's data, or nil when it can. Glance's AMI family (ami, ari, aki) and
    /// ploop are raw data to the inspector; a gpt or mbr disk is a raw image.
    public func mismatch(_ detected: InspectedImage) -> InspectionRefusal? {
        let format = detected.format
        if format.isCompressionContainer {
            if allowsCompression { return nil }
            return InspectionRefusal(format: format, reason: "image data is \(format.rawValue)-compressed but disk_format is \(diskFormat) "
                                     + "and the image_decompression plugin is not enabled; refused")
        }
        let stored = format.diskFormat ?? format.rawValue
        let rawAlike = ["raw", "ami", "ari", "aki", "ploop"]
        if stored == diskFormat || (stored == "raw" && rawAlike.contains(diskFormat)) { return nil }
        return InspectionRefusal(format: format, reason: "image data is \(format.rawValue) but disk_format is \(diskFormat); refused "
                                 + "(set disk_format to \(stored), or stage \(diskFormat) data)")
    }

    /// Whether an early (header-only) detection may already be judged: raw means only "nothing recognised so far"
    /// (a VHD's footer comes last), so it is judged at the end.
    public static func isDefinite(_ detected: InspectedImage) -> Bool { detected.format != .raw }
}

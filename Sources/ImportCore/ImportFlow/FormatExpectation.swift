// What an image's declared disk_format lets its data be: the rule the write path and the import both apply.
import FormatInspection
import Foundation

/// The format staged data must have: the image's `disk_format`, and whether a compressed container is acceptable
/// (when `image_decompression` will unpack it first; its contents are then held to the same rule).
public struct FormatExpectation: Sendable, Equatable {
    public var diskFormat: String
    public var allowsCompression: Bool
    /// `[stagingfs] max_virtual_size`: the largest virtual disk an image may describe.
    public var maxVirtualSize: Int64
    /// Glance's `[image_format]` options.
    public var options: ImageFormatOptions

    public init(diskFormat: String, allowsCompression: Bool, imports: ImportConfiguration) {
        self.diskFormat = diskFormat
        self.allowsCompression = allowsCompression
        maxVirtualSize = imports.maxVirtualSize
        options = imports.imageFormat
    }

    /// What an image's data must be. A compressed container is accepted when image_decompression will unpack it,
    /// or when the image says it is compressed (`container_format = compressed`, which the plugin leaves alone, as Glance's does).
    public init(for image: Image, imports: ImportConfiguration) {
        self.init(
            diskFormat: image.diskFormat ?? "raw",
            allowsCompression: imports.plugins.enabled(.imageDecompression) || image.containerFormat == "compressed",
            imports: imports)
    }

    /// Why `detected` cannot be this image's data, or nil when it can. Glance's AMI family (ami, ari, aki) and
    /// ploop are raw data to the inspector; a gpt or mbr disk is a raw image.
    public func mismatch(_ detected: InspectedImage) -> InspectionRefusal? {
        let format = detected.format
        if format.isCompressionContainer {
            if allowsCompression { return nil }
            return InspectionRefusal(
                format: format,
                reason: "image data is \(format.rawValue)-compressed but disk_format is \(diskFormat)"
                    + "; refused (the image_decompression plugin unpacks compressed data once, when it is enabled: data compressed twice is refused)")
        }
        // A virtual disk this large would be allocated by whatever boots or converts it.
        if detected.virtualSize > maxVirtualSize {
            return InspectionRefusal(
                format: format,
                reason: "\(format.rawValue) image has virtual size \(detected.virtualSize) bytes, above "
                    + "[stagingfs] max_virtual_size (\(maxVirtualSize) bytes); refused (stage a smaller image or raise the limit)")
        }
        if let createType = detected.subformat, format == .vmdk, !options.vmdkAllowedTypes.contains(createType) {
            return InspectionRefusal(
                format: format,
                reason: "vmdk create type \(createType) is not in [image_format] vmdk_allowed_types "
                    + "(\(options.vmdkAllowedTypes.joined(separator: ", "))); refused")
        }
        let stored = format.diskFormat ?? format.rawValue
        let rawAlike = ["raw", "ami", "ari", "aki", "ploop"]
        if stored == diskFormat || (stored == "raw" && rawAlike.contains(diskFormat)) || !options.requireImageFormatMatch { return nil }
        return InspectionRefusal(
            format: format,
            reason: "image data is \(format.rawValue) but disk_format is \(diskFormat); refused "
                + "(set disk_format to \(stored), or stage \(diskFormat) data)")
    }

    /// Whether an early (header-only) detection may already be judged: raw means only "nothing recognised so far"
    /// (a VHD's footer comes last), so it is judged at the end.
    public static func isDefinite(_ detected: InspectedImage) -> Bool { detected.format != .raw }
}

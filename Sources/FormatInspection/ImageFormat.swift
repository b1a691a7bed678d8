// What the format inspector answers: the format of an image, its virtual size, or why it is refused.

/// A format the inspector recognises from the data itself.
public enum ImageFormat: String, Sendable, CaseIterable, Codable {
    case raw, qcow2, qed, vmdk, vhd, vhdx, vdi, iso, gpt, mbr, luks, gzip, zstd, zip, xz, bzip2
    /// The legacy `.lzma` (LZMA_Alone) format: recognised only to be refused, as Glance does not unpack it either.
    case lzma

    /// The Glance disk_format this format is stored as: gpt and mbr → "raw"; nil for compression containers.
    public var diskFormat: String? {
        switch self {
        case .gpt, .mbr: "raw"
        case .gzip, .zstd, .zip, .xz, .bzip2, .lzma: nil
        default: rawValue
        }
    }

    /// Whether this is a compression container to unpack before the image inside can be inspected.
    public var isCompressionContainer: Bool {
        switch self {
        case .gzip, .zstd, .zip, .xz, .bzip2: true
        default: false
        }
    }
}

/// An image the inspector recognised, with the size of the disk it represents.
public struct InspectedImage: Sendable, Equatable {
    public var format: ImageFormat
    public var virtualSize: Int64
    /// A VMDK's create type as qemu reads it (monolithicSparse or streamOptimized); nil for other formats.
    public var subformat: String?

    public init(format: ImageFormat, virtualSize: Int64, subformat: String? = nil) {
        self.format = format
        self.virtualSize = virtualSize
        self.subformat = subformat
    }
}

/// Why an image is refused, for people: e.g. "qcow2 image has a backing file; refused".
public struct InspectionRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// What the image looked like, when known.
    public var format: ImageFormat?
    public var reason: String

    public init(format: ImageFormat?, reason: String) {
        self.format = format
        self.reason = reason
    }

    public var description: String { reason }
}

/// The authoritative answer on a complete image.
public enum InspectionVerdict: Sendable, Equatable {
    case accepted(InspectedImage)
    case refused(InspectionRefusal)
}

/// What streaming inspection knows before the file is complete.
public enum StreamingState: Sendable, Equatable {
    case undetermined
    case detected(InspectedImage)
    case refused(InspectionRefusal)
}

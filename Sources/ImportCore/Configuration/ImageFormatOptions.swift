// Glance's `[image_format]` options that decide what staged data may be, read from the operator's file.
import Foundation

public struct ImageFormatOptions: Sendable, Equatable {
    /// `[image_format] vmdk_allowed_types`: the VMDK create types accepted. Only self-contained sparse files are
    /// ever accepted (a descriptor file names other files), so listing others allows nothing more.
    public var vmdkAllowedTypes = ["streamOptimized", "monolithicSparse"]
    /// `[image_format] require_image_format_match`: false lets data of another format than the image's
    /// disk_format through (it is still held to every safety check), as Glance does.
    public var requireImageFormatMatch = true
    /// `[image_format] gpt_safety_checks_nonfatal`: oslo's partition-table checks to skip. Its one check for
    /// MBR and GPT disks is `mbr` (boot flags, the protective MBR's start, extra or no partitions); Glance's
    /// help also names `gptmbr`, read as the same. Tables reaching outside the file are refused regardless.
    public var gptSafetyChecksNonfatal: [String] = []

    /// Whether the MBR table checks are only warnings.
    var mbrChecksNonfatal: Bool { !Set(gptSafetyChecksNonfatal).isDisjoint(with: ["mbr", "gptmbr"]) }

    public init() {}

    init(_ reader: OptionReader) throws(ConfigurationError) {
        vmdkAllowedTypes = try reader.list("image_format", "vmdk_allowed_types", default: vmdkAllowedTypes,
                                           expected: "a list of VMDK create types, e.g. streamOptimized, monolithicSparse") { $0.isEmpty ? nil : $0 }
        requireImageFormatMatch = try reader.bool("image_format", "require_image_format_match", default: true)
        gptSafetyChecksNonfatal = try reader.list("image_format", "gpt_safety_checks_nonfatal", default: [],
                                                  expected: "a list of mbr and gptmbr") { ["mbr", "gptmbr"].contains($0) ? $0 : nil }
    }
}

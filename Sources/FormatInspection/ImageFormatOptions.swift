// Glance's `[image_format]` options: what the inspector accepts (read from the operator's file by ImportCore).
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
    public var mbrChecksNonfatal: Bool { !Set(gptSafetyChecksNonfatal).isDisjoint(with: ["mbr", "gptmbr"]) }

    public init() {}
}

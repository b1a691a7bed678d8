// Glance's `[image_format]` options, read from the operator's file.
import FormatInspection

extension ImageFormatOptions {
    init(_ reader: OptionReader) throws(ConfigurationError) {
        self.init()
        vmdkAllowedTypes = try reader.list(
            "image_format", "vmdk_allowed_types", default: vmdkAllowedTypes,
            expected: "a list of VMDK create types, e.g. streamOptimized, monolithicSparse"
        ) { $0.isEmpty ? nil : $0 }
        requireImageFormatMatch = try reader.bool("image_format", "require_image_format_match", default: true)
        gptSafetyChecksNonfatal = try reader.list(
            "image_format", "gpt_safety_checks_nonfatal", default: [],
            expected: "a list of mbr and gptmbr"
        ) { ["mbr", "gptmbr"].contains($0) ? $0 : nil }
    }
}

// ISO 9660 (and UDF, which shares the layout): a volume descriptor at 32 KiB; the disk is the whole file.

struct ISOProbe: FormatProbe {
    var family: ImageFormat { .iso }

    static let descriptorOffset: Int64 = 32 * 1024
    static let descriptorLength = 2048
    static let identifiers: [[UInt8]] = [[UInt8](ascii: "CD001"), [UInt8](ascii: "NSR02"), [UInt8](ascii: "NSR03")]

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let descriptor = try reader.view(Self.descriptorOffset, Self.descriptorLength)
        guard Self.identifiers.contains(where: { descriptor.matches($0, at: 1) }) else { return nil }
        // qemu reads an ISO with its raw driver: the disk is the whole file, the volume and whatever follows it
        // (xorriso's -append_partition puts an EFI system partition there), not the volume's declared size.
        return Detection(format: .iso, virtualSize: rawVirtualSize(reader.sizeSoFar))
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        let descriptor = try reader.view(Self.descriptorOffset, Self.descriptorLength)
        guard descriptor.count == Self.descriptorLength else {
            throw .refused(
                "iso primary volume descriptor at offset \(Self.descriptorOffset) is truncated (\(descriptor.count) of \(Self.descriptorLength) bytes); refused"
            )
        }
        try checkVirtualSize(detection)
    }
}

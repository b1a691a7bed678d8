// ISO 9660 (and UDF, which shares the layout): the primary volume descriptor at 32 KiB gives the size.

struct ISOProbe: FormatProbe {
    var family: ImageFormat { .iso }

    static let descriptorOffset: Int64 = 32 * 1024
    static let descriptorLength = 2048
    static let identifiers: [[UInt8]] = [[UInt8](ascii: "CD001"), [UInt8](ascii: "NSR02"), [UInt8](ascii: "NSR03")]
    static let primaryVolumeDescriptor: UInt8 = 1

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let descriptor = try reader.view(Self.descriptorOffset, Self.descriptorLength)
        guard Self.identifiers.contains(where: { descriptor.matches($0, at: 1) }) else { return nil }
        guard descriptor[0] == Self.primaryVolumeDescriptor else {
            return Detection(format: .iso, virtualSize: reader.sizeSoFar)
        }
        // Both fields are stored little- then big-endian; the little-endian half is enough.
        let blocks = UInt64(descriptor.le32(80)), blockSize = UInt64(descriptor.le16(128))
        return Detection(format: .iso, virtualSize: Int64(clamping: blocks * blockSize))
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        let descriptor = try reader.view(Self.descriptorOffset, Self.descriptorLength)
        guard descriptor.count == Self.descriptorLength else { throw .refused("iso volume descriptor is truncated; refused") }
        try checkVirtualSize(detection)
    }
}

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

struct LUKSProbe: FormatProbe {
    var family: ImageFormat { .luks }

    static let magic: [UInt8] = [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE]  // "LUKS\xba\xbe"
    static let version1HeaderLength = 592
    static let sectorSize: Int64 = 512

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let head = try reader.view(0, Head.length)
        guard head.matches(Self.magic) else { return nil }
        let payload = Int64(head.be32(104)) * Self.sectorSize
        return Detection(format: .luks, virtualSize: max(0, reader.sizeSoFar - payload))
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        let head = try reader.view(0, Self.version1HeaderLength)
        // Glance (oslo.utils) inspects only LUKS version 1; qemu does not read LUKS2 either.
        let version = head.be16(6)
        guard version == 1 else { throw .refused("luks version \(version) is not supported; refused") }
        guard head.count >= Self.version1HeaderLength else { throw .refused("luks header is truncated; refused") }
        let keyBytes = head.be32(108)
        guard [16, 32, 48, 64].contains(keyBytes) else {
            throw .refused("luks key length \(keyBytes) is invalid; refused")
        }
        let payload = Int64(head.be32(104)) * Self.sectorSize
        guard payload >= Int64(Self.version1HeaderLength), payload <= (try reader.fileSize()) else {
            throw .refused("luks payload lies outside the file; refused")
        }
    }
}

/// Compression containers, recognised so they can be unpacked; their size is the file's.
struct ContainerProbe: FormatProbe {
    var family: ImageFormat { .gzip }

    static let signatures: [(ImageFormat, [UInt8])] = [
        (.gzip, [0x1F, 0x8B, 0x08]),
        (.zstd, [0x28, 0xB5, 0x2F, 0xFD]),
        (.zip, [0x50, 0x4B, 0x03, 0x04]),
        (.zip, [0x50, 0x4B, 0x05, 0x06]),  // an empty archive
    ]

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let head = try reader.view(0, Head.length)
        guard let (format, _) = Self.signatures.first(where: { head.matches($0.1) }) else { return nil }
        return Detection(format: format, virtualSize: reader.sizeSoFar)
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {}
}

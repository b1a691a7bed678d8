// LUKS: version 1 only, as Glance; the virtual size is what follows the header and key material.

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
        guard head.count >= Self.version1HeaderLength else { throw .refused("luks header is truncated (\(head.count) of \(Self.version1HeaderLength) bytes); refused") }
        let keyBytes = head.be32(108)
        guard [16, 32, 48, 64].contains(keyBytes) else {
            throw .refused("luks key length \(keyBytes) is invalid; refused")
        }
        let payload = Int64(head.be32(104)) * Self.sectorSize
        guard payload >= Int64(Self.version1HeaderLength), payload <= (try reader.fileSize()) else {
            throw .refused("luks payload_offset \(head.be32(104)) (sectors) lies outside the file; refused")
        }
    }
}

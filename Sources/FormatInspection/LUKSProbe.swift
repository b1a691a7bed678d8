// LUKS: version 1 only, as Glance; the virtual size is what follows the header and key material. The header is
// checked as qemu 7.2's LUKS driver checks it at open (crypto/block-luks.c), without decrypting anything.

struct LUKSProbe: FormatProbe {
    var family: ImageFormat { .luks }

    static let magic: [UInt8] = [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE]  // "LUKS\xba\xbe"
    static let version1HeaderLength = 592
    static let sectorSize: Int64 = 512
    /// Key material starts after the first 4 KiB (qemu's QCRYPTO_BLOCK_LUKS_KEY_SLOT_OFFSET), in sectors.
    static let keySlotStartSector: UInt64 = 8
    static let stripes: UInt32 = 4000
    static let slotEnabled: UInt32 = 0x00AC_71F3, slotDisabled: UInt32 = 0x0000_DEAD
    /// The ciphers, modes, IV generators and hashes qemu's LUKS driver reads, and each cipher's key sizes.
    static let cipherKeyBytes: [String: Set<UInt32>] = ["aes": [16, 24, 32], "serpent": [16, 24, 32], "twofish": [16, 24, 32], "cast5": [16]]
    static let modes: Set<String> = ["ecb", "cbc", "xts", "ctr"]
    static let ivGenerators: Set<String> = ["plain", "plain64", "essiv"]
    static let hashes: Set<String> = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512", "ripemd160"]

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let head = try reader.view(0, Head.length)
        guard head.matches(Self.magic) else { return nil }
        let payload = Int64(head.be32(104)) * Self.sectorSize
        // qemu counts whole sectors, a partial last one included.
        return Detection(format: .luks, virtualSize: rawVirtualSize(max(0, reader.sizeSoFar - payload)))
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        let head = try reader.view(0, Self.version1HeaderLength)
        // Glance (oslo.utils) inspects only LUKS version 1; qemu does not read LUKS2 either.
        let version = head.be16(6)
        guard version == 1 else { throw .refused("luks version \(version) is not supported; refused") }
        guard head.count >= Self.version1HeaderLength else {
            throw .refused("luks header is truncated (\(head.count) of \(Self.version1HeaderLength) bytes); refused")
        }
        let keyBytes = head.be32(108)
        guard [16, 32, 48, 64].contains(keyBytes) else {
            throw .refused("luks key length \(keyBytes) is invalid; refused")
        }
        try checkCipher(head, keyBytes: keyBytes)
        let payloadSectors = UInt64(head.be32(104))
        guard payloadSectors >= Self.keySlotStartSector else {
            throw .refused("luks payload_offset \(payloadSectors) (sectors) overlaps the header; refused")
        }
        guard head.be32(164) != 0 else { throw .refused("luks mk_digest_iter is 0; refused") }
        try checkKeySlots(head, keyBytes: UInt64(keyBytes), payloadSectors: payloadSectors)
        let payload = Int64(payloadSectors) * Self.sectorSize
        guard payload <= (try reader.fileSize()) else {
            throw .refused("luks payload_offset \(payloadSectors) (sectors) lies outside the file; refused")
        }
    }

    /// The header's NUL-terminated names: "cipher", "mode-ivgen[:hash]" and the PBKDF2 hash, as qemu parses them.
    private func checkCipher(_ head: ByteView, keyBytes: UInt32) throws(ProbeStop) {
        var names: [String] = []
        for (field, at) in [("cipher_name", 8), ("cipher_mode", 40), ("hash_spec", 72)] {
            let bytes = head.slice(at, 32)
            guard let end = bytes.firstIndex(of: 0) else { throw .refused("luks \(field) is not NUL-terminated; refused") }
            names.append(String(decoding: bytes[..<end], as: UTF8.self))
        }
        let parts = names[1].split(separator: "-", maxSplits: 1).map(String.init)
        let mode = parts.first ?? "", ivGenerator = parts.count > 1 ? String(parts[1].prefix { $0 != ":" }) : ""
        // xts splits the key in two, one half per cipher.
        let cipherKey = mode == "xts" ? keyBytes / 2 : keyBytes
        guard Self.cipherKeyBytes[names[0]]?.contains(cipherKey) == true, Self.modes.contains(mode),
            Self.ivGenerators.contains(ivGenerator), Self.hashes.contains(names[2])
        else { throw .refused("luks cipher \(names[0]) \(names[1]) with a \(keyBytes)-byte key, hash \(names[2]), is not one qemu reads; refused") }
    }

    /// qemu's qcrypto_block_luks_check_header: 4000 stripes, a known state, key material between the header and
    /// the payload, no two slots overlapping.
    private func checkKeySlots(_ head: ByteView, keyBytes: UInt64, payloadSectors: UInt64) throws(ProbeStop) {
        let slots = (0..<8).map { 208 + 48 * $0 }
        // Key material is counted in sectors, rounded up to a multiple of the header's 8 (qemu's splitkeylen_sectors).
        let extents = slots.map { at in
            (start: UInt64(head.be32(at + 40)), length: ((UInt64(head.be32(at + 44)) * keyBytes + 511) / 512 + 7) / 8 * 8)
        }
        for (index, at) in slots.enumerated() {
            let state = head.be32(at), stripes = head.be32(at + 44), (start, length) = extents[index]
            guard stripes == Self.stripes else { throw .refused("luks key slot \(index) has \(stripes) stripes, not \(Self.stripes); refused") }
            guard state == Self.slotEnabled || state == Self.slotDisabled else {
                throw .refused("luks key slot \(index) state 0x\(String(state, radix: 16)) is neither enabled nor disabled; refused")
            }
            guard state == Self.slotDisabled || head.be32(at + 4) != 0 else { throw .refused("luks key slot \(index) has 0 iterations; refused") }
            guard start >= Self.keySlotStartSector, start + length <= payloadSectors else {
                throw .refused(
                    "luks key slot \(index) key material (sector \(start), \(length) sectors) is not between the header and the payload (sector \(payloadSectors)); refused"
                )
            }
            if let other = extents.indices.first(where: { $0 > index && start + length > extents[$0].start && extents[$0].start + extents[$0].length > start })
            {
                throw .refused("luks key slots \(index) and \(other) overlap; refused")
            }
        }
    }
}

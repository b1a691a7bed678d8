// vhd (qemu's vpc): dynamic disks carry a footer copy at offset 0, fixed disks only the footer at the
// end. Differencing disks name a parent and are refused.

struct VHDProbe: FormatProbe {
    var family: ImageFormat { .vhd }

    static let cookie = [UInt8](ascii: "conectix")
    static let dynamicHeaderCookie = [UInt8](ascii: "cxsparse")
    static let footerLength = 512
    enum DiskType: UInt32 {
        case fixed = 2, dynamic = 3, differencing = 4
    }

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let head = try reader.view(0, Head.length)
        if head.matches(Self.cookie) {
            return Detection(format: .vhd, virtualSize: Self.virtualSize(head))
        }
        // Only a complete file says whether a footer ends it.
        let footer = ByteView(try reader.readEnd(Self.footerLength))
        guard footer.count == Self.footerLength, footer.matches(Self.cookie) else { return nil }
        return Detection(format: .vhd, virtualSize: Self.virtualSize(footer))
    }

    /// Creators whose disks are as large as the footer's current size; qemu sizes every other by its CHS geometry
    /// (Virtual PC's rule, and qemu-img's own without force_size), unless the geometry is the largest there is.
    static let currentSizeCreators: [[UInt8]] = ["win ", "qem2", "d2v ", "CTXS", "tap\0"].map { [UInt8]($0.utf8) }
    static let maximumGeometry: UInt64 = 65535 * 16 * 255

    /// The virtual size as qemu 7.2's vpc driver computes it, in whole sectors.
    static func virtualSize(_ footer: ByteView) -> Int64 {
        let geometry = UInt64(footer.be16(56)) * UInt64(footer[58]) * UInt64(footer[59])
        let byCurrentSize = currentSizeCreators.contains { footer.matches($0, at: 28) } || geometry == maximumGeometry
        return byCurrentSize ? Int64(clamping: footer.be64(48) / 512 * 512) : Int64(geometry * 512)
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        let head = try reader.view(0, Head.length)
        let atStart = head.matches(Self.cookie)
        let footer = atStart ? head : ByteView(try reader.readEnd(Self.footerLength))
        guard footer.count >= Self.footerLength else { throw .refused("vhd footer is truncated (\(footer.count) of \(Self.footerLength) bytes); refused") }
        // qemu refuses a footer whose checksum is wrong ("Incorrect header checksum").
        let sum = ~(footer.bytes.prefix(64) + footer.bytes.dropFirst(68)).reduce(UInt32(0)) { $0 &+ UInt32($1) }
        guard footer.be32(64) == sum else {
            throw .refused("vhd footer checksum 0x\(String(footer.be32(64), radix: 16)) does not match its bytes (0x\(String(sum, radix: 16))); refused")
        }
        guard let type = DiskType(rawValue: footer.be32(60)) else {
            throw .refused("vhd disk type \(footer.be32(60)) is not supported; refused")
        }
        if type == .differencing { throw .refused("vhd image is a differencing disk (disk type \(footer.be32(60)): it has a parent); refused") }
        try checkVirtualSize(detection)
        switch (type, atStart) {
        case (.dynamic, false):
            throw .refused("vhd dynamic disk has no footer copy at its start; refused")
        case (.fixed, true):
            // qemu reads an image with a footer at its start as a dynamic disk, whatever the disk type says.
            throw .refused("vhd footer at offset 0 says disk type \(footer.be32(60)) (fixed), but qemu reads a footer there as a dynamic disk's; refused")
        case (.dynamic, true):
            guard let offset = Checked.int64(footer.be64(16)), offset >= 512 else {
                throw .refused("vhd data_offset \(footer.be64(16)) lies outside the file; refused")
            }
            let header = try reader.view(offset, 1024)
            guard header.count == 1024 else { throw .refused("vhd data_offset \(offset): the dynamic header lies outside the file; refused") }
            guard header.matches(Self.dynamicHeaderCookie) else {
                throw .refused("vhd data_offset \(offset) has no dynamic header (cookie 'cxsparse'); refused")
            }
            // A parent (by id or by locator) makes it a differencing disk whatever the footer says.
            let parentLocators = (0..<8).contains { header.be32(576 + 24 * $0) != 0 }
            if header.slice(40, 16).contains(where: { $0 != 0 }) || parentLocators {
                throw .refused("vhd image names a parent disk (parent_uuid or a parent locator entry is set); refused")
            }
            try checkBlockTable(header, virtualSize: detection.virtualSize, reader)
        default:
            return
        }
    }

    /// The block allocation table, as qemu's vpc driver reads it at open: a power-of-two block size, enough
    /// entries for the disk, and the table inside the file (qemu: "free_data_block_offset points after the end
    /// of file").
    private func checkBlockTable(_ header: ByteView, virtualSize: Int64, _ reader: RegionReader) throws(ProbeStop) {
        let tableOffset = header.be64(16), entries = UInt64(header.be32(28)), blockSize = UInt64(header.be32(32))
        guard blockSize >= 512, blockSize & (blockSize - 1) == 0 else {
            throw .refused("vhd block_size \(blockSize) is not a power of two of at least 512; refused")
        }
        guard let covered = Checked.multiply(entries, blockSize), covered >= UInt64(max(virtualSize, 0)) else {
            throw .refused("vhd max_table_entries \(entries) of \(blockSize) bytes do not cover the disk (\(virtualSize) bytes); refused")
        }
        guard entries <= Self.maximumTableEntries else {
            throw .refused("vhd max_table_entries \(entries) is above what this inspector reads (\(Self.maximumTableEntries)); refused")
        }
        guard let offset = Checked.int64(tableOffset), let bytes = Checked.multiply(entries, 4).flatMap(Checked.int64),
            let end = Checked.add(offset, bytes), offset >= 512
        else { throw .refused("vhd block table (table_offset \(tableOffset), \(entries) entries) lies outside the file; refused") }
        // qemu's free_data_block_offset: the end of the table and of every allocated block (its sector bitmap, then its
        // data) must lie inside the file.
        try reader.keep(offset, bytes)
        let size = try reader.fileSize()
        guard end <= size else { throw .refused("vhd block table (table_offset \(tableOffset), \(entries) entries) lies outside the file; refused") }
        let bitmapBytes = (blockSize / (8 * 512) + 511) / 512 * 512
        var last = (UInt64(end) + 511) / 512 * 512, lastEntry: UInt64?
        var at = offset
        while at < end {
            let chunk = try reader.view(at, Int(min(Int64(RegionReader.maximumRead), end - at)))
            guard chunk.count > 0 else { break }
            for index in stride(from: 0, to: chunk.count - 3, by: 4) where chunk.be32(index) != Self.unallocated {
                let blockEnd = UInt64(chunk.be32(index)) * 512 + bitmapBytes + blockSize
                if blockEnd > last { (last, lastEntry) = (blockEnd, UInt64(at - offset + Int64(index)) / 4) }
            }
            at += Int64(chunk.count)
        }
        guard last <= UInt64(size) else {
            throw .refused(
                "vhd block table entry \(lastEntry.map(String.init) ?? "none") puts a block at bytes up to \(last), past the end of the file (\(size) bytes); refused"
            )
        }
    }

    /// A block table entry for a block that is not allocated.
    static let unallocated: UInt32 = 0xFFFF_FFFF
    /// qemu takes up to INT_MAX / 4 entries; 4 Mi (a 16 MiB table, 8 TiB in 2 MiB blocks) are more than any disk
    /// `max_virtual_size` allows.
    static let maximumTableEntries: UInt64 = 4 << 20
}

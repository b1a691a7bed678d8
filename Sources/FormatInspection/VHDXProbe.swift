// vhdx: virtual size from the metadata region, found through the region table; refuses differencing disks, and
// headers, region tables and block tables qemu's open refuses.

struct VHDXProbe: FormatProbe {
    var family: ImageFormat { .vhdx }

    static let identifier = [UInt8](ascii: "vhdxfile")
    static let regionTableOffset: Int64 = 192 * 1024
    static let regionTableLength = 64 * 1024
    static let regionSignature = [UInt8](ascii: "regi")
    static let metadataSignature = [UInt8](ascii: "metadata")
    static let maximumEntries = 2047
    static let metadataTableLength = 64 * 1024
    // GUIDs as stored on disk (first three groups little-endian).
    static let metadataRegion: [UInt8] = [
        0x06, 0xA2, 0x7C, 0x8B, 0x90, 0x47, 0x9A, 0x4B, 0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E,
    ]
    static let virtualDiskSize: [UInt8] = [
        0x24, 0x42, 0xA5, 0x2F, 0x1B, 0xCD, 0x76, 0x48, 0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8,
    ]
    static let fileParameters: [UInt8] = [
        0x37, 0x67, 0xA1, 0xCA, 0x36, 0xFA, 0x43, 0x4D, 0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B,
    ]
    static let parentLocator: [UInt8] = [
        0x2D, 0x5F, 0xD3, 0xA8, 0x0B, 0xB3, 0x4D, 0x45, 0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C,
    ]
    static let batRegion: [UInt8] = [
        0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42, 0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08,
    ]
    static let page83Data: [UInt8] = [
        0xAB, 0x12, 0xCA, 0xBE, 0xE6, 0xB2, 0x23, 0x45, 0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46,
    ]
    static let logicalSectorSize: [UInt8] = [
        0x1D, 0xBF, 0x41, 0x81, 0x6F, 0xA9, 0x09, 0x47, 0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F,
    ]
    static let physicalSectorSize: [UInt8] = [
        0xC7, 0x48, 0xA3, 0xCD, 0x5D, 0x44, 0x71, 0x44, 0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56,
    ]
    /// The metadata items qemu's vhdx_parse_metadata needs, each exactly once.
    static let requiredItems = [fileParameters, virtualDiskSize, page83Data, logicalSectorSize, physicalSectorSize]
    /// A metadata entry's IsRequired flag: a reader that does not know the item must not open the image.
    static let isRequiredFlag: UInt32 = 1 << 2
    static let hasParentFlag: UInt32 = 1 << 1
    static let headerOffsets: [Int64] = [64 * 1024, 128 * 1024]
    static let headerLength = 4096
    static let headerSignature = [UInt8](ascii: "head")
    /// BAT entry states whose block is in the file: fully and partially present.
    static let presentStates: Set<UInt64> = [6, 7]
    /// qemu reads the whole BAT; this inspector reads up to 16 MiB of it (2 Mi blocks: 64 TiB, qemu's largest disk,
    /// in 32 MiB blocks).
    static let maximumBATLength: Int64 = 16 << 20
    /// What streaming keeps of the BAT before it knows how much it needs: 32 Ki entries, a disk of 1 TiB (the
    /// default `max_virtual_size`) in qemu's default 32 MiB blocks. A larger BAT is checked in whole-file mode.
    static let streamedBATPrefix: Int64 = 256 << 10

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        guard try reader.view(0, Head.length).matches(Self.identifier) else { return nil }
        // Asked for first, so that streaming keeps them: they come before the region table that leads to the rest.
        _ = try Self.headers(reader)
        let (metadataOffset, table) = try metadataTable(reader)
        guard let item = Self.item(Self.virtualDiskSize, in: table) else {
            throw .refused("vhdx metadata table (at offset \(metadataOffset)) has no Virtual Disk Size item; refused")
        }
        guard let at = Checked.add(metadataOffset, Int64(item.offset)) else {
            throw .refused("vhdx Virtual Disk Size item offset \(item.offset) lies outside the file; refused")
        }
        let value = try reader.view(at, 8)
        guard value.count == 8 else { throw .refused("vhdx Virtual Disk Size at offset \(at) lies outside the file; refused") }
        // qemu counts whole 512-byte sectors of it, whatever the logical sector size.
        return Detection(format: .vhdx, virtualSize: Int64(clamping: value.le64(0) / 512 * 512))
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        try checkVirtualSize(detection)
        let (metadataOffset, table) = try metadataTable(reader)
        if Self.item(Self.parentLocator, in: table) != nil {
            throw .refused("vhdx image has a parent locator (differencing disk); refused")
        }
        try checkMetadataItems(table)
        if let parameters = Self.item(Self.fileParameters, in: table),
            let at = Checked.add(metadataOffset, Int64(parameters.offset))
        {
            let flags = try reader.view(at, 8)
            guard flags.count == 8 else { throw .refused("vhdx File Parameters at offset \(at) lie outside the file; refused") }
            if flags.le32(4) & Self.hasParentFlag != 0 {
                throw .refused("vhdx image has a parent (File Parameters flags 0x\(String(flags.le32(4), radix: 16)): differencing disk); refused")
            }
        }
        // Checked once the file is whole, so that streaming computes the checksums once.
        let headers = try Self.headers(reader)
        let regions = try reader.view(Self.regionTableOffset, Self.regionTableLength)
        let bat = try readBAT(regions: regions, table: table, metadataOffset: metadataOffset, reader)
        let size = try reader.fileSize()
        try checkHeaders(headers)
        // qemu reads only this copy of the region table, and only with a valid CRC-32C.
        guard regions.count == Self.regionTableLength, Self.checksumIsValid(regions) else {
            throw .refused("vhdx region table checksum 0x\(String(regions.le32(4), radix: 16)) does not match its bytes; refused")
        }
        guard metadataOffset < size else { throw .refused("vhdx metadata region offset \(metadataOffset) lies outside the file (\(size) bytes); refused") }
        try checkBAT(bat, size: size)
    }

    private static func headers(_ reader: RegionReader) throws(ProbeStop) -> [ByteView] {
        var headers: [ByteView] = []
        for offset in headerOffsets { headers.append(try reader.view(offset, headerLength)) }
        return headers
    }

    /// qemu's vhdx_parse_header: one of the two headers must have its signature and CRC-32C; of two valid ones
    /// with the same sequence number, both must be the same.
    private func checkHeaders(_ headers: [ByteView]) throws(ProbeStop) {
        let valid = headers.filter { $0.count == Self.headerLength && $0.matches(Self.headerSignature) && Self.checksumIsValid($0) }
        guard !valid.isEmpty else {
            throw .refused("vhdx has no valid header (signature 'head' and CRC-32C) at offset 65536 or 131072; refused")
        }
        if valid.count == 2, valid[0].le64(8) == valid[1].le64(8), valid[0].bytes != valid[1].bytes {
            throw .refused("vhdx headers differ but have the same sequence_number \(valid[0].le64(8)); refused")
        }
    }

    /// The BAT region's entries, with its offset and the block size they count in.
    struct BAT {
        var offset: Int64
        var length: Int64
        var blockSize: UInt64
        var chunks: [ByteView]
    }

    private func readBAT(regions: ByteView, table: ByteView, metadataOffset: Int64, _ reader: RegionReader) throws(ProbeStop) -> BAT {
        guard let entry = (0..<Int(regions.le32(8))).map({ 16 + 32 * $0 }).first(where: { regions.matches(Self.batRegion, at: $0) }) else {
            throw .refused("vhdx has no BAT region; refused")
        }
        let batOffset = regions.le64(entry + 16), batLength = Int64(regions.le32(entry + 24))
        guard batLength <= Self.maximumBATLength, let start = Checked.int64(batOffset), Checked.add(start, batLength) != nil else {
            throw .refused(
                "vhdx BAT region (offset \(batOffset), length \(batLength)) lies past 2^63 or is larger than \(Self.maximumBATLength) bytes; refused")
        }
        guard let parameters = Self.item(Self.fileParameters, in: table), let at = Checked.add(metadataOffset, Int64(parameters.offset)) else {
            throw .refused("vhdx metadata has no File Parameters item; refused")
        }
        let blockSize = UInt64(try reader.view(at, 4).le32(0))
        guard ((1 << 20)...(256 << 20)).contains(blockSize), blockSize.nonzeroBitCount == 1 else {
            throw .refused("vhdx block size \(blockSize) is not a power of two from 1 MiB to 256 MiB; refused")
        }
        let sectorSize = try Self.itemValue(Self.logicalSectorSize, in: table, metadataOffset: metadataOffset, reader)
        guard sectorSize == 512 || sectorSize == 4096 else { throw .refused("vhdx logical sector size \(sectorSize) is not 512 or 4096; refused") }
        let diskSize = try Self.itemValue(Self.virtualDiskSize, in: table, metadataOffset: metadataOffset, reader)
        let entries = UInt64(Self.batEntries(diskSize: diskSize, blockSize: blockSize, sectorSize: sectorSize))
        guard entries <= UInt64(batLength) / 8 else {
            throw .refused("vhdx BAT region length \(batLength) holds fewer than the \(entries) entries the disk needs; refused")
        }
        let end = start + Int64(entries) * 8
        try reader.keep(start, end - start)
        _ = try reader.fileSize()
        var chunks: [ByteView] = []
        var position = start
        while position < end {
            let chunk = try reader.view(position, Int(min(Int64(RegionReader.maximumRead), end - position)))
            guard chunk.count > 0 else { break }
            chunks.append(chunk)
            position += Int64(chunk.count)
        }
        return BAT(offset: start, length: batLength, blockSize: blockSize, chunks: chunks)
    }

    /// How many BAT entries qemu reads (vhdx_calc_bat_entries): the disk's data blocks, and a sector-bitmap entry
    /// after each chunk of them, in qemu's 32-bit arithmetic. A disk of size 0 wraps to 2^32 - 1 >> chunk bits
    /// entries, which no BAT holds: qemu refuses to open it, and so must the inspector.
    static func batEntries(diskSize: UInt64, blockSize: UInt64, sectorSize: UInt64) -> UInt32 {
        let chunkRatio = (UInt64(1) << 23) * sectorSize / blockSize
        let dataBlocks = UInt32(truncatingIfNeeded: diskSize / blockSize + (diskSize % blockSize == 0 ? 0 : 1))
        return dataBlocks &+ ((dataBlocks &- 1) >> UInt32(chunkRatio.trailingZeroBitCount))
    }

    /// A metadata item's value: 4 bytes (a sector size) or 8 (the virtual disk size), little-endian.
    private static func itemValue(_ guid: [UInt8], in table: ByteView, metadataOffset: Int64, _ reader: RegionReader) throws(ProbeStop) -> UInt64 {
        let width = guid == virtualDiskSize ? 8 : 4
        guard let item = item(guid, in: table), let at = Checked.add(metadataOffset, Int64(item.offset)) else {
            throw .refused("vhdx metadata has no \(name(guid)) item; refused")
        }
        let value = try reader.view(at, width)
        guard value.count == width else { throw .refused("vhdx \(name(guid)) at offset \(at) lies outside the file; refused") }
        return width == 8 ? value.le64(0) : UInt64(value.le32(0))
    }

    /// qemu's vhdx_check_bat_entries: every block the BAT places in the file ends inside it (a truncated image).
    private func checkBAT(_ bat: BAT, size: Int64) throws(ProbeStop) {
        guard let end = Checked.add(bat.offset, bat.length), end <= size else {
            throw .refused("vhdx BAT region (offset \(bat.offset), length \(bat.length)) lies outside the file (\(size) bytes); refused")
        }
        var number = 0
        for chunk in bat.chunks {
            for index in stride(from: 0, to: chunk.count - 7, by: 8) {
                defer { number += 1 }
                guard Self.presentStates.contains(chunk.le64(index) & 7) else { continue }
                // The entry's bits 20–63 are the block's offset in MiB.
                let blockOffset = chunk.le64(index) & ~0xF_FFFF
                let (blockEnd, overflow) = blockOffset.addingReportingOverflow(bat.blockSize)
                guard !overflow, blockEnd <= UInt64(size) else {
                    throw .refused("vhdx BAT entry \(number) puts a block at offset \(blockOffset), past the end of the file (\(size) bytes); refused")
                }
            }
        }
    }

    /// qemu's vhdx_parse_metadata: each item it needs once, and no item it does not know that is marked required.
    private func checkMetadataItems(_ table: ByteView) throws(ProbeStop) {
        let entries = (0..<Int(table.le16(10))).map { 32 + 32 * $0 }
        for guid in Self.requiredItems {
            let count = entries.count { table.matches(guid, at: $0) }
            guard count == 1 else { throw .refused("vhdx metadata table has \(count) \(Self.name(guid)) items, not 1; refused") }
        }
        if let unknown = entries.first(where: { entry in
            !Self.requiredItems.contains { table.matches($0, at: entry) } && table.le32(entry + 24) & Self.isRequiredFlag != 0
        }) {
            throw .refused(
                "vhdx metadata entry at offset \(unknown) is an item qemu does not know, marked required (flags 0x\(String(table.le32(unknown + 24), radix: 16))); refused"
            )
        }
    }

    private static func name(_ guid: [UInt8]) -> String {
        switch guid {
        case fileParameters: "File Parameters"
        case virtualDiskSize: "Virtual Disk Size"
        case page83Data: "Page 83 Data"
        case logicalSectorSize: "Logical Sector Size"
        default: "Physical Sector Size"
        }
    }

    /// CRC-32C (Castagnoli) over the 4 KiB header or 64 KiB region table with its checksum field (at 4) zeroed,
    /// as qemu's vhdx_checksum_is_valid.
    static func checksumIsValid(_ view: ByteView) -> Bool {
        var crc: UInt32 = 0xFFFF_FFFF
        crc32cTable.withUnsafeBufferPointer { table in
            view.bytes.withUnsafeBufferPointer { bytes in
                for index in bytes.indices {
                    let byte = index >= 4 && index < 8 ? 0 : bytes[index]
                    crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
                }
            }
        }
        return ~crc == view.le32(4)
    }

    static let crc32cTable: [UInt32] = (0..<256).map { index in
        (0..<8).reduce(UInt32(index)) { crc, _ in crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
    }

    /// The metadata region's offset and its table of entries, found through the region table.
    private func metadataTable(_ reader: RegionReader) throws(ProbeStop) -> (Int64, ByteView) {
        let regions = try reader.view(Self.regionTableOffset, Self.regionTableLength)
        guard regions.matches(Self.regionSignature) else { throw .refused("vhdx region table is missing; refused") }
        let count = Int(regions.le32(8))
        guard count <= Self.maximumEntries else { throw .refused("vhdx region table has \(count) entries; refused") }
        guard let entry = (0..<count).map({ 16 + 32 * $0 }).first(where: { regions.matches(Self.metadataRegion, at: $0) })
        else { throw .refused("vhdx has no metadata region; refused") }
        guard let offset = Checked.int64(regions.le64(entry + 16)), offset > 0 else {
            throw .refused("vhdx metadata region lies outside the file; refused")
        }
        // Streaming must keep the start of the BAT before the metadata says how many entries are read: qemu puts the
        // BAT first. Asked for in file order, so that neither is passed while waiting for the other.
        let bat = (0..<count).map({ 16 + 32 * $0 }).first(where: { regions.matches(Self.batRegion, at: $0) })
            .flatMap { Checked.int64(regions.le64($0 + 16)) }
        if let bat, bat < offset { try reader.keep(bat, Self.streamedBATPrefix) }
        let table = try reader.view(offset, Self.metadataTableLength)
        if let bat, bat >= offset { try reader.keep(bat, Self.streamedBATPrefix) }
        guard table.matches(Self.metadataSignature) else { throw .refused("vhdx metadata table is missing; refused") }
        guard Int(table.le16(10)) <= Self.maximumEntries else {
            throw .refused("vhdx metadata table has too many entries; refused")
        }
        return (offset, table)
    }

    private static func item(_ guid: [UInt8], in table: ByteView) -> (offset: UInt32, length: UInt32)? {
        let count = Int(table.le16(10))
        guard let entry = (0..<count).map({ 32 + 32 * $0 }).first(where: { table.matches(guid, at: $0) }) else { return nil }
        return (table.le32(entry + 16), table.le32(entry + 20))
    }
}

// vhdx: virtual size from the metadata region, found through the region table; refuses differencing disks.

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
    static let hasParentFlag: UInt32 = 1 << 1

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        guard try reader.view(0, Head.length).matches(Self.identifier) else { return nil }
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
        if let parameters = Self.item(Self.fileParameters, in: table),
            let at = Checked.add(metadataOffset, Int64(parameters.offset))
        {
            let flags = try reader.view(at, 8)
            guard flags.count == 8 else { throw .refused("vhdx File Parameters at offset \(at) lie outside the file; refused") }
            if flags.le32(4) & Self.hasParentFlag != 0 {
                throw .refused("vhdx image has a parent (File Parameters flags 0x\(String(flags.le32(4), radix: 16)): differencing disk); refused")
            }
        }
        let size = try reader.fileSize()
        guard metadataOffset < size else { throw .refused("vhdx metadata region offset \(metadataOffset) lies outside the file (\(size) bytes); refused") }
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
        let table = try reader.view(offset, Self.metadataTableLength)
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

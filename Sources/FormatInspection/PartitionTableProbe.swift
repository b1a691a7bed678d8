// Partitioned raw disks: an MBR, or a GPT behind its protective MBR. Both are stored as raw; the
// checks refuse tables that contradict themselves or reach outside the file.

struct PartitionTableProbe: FormatProbe {
    var family: ImageFormat { .mbr }

    static let sector: Int64 = 512
    static let entriesStart = 446
    static let protectiveType: UInt8 = 0xEE
    static let gptSignature = [UInt8](ascii: "EFI PART")
    static let maximumEntryArray = 1 << 20

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let mbr = try reader.view(0, Head.length)
        guard mbr.count >= 512, mbr[510] == 0x55, mbr[511] == 0xAA else { return nil }
        // A FAT boot sector carries the same signature; two FATs on a fixed disk give it away.
        if mbr[0x10] == 2 && mbr[0x15] == 0xF8 { return nil }
        let isGPT = (0..<4).contains { mbr[Self.entriesStart + 16 * $0 + 4] == Self.protectiveType }
        return Detection(format: isGPT ? .gpt : .mbr, virtualSize: rawVirtualSize(reader.sizeSoFar))
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        let mbr = try reader.view(0, 512)
        let name = detection.format.rawValue
        // oslo's `mbr` check, which [image_format] gpt_safety_checks_nonfatal may make a warning.
        let nonfatal = reader.options.mbrChecksNonfatal
        func violation(_ reason: String) throws(ProbeStop) {
            if !nonfatal { throw .refused(reason + "; refused") }
        }
        var used: [Int] = []
        for index in 0..<4 {
            let entry = Self.entriesStart + 16 * index
            if mbr[entry] != 0x00 && mbr[entry] != 0x80 { try violation("\(name) partition \(index + 1) has an invalid boot flag") }
            let type = mbr[entry + 4]
            if type == 0 { continue }
            used.append(index)
            if type == Self.protectiveType {
                if mbr[entry + 1] != 0x00 || mbr[entry + 2] != 0x02 || mbr[entry + 3] != 0x00 {
                    try violation("gpt protective MBR has an invalid start CHS")
                }
                if mbr.le32(entry + 8) != 1 { try violation("gpt protective MBR does not start at LBA 1") }
            }
        }
        if used.isEmpty { try violation("\(name) has no partitions defined") }
        if detection.format == .gpt, used != [0] { try violation("gpt protective MBR defines other partitions") }
        // Read everything the checks need before asking for the size, so streaming keeps it.
        let gpt = detection.format == .gpt ? try gptTables(reader) : nil
        let size = try reader.fileSize()
        let sectors = size / Self.sector
        for index in used {
            let entry = Self.entriesStart + 16 * index
            let start = Int64(mbr.le32(entry + 8)), count = Int64(mbr.le32(entry + 12))
            // A protective partition may say "as much as fits" for disks beyond 2 TiB.
            if mbr[entry + 4] == Self.protectiveType && count == 0xFFFF_FFFF { continue }
            guard start + count <= sectors else {
                throw .refused("\(name) partition \(index + 1) lies outside the file; refused")
            }
        }
        if let gpt { try checkGPT(gpt, sectors: sectors) }
    }

    /// The primary GPT header at LBA 1 and its partition entries.
    private func gptTables(_ reader: RegionReader) throws(ProbeStop) -> (header: ByteView, entries: ByteView) {
        let header = try reader.view(Self.sector, 512)
        guard header.matches(Self.gptSignature) else { throw .refused("gpt header is missing at LBA 1; refused") }
        let headerSize = header.le32(12)
        guard (92...512).contains(headerSize), header.le64(24) == 1 else {
            throw .refused("gpt header is invalid (header_size \(headerSize), my_lba \(header.le64(24))); refused")
        }
        let entryCount = UInt64(header.le32(80)), entrySize = UInt64(header.le32(84))
        guard entrySize >= 128, entrySize.nonzeroBitCount == 1, let arrayBytes = Checked.multiply(entryCount, entrySize),
            arrayBytes <= UInt64(Self.maximumEntryArray), let arrayOffset = Checked.multiply(header.le64(72), 512),
            let offset = Checked.int64(arrayOffset), header.le64(72) >= 2
        else {
            throw .refused(
                "gpt partition entry array is absurd (partition_entry_lba \(header.le64(72)), num_partition_entries \(entryCount), sizeof_partition_entry \(entrySize)); refused"
            )
        }
        let entries = try reader.view(offset, Int(arrayBytes))
        guard entries.count == Int(arrayBytes) else {
            throw .refused("gpt partition entry array at LBA \(header.le64(72)) (\(arrayBytes) bytes) lies outside the file; refused")
        }
        return (header, entries)
    }

    /// The header and every used entry must lie within the disk the file holds.
    private func checkGPT(_ gpt: (header: ByteView, entries: ByteView), sectors: Int64) throws(ProbeStop) {
        let header = gpt.header
        let lastSector = UInt64(max(sectors - 1, 0))
        let firstUsable = header.le64(40), lastUsable = header.le64(48)
        guard header.le64(32) <= lastSector, firstUsable <= lastUsable, lastUsable <= lastSector else {
            throw .refused(
                "gpt header describes a disk larger than the file (alternate_lba \(header.le64(32)), last_usable_lba \(lastUsable), the file ends at LBA \(lastSector)); refused"
            )
        }
        let entrySize = Int(header.le32(84))
        for index in 0..<Int(header.le32(80)) {
            let at = index * entrySize
            if gpt.entries.slice(at, 16).allSatisfy({ $0 == 0 }) { continue }
            let first = gpt.entries.le64(at + 32), last = gpt.entries.le64(at + 40)
            guard first <= last, first >= firstUsable, last <= lastUsable else {
                throw .refused("gpt partition \(index + 1) lies outside the disk; refused")
            }
        }
    }
}

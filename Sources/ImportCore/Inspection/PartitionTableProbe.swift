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
        return Detection(format: isGPT ? .gpt : .mbr, virtualSize: reader.sizeSoFar)
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        let mbr = try reader.view(0, 512)
        let name = detection.format.rawValue
        var used: [Int] = []
        for index in 0..<4 {
            let entry = Self.entriesStart + 16 * index
            guard mbr[entry] == 0x00 || mbr[entry] == 0x80 else {
                throw .refused("\(name) partition \(index + 1) has an invalid boot flag; refused")
            }
            let type = mbr[entry + 4]
            if type == 0 { continue }
            used.append(index)
            if type == Self.protectiveType {
                guard mbr[entry + 1] == 0x00, mbr[entry + 2] == 0x02, mbr[entry + 3] == 0x00 else {
                    throw .refused("gpt protective MBR has an invalid start CHS; refused")
                }
                guard mbr.le32(entry + 8) == 1 else { throw .refused("gpt protective MBR does not start at LBA 1; refused") }
            }
        }
        guard !used.isEmpty else { throw .refused("\(name) has no partitions defined; refused") }
        if detection.format == .gpt, used != [0] {
            throw .refused("gpt protective MBR defines other partitions; refused")
        }
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
        if detection.format == .gpt { try checkGPT(sectors: sectors, reader) }
    }

    /// The primary GPT header at LBA 1 and its entry array must lie within the disk.
    private func checkGPT(sectors: Int64, _ reader: RegionReader) throws(ProbeStop) {
        let header = try reader.view(Self.sector, 512)
        guard header.matches(Self.gptSignature) else { throw .refused("gpt header is missing at LBA 1; refused") }
        let headerSize = header.le32(12)
        guard (92...512).contains(headerSize), header.le64(24) == 1 else {
            throw .refused("gpt header is invalid; refused")
        }
        let lastSector = UInt64(sectors - 1)
        let firstUsable = header.le64(40), lastUsable = header.le64(48)
        guard header.le64(32) <= lastSector, firstUsable <= lastUsable, lastUsable <= lastSector else {
            throw .refused("gpt header describes a disk larger than the file; refused")
        }
        let entryCount = UInt64(header.le32(80)), entrySize = UInt64(header.le32(84))
        guard entrySize >= 128, entrySize.nonzeroBitCount == 1, let arrayBytes = Checked.multiply(entryCount, entrySize),
            arrayBytes <= UInt64(Self.maximumEntryArray)
        else { throw .refused("gpt partition entry array is absurd; refused") }
        let arrayLBA = header.le64(72)
        guard arrayLBA >= 2, arrayLBA <= lastSector,
            (arrayLBA * 512 + arrayBytes + 511) / 512 <= UInt64(sectors)
        else { throw .refused("gpt partition entry array lies outside the file; refused") }
        let entries = try reader.view(Int64(arrayLBA) * Self.sector, Int(arrayBytes))
        for index in 0..<Int(entryCount) {
            let at = index * Int(entrySize)
            if entries.slice(at, 16).allSatisfy({ $0 == 0 }) { continue }
            let first = entries.le64(at + 32), last = entries.le64(at + 40)
            guard first <= last, first >= firstUsable, last <= lastUsable else {
                throw .refused("gpt partition \(index + 1) lies outside the disk; refused")
            }
        }
    }
}

// qed: virtual size from the header; refuses backing files, unknown features and the header values qemu's open refuses.

struct QEDProbe: FormatProbe {
    var family: ImageFormat { .qed }

    static let magic: [UInt8] = [0x51, 0x45, 0x44, 0x00]  // "QED\0"
    static let headerLength = 64
    static let backingFileFeature: UInt64 = 1 << 0
    /// Backing file (0), needs consistency check (1), backing format no probe (2).
    static let knownFeatures: UInt64 = 0b111

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let head = try reader.view(0, Head.length)
        guard head.matches(Self.magic) else { return nil }
        return Detection(format: .qed, virtualSize: Int64(clamping: head.le64(48)))
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        let head = try reader.view(0, Head.length)
        guard head.count >= Self.headerLength else { throw .refused("qed header is truncated (\(head.count) of \(Self.headerLength) bytes); refused") }
        let features = head.le64(16)
        if features & Self.backingFileFeature != 0 || head.le32(56) != 0 {
            throw .refused("qed image has a backing file (features 0x\(String(features, radix: 16)), backing_filename_offset \(head.le32(56))); refused")
        }
        if features & ~Self.knownFeatures != 0 { throw .refused("qed image has unknown features (features 0x\(String(features, radix: 16))); refused") }
        let clusterSize = head.le32(4)
        guard clusterSize.nonzeroBitCount == 1, (4096...(64 << 20)).contains(clusterSize) else {
            throw .refused("qed cluster size \(clusterSize) is invalid; refused")
        }
        let tableSize = head.le32(8)
        guard tableSize.nonzeroBitCount == 1, tableSize <= 16 else {
            throw .refused("qed table_size \(tableSize) is not a power of two from 1 to 16; refused")
        }
        try checkVirtualSize(detection)
        // qemu's qed_is_image_size_valid: whole sectors, and no more than one L1 table of L2 tables maps.
        let imageSize = head.le64(48), entries = UInt64(tableSize) * UInt64(clusterSize) / 8
        let maximum = Checked.multiply(entries, UInt64(clusterSize)).flatMap { Checked.multiply($0, entries) } ?? .max
        guard imageSize % 512 == 0, imageSize <= maximum else {
            throw .refused("qed image_size \(imageSize) is not a multiple of 512 at most \(maximum); refused")
        }
        try checkL1Table(head, clusterSize: UInt64(clusterSize), tableSize: UInt64(tableSize), reader)
    }

    /// qemu's qed_check_table_offset: the L1 table's first and last clusters are whole clusters after the header and
    /// before the file's last partial cluster (the file size rounded down to clusters).
    private func checkL1Table(_ head: ByteView, clusterSize: UInt64, tableSize: UInt64, _ reader: RegionReader) throws(ProbeStop) {
        let size = UInt64(try reader.fileSize()) / clusterSize * clusterSize
        let offset = head.le64(40), headerEnd = UInt64(head.le32(12)) * clusterSize
        let last = offset &+ (tableSize - 1) * clusterSize
        // qemu's overflow check also refuses a table of one cluster (last == offset).
        guard last > offset, offset % clusterSize == 0, offset >= headerEnd, last < size else {
            throw .refused(
                "qed l1_table_offset \(offset) (table_size \(tableSize), header_size \(head.le32(12))) does not leave the whole L1 table "
                    + "after the header and inside the file (\(size) bytes in whole clusters); refused")
        }
    }
}

// qed: virtual size from the header; refuses backing files and unknown features.

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
        try checkVirtualSize(detection)
        let size = try reader.fileSize()
        guard let l1 = Checked.int64(head.le64(40)), l1 > 0, l1 < size else {
            throw .refused("qed l1_table_offset \(head.le64(40)) lies outside the file (\(size) bytes); refused")
        }
    }
}

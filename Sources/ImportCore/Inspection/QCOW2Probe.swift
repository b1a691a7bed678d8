// qcow2 (versions 2 and 3): virtual size from the header; refuses backing files, external data files
// and features this inspector does not know.

struct QCOW2Probe: FormatProbe {
    var family: ImageFormat { .qcow2 }

    static let magic: [UInt8] = [0x51, 0x46, 0x49, 0xFB]  // "QFI\xfb"
    static let version2HeaderLength = 72
    static let version3HeaderLength = 104
    /// Incompatible feature bits: 0 dirty, 1 corrupt, 2 external data file, 3 compression type.
    /// Anything above (4, extended L2, included) is refused, as oslo's inspector does.
    static let knownIncompatibleFeatures: UInt64 = 0b1111
    static let externalDataFileFeature: UInt64 = 1 << 2
    static let dataFileExtension: UInt32 = 0x4441_5441  // "DATA"
    /// Header extensions beyond this are not read; qemu's own stay far below it.
    static let maximumExtensionArea = 65536

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let head = try reader.view(0, Head.length)
        guard head.matches(Self.magic) else { return nil }
        return Detection(format: .qcow2, virtualSize: Int64(clamping: head.be64(24)))
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        let head = try reader.view(0, Head.length)
        guard head.count >= Self.version2HeaderLength else { throw .refused("qcow2 header is truncated; refused") }
        let version = head.be32(4)
        guard version == 2 || version == 3 else { throw .refused("qcow2 version \(version) is not supported; refused") }
        let clusterBits = head.be32(20)
        guard (9...21).contains(clusterBits) else {
            throw .refused("qcow2 cluster_bits \(clusterBits) is out of range (9–21); refused")
        }
        let clusterSize = 1 << Int(clusterBits)
        try checkVirtualSize(detection)
        if head.be64(8) != 0 { throw .refused("qcow2 image has a backing file; refused") }

        var headerLength = Self.version2HeaderLength
        if version == 3 {
            guard head.count >= Self.version3HeaderLength else { throw .refused("qcow2 header is truncated; refused") }
            let features = head.be64(72)
            if features & Self.externalDataFileFeature != 0 {
                throw .refused("qcow2 image has an external data file; refused")
            }
            if features & ~Self.knownIncompatibleFeatures != 0 {
                throw .refused("qcow2 image has unknown incompatible features; refused")
            }
            let declared = Int(head.be32(100))
            guard declared >= Self.version3HeaderLength, declared <= clusterSize, declared % 8 == 0 else {
                throw .refused("qcow2 header length \(declared) is invalid; refused")
            }
            headerLength = declared
        }
        try checkExtensions(from: headerLength, clusterSize: clusterSize, reader)
        try checkTables(head, clusterSize: clusterSize, reader)
    }

    /// Walks the header extensions in the first cluster: a data-file extension names another file.
    private func checkExtensions(from start: Int, clusterSize: Int, _ reader: RegionReader) throws(ProbeStop) {
        let area = min(clusterSize, Self.maximumExtensionArea)
        let header = try reader.view(0, area)
        var at = start
        while true {
            guard at + 8 <= header.count else {
                if header.count < area { throw .refused("qcow2 header extensions run past the end of the file; refused") }
                throw .refused("qcow2 header extensions run past \(area) bytes; refused")
            }
            let type = header.be32(at), length = Int(header.be32(at + 4))
            if type == 0 { return }
            if type == Self.dataFileExtension { throw .refused("qcow2 image has an external data file; refused") }
            // Extension data is padded to a multiple of 8 bytes.
            at += 8 + (length + 7) / 8 * 8
        }
    }

    /// The L1 and refcount tables must start inside the file.
    private func checkTables(_ head: ByteView, clusterSize: Int, _ reader: RegionReader) throws(ProbeStop) {
        let size = try reader.fileSize()
        let l1Entries = UInt64(head.be32(36))
        let tables: [(name: String, offset: UInt64, bytes: UInt64?)] = [
            ("L1 table", head.be64(40), Checked.multiply(l1Entries, 8)),
            ("refcount table", head.be64(48), 0),
        ]
        for table in tables where table.offset != 0 || table.name == "refcount table" {
            guard table.offset % UInt64(clusterSize) == 0, let offset = Checked.int64(table.offset),
                let bytes = table.bytes.flatMap(Checked.int64), let end = Checked.add(offset, bytes),
                offset < size, end <= size
            else { throw .refused("qcow2 \(table.name) lies outside the file; refused") }
        }
    }
}

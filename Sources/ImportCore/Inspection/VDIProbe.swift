// vdi (VirtualBox): virtual size from the header; only normal (dynamic) and fixed images are accepted.

struct VDIProbe: FormatProbe {
    var family: ImageFormat { .vdi }

    static let signature: UInt32 = 0xBEDA_107F
    static let headerLength = 512
    /// Image types: 1 normal (dynamic), 2 fixed; 3 undo and 4 differencing depend on other files.
    static let acceptedTypes: Set<UInt32> = [1, 2]

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let head = try reader.view(0, Head.length)
        guard head.count >= 0x44, head.le32(0x40) == Self.signature else { return nil }
        // qemu rounds an odd disk size (VBoxManage convertfromraw writes them) up to whole sectors.
        let size = head.le64(0x170)
        return Detection(format: .vdi, virtualSize: Int64(clamping: size > UInt64(Int64.max) ? size : (size + 511) / 512 * 512))
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        let head = try reader.view(0, Head.length)
        guard head.count >= Self.headerLength else { throw .refused("vdi header is truncated (\(head.count) of \(Self.headerLength) bytes); refused") }
        let type = head.le32(0x4C)
        guard Self.acceptedTypes.contains(type) else {
            throw .refused("vdi image type \(type) (undo or differencing) is not supported; refused")
        }
        try checkVirtualSize(detection)
        let size = try reader.fileSize()
        let blockMap = Int64(head.le32(0x154)), data = Int64(head.le32(0x158))
        guard blockMap >= Int64(Self.headerLength), blockMap <= size, data <= size else {
            throw .refused("vdi offset_bmap \(blockMap) or offset_data \(data) lies outside the file (\(size) bytes); refused")
        }
    }
}

// vdi (VirtualBox): virtual size from the header; only normal (dynamic) and fixed images qemu opens are accepted.

struct VDIProbe: FormatProbe {
    var family: ImageFormat { .vdi }

    static let signature: UInt32 = 0xBEDA_107F
    static let headerLength = 512
    /// Image types: 1 normal (dynamic), 2 fixed; 3 undo and 4 differencing depend on other files.
    static let acceptedTypes: Set<UInt32> = [1, 2]
    static let version: UInt32 = 0x0001_0001
    static let blockSize: UInt32 = 1 << 20
    /// qemu's VDI_BLOCKS_IN_IMAGE_MAX ((INT_MAX - 511) / 4: the block map must fit an int).
    static let maximumBlocks: UInt32 = 536_870_784

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
        try checkHeader(head)
        try checkVirtualSize(detection)
        let size = try reader.fileSize()
        let blockMap = Int64(head.le32(0x154)), data = Int64(head.le32(0x158))
        guard blockMap >= Int64(Self.headerLength), blockMap <= size, data <= size else {
            throw .refused("vdi offset_bmap \(blockMap) or offset_data \(data) lies outside the file (\(size) bytes); refused")
        }
    }

    /// What qemu's vdi_open refuses, in its order: the version, unaligned offsets, sector and block sizes other than
    /// qemu's, a block map too small for the disk, a link or parent UUID (other files), too many blocks.
    private func checkHeader(_ head: ByteView) throws(ProbeStop) {
        let version = head.le32(0x44)
        guard version == Self.version else { throw .refused("vdi version \(version >> 16).\(version & 0xFFFF) is not 1.1; refused") }
        let blockMap = head.le32(0x154), data = head.le32(0x158)
        guard blockMap % 512 == 0, data % 512 == 0 else {
            throw .refused("vdi offset_bmap \(blockMap) or offset_data \(data) is not a multiple of 512; refused")
        }
        let sectorSize = head.le32(0x168)
        guard sectorSize == 512 else { throw .refused("vdi sector_size \(sectorSize) is not 512; refused") }
        let blockSize = head.le32(0x178)
        guard blockSize == Self.blockSize else { throw .refused("vdi block_size \(blockSize) is not \(Self.blockSize); refused") }
        let blocks = head.le32(0x180), diskSize = head.le64(0x170)
        // qemu rounds the disk size up to whole sectors first.
        let rounded = diskSize > UInt64.max - 511 ? diskSize : (diskSize + 511) / 512 * 512
        guard rounded <= UInt64(blocks) * UInt64(blockSize) else {
            throw .refused("vdi disk_size \(diskSize) is more than its blocks_in_image \(blocks) hold; refused")
        }
        if head.slice(0x1A8, 16).contains(where: { $0 != 0 }) || head.slice(0x1B8, 16).contains(where: { $0 != 0 }) {
            throw .refused("vdi image names a link or parent image (uuid_link or uuid_parent is set); refused")
        }
        guard blocks <= Self.maximumBlocks else { throw .refused("vdi blocks_in_image \(blocks) is above qemu's limit (\(Self.maximumBlocks)); refused") }
    }
}

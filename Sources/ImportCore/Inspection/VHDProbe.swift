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
            return Detection(format: .vhd, virtualSize: Int64(clamping: head.be64(48)))
        }
        // Only a complete file says whether a footer ends it.
        let footer = ByteView(try reader.readEnd(Self.footerLength))
        guard footer.count == Self.footerLength, footer.matches(Self.cookie) else { return nil }
        return Detection(format: .vhd, virtualSize: Int64(clamping: footer.be64(48)))
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        let head = try reader.view(0, Head.length)
        let atStart = head.matches(Self.cookie)
        let footer = atStart ? head : ByteView(try reader.readEnd(Self.footerLength))
        guard footer.count >= Self.footerLength else { throw .refused("vhd footer is truncated; refused") }
        guard let type = DiskType(rawValue: footer.be32(60)) else {
            throw .refused("vhd disk type \(footer.be32(60)) is not supported; refused")
        }
        if type == .differencing { throw .refused("vhd image is a differencing disk (it has a parent); refused") }
        try checkVirtualSize(detection)
        switch (type, atStart) {
        case (.dynamic, false):
            throw .refused("vhd dynamic disk has no footer copy at its start; refused")
        case (.dynamic, true):
            guard let offset = Checked.int64(footer.be64(16)), offset >= 512 else {
                throw .refused("vhd dynamic header lies outside the file; refused")
            }
            let header = try reader.view(offset, 1024)
            guard header.count == 1024 else { throw .refused("vhd dynamic header lies outside the file; refused") }
            guard header.matches(Self.dynamicHeaderCookie) else {
                throw .refused("vhd dynamic header is missing; refused")
            }
            // A parent (by id or by locator) makes it a differencing disk whatever the footer says.
            let parentLocators = (0..<8).contains { header.be32(576 + 24 * $0) != 0 }
            if header.slice(40, 16).contains(where: { $0 != 0 }) || parentLocators {
                throw .refused("vhd image names a parent disk; refused")
            }
        default:
            return
        }
    }
}

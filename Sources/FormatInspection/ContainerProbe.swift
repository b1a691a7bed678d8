// Compression containers: recognised by their magic so the import can unpack them first, or refuse them.

/// Compression containers, recognised so they can be unpacked; their size is the file's.
struct ContainerProbe: FormatProbe {
    var family: ImageFormat { .gzip }

    static let signatures: [(ImageFormat, [UInt8])] = [
        (.gzip, [0x1F, 0x8B, 0x08]),
        (.zstd, [0x28, 0xB5, 0x2F, 0xFD]),
        (.zip, [0x50, 0x4B, 0x03, 0x04]),
        (.zip, [0x50, 0x4B, 0x05, 0x06]),  // an empty archive
        (.xz, [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]),
    ]

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let head = try reader.view(0, Head.length)
        let format =
            Self.signatures.first(where: { head.matches($0.1) })?.0
            ?? (Self.isBzip2(head) ? .bzip2 : Self.isLZMAAlone(head) ? .lzma : nil)
        return format.map { Detection(format: $0, virtualSize: reader.sizeSoFar) }
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        guard detection.format == .lzma else { return }
        throw .refused(
            "image data is in the legacy .lzma format, which image_decompression does not unpack (nor does Glance's); "
                + "recompress it with xz (xz -dc image.lzma | xz > image.xz); refused")
    }

    /// "BZh" and a block size digit could begin a text file, so the first block's (or an empty stream's end) magic must follow.
    static func isBzip2(_ head: ByteView) -> Bool {
        head.matches(Array(ascii: "BZh")) && (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(head[3])
            && (head.matches([0x31, 0x41, 0x59, 0x26, 0x53, 0x59], at: 4) || head.matches([0x17, 0x72, 0x45, 0x38, 0x50, 0x90], at: 4))
    }

    /// The .lzma header has no magic: 0x5D is the properties byte every lzma tool writes by default (lc 3, lp 0, pb 2),
    /// then the checks xz applies before it believes the format (a dictionary of 2^n or 2^n + 2^(n-1) bytes, an
    /// unknown or plausible size), and the range coder's first byte, always 0. Together they do not begin a disk.
    static func isLZMAAlone(_ head: ByteView) -> Bool {
        guard head.count > 13, head[0] == 0x5D, head[13] == 0 else { return false }
        let dictionary = head.le32(1), size = head.le64(5)
        let rounded =
            dictionary >= 4096
            && (dictionary.nonzeroBitCount == 1
                || (dictionary.nonzeroBitCount == 2 && dictionary >> dictionary.trailingZeroBitCount == 3))
        return rounded && (size == .max || size < 1 << 38)
    }
}

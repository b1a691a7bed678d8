// gzip, zstd and zip: recognised by their magic so the import can unpack them first.

/// Compression containers, recognised so they can be unpacked; their size is the file's.
struct ContainerProbe: FormatProbe {
    var family: ImageFormat { .gzip }

    static let signatures: [(ImageFormat, [UInt8])] = [
        (.gzip, [0x1F, 0x8B, 0x08]),
        (.zstd, [0x28, 0xB5, 0x2F, 0xFD]),
        (.zip, [0x50, 0x4B, 0x03, 0x04]),
        (.zip, [0x50, 0x4B, 0x05, 0x06]),  // an empty archive
    ]

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let head = try reader.view(0, Head.length)
        guard let (format, _) = Self.signatures.first(where: { head.matches($0.1) }) else { return nil }
        return Detection(format: format, virtualSize: reader.sizeSoFar)
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {}
}

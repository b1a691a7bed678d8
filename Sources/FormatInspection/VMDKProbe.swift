// vmdk: hosted sparse extents (monolithicSparse, streamOptimized) with their embedded descriptor, and
// plain-text descriptor files, which always name other files and so are always refused. The embedded
// descriptor is read as qemu 7.2's vmdk_open reads it, so that what is checked is what qemu parses.

struct VMDKProbe: FormatProbe {
    var family: ImageFormat { .vmdk }

    static let magic: [UInt8] = [0x4B, 0x44, 0x4D, 0x56]  // "KDMV"
    static let sparseHeaderLength = 80
    /// qemu reads the embedded descriptor at sector 1 whatever the header says; we require the header to agree.
    static let descriptorOffset: UInt64 = 1
    /// qemu's vmdk_parent_open and vmdk_read_cid read this much at sector 1, whatever desc_size says.
    static let descriptorWindow = 10240
    /// A grain directory at the end means a footer, end-of-stream marker last (streamOptimized).
    static let grainDirectoryAtEnd = UInt64.max
    static let footerLength = 1536
    /// oslo's allowed create types (Glance's `[image_format] vmdk_allowed_types` default; we do not read it).
    static let allowedCreateTypes: Set<String> = ["monolithicSparse", "streamOptimized"]
    /// The header fields qemu takes from the footer instead, besides the grain directory: (name, offset, width).
    static let footerFields: [(name: String, offset: Int, width: Int)] = [
        ("version", 4, 4), ("flags", 8, 4), ("capacity", 12, 8), ("granularity", 20, 8), ("desc_offset", 28, 8),
        ("desc_size", 36, 8), ("num_gtes_per_gt", 44, 4), ("grain_offset", 64, 8), ("compressAlgorithm", 77, 2),
    ]

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let head = try reader.view(0, Head.length)
        if head.matches(Self.magic) {
            // qemu uses the footer's capacity when there is one; check() refuses a footer that differs.
            let sectors = Checked.multiply(head.le64(12), 512) ?? .max
            // qemu takes a sparse file's create type from its header, not from the descriptor's createType.
            let createType = head.le16(77) == 1 ? "streamOptimized" : "monolithicSparse"
            return Detection(format: .vmdk, virtualSize: Int64(clamping: sectors), subformat: createType)
        }
        guard let text = try Self.descriptorText(head, reader) else { return nil }
        let descriptor = VMDKDescriptor(text)
        let header = Array("# disk descriptorfile".utf8)
        guard
            text.prefix(header.count).map(\.lowercasedASCII) == header
                || !descriptor.occurrences(of: "createtype", caseSensitive: false).isEmpty
        else { return nil }
        return Detection(format: .vmdk, virtualSize: descriptor.extentBytes)
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        let head = try reader.view(0, Head.length)
        guard head.matches(Self.magic) else {
            let descriptor = VMDKDescriptor(try Self.descriptorText(head, reader) ?? [])
            if let named = descriptor.extentFiles.first {
                throw .refused("vmdk descriptor file names another file (\(named)) for its data; refused")
            }
            throw .refused("vmdk descriptor file keeps its data in other files; refused")
        }
        guard head.count >= Self.sparseHeaderLength else { throw .refused("vmdk header is truncated; refused") }
        let version = head.le32(4)
        guard (1...3).contains(version) else { throw .refused("vmdk version \(version) is not supported; refused") }
        // qemu's vmdk_open_vmdk4 then parses the descriptor as a descriptor file and opens the extents it names.
        guard head.le64(12) != 0 else {
            throw .refused("vmdk header capacity is 0: qemu would read the descriptor as a descriptor file naming other files; refused")
        }
        try checkVirtualSize(detection)
        guard head.le64(28) == Self.descriptorOffset else {
            throw .refused("vmdk embedded descriptor is not at sector 1; refused")
        }
        let sectors = head.le64(36)
        guard sectors > 0 else { throw .refused("vmdk image has no embedded descriptor; refused") }
        // Bytes past the end read as zero, as qemu's do.
        var window = try reader.read(512, Self.descriptorWindow)
        window += [UInt8](repeating: 0, count: Self.descriptorWindow - window.count)
        try checkDescriptor(VMDKDescriptor(window), sectors: sectors)
        if head.le64(56) == Self.grainDirectoryAtEnd { try checkFooter(head, reader) }
        try checkGrainTables(head, reader)
    }

    /// qemu's vmdk_open_vmdk4 and vmdk_add_extent: grain tables of at most 512 entries, grains of at most 1 GiB, a grain
    /// directory of at most 32 Mi entries, and a file that reaches its first grain.
    private func checkGrainTables(_ head: ByteView, _ reader: RegionReader) throws(ProbeStop) {
        let entries = UInt64(head.le32(44)), granularity = head.le64(20)
        guard entries <= 512 else { throw .refused("vmdk num_gtes_per_gt \(entries) is above 512; refused") }
        // qemu multiplies in 64 bits, wrapping, and refuses a product of 0.
        let sectorsPerTable = entries &* granularity
        guard sectorsPerTable != 0 else {
            throw .refused("vmdk num_gtes_per_gt \(entries) × granularity \(granularity) is 0 sectors; refused")
        }
        let sectors = try reader.fileSize().quotientAndRemainder(dividingBy: 512)
        let fileSectors = UInt64(sectors.quotient) + (sectors.remainder > 0 ? 1 : 0)
        guard head.le64(64) <= fileSectors else {
            throw .refused("vmdk grain_offset \(head.le64(64)) (sectors) lies past the end of the file (\(fileSectors) sectors); refused")
        }
        guard granularity <= Self.maximumGranularity else {
            throw .refused("vmdk granularity \(granularity) (sectors) is above qemu's limit (\(Self.maximumGranularity)); refused")
        }
        let directoryEntries = head.le64(12) / sectorsPerTable + (head.le64(12) % sectorsPerTable == 0 ? 0 : 1)
        guard directoryEntries <= Self.maximumDirectoryEntries else {
            throw .refused(
                "vmdk grain directory of \(directoryEntries) entries (capacity \(head.le64(12)), num_gtes_per_gt \(entries), "
                    + "granularity \(granularity)) is above qemu's limit (\(Self.maximumDirectoryEntries)); refused")
        }
        // qemu reads the grain directory (the footer's, for a streamOptimized image with one) and, with the
        // redundant-grain-directory flag, its copy at open: both must lie inside the file.
        var directories = [
            ("gd_offset", head.le64(56) == Self.grainDirectoryAtEnd ? ByteView(try reader.readEnd(Self.footerLength)).le64(512 + 56) : head.le64(56))
        ]
        if head.le32(8) & Self.redundantDirectoryFlag != 0 { directories.append(("rgd_offset", head.le64(48))) }
        let size = try reader.fileSize()
        for (field, sector) in directories {
            guard let offset = Checked.multiply(sector, 512).flatMap(Checked.int64), let end = Checked.add(offset, Int64(directoryEntries * 4)), end <= size
            else {
                throw .refused(
                    "vmdk \(field) \(sector) (sectors): the grain directory of \(directoryEntries) entries lies past the end of the file (\(size) bytes); refused"
                )
            }
        }
    }

    /// VMDK4_FLAG_RGD: the header's rgd_offset holds a copy of the grain directory.
    static let redundantDirectoryFlag: UInt32 = 1 << 1

    /// qemu's bounds in vmdk_add_extent: grains (clusters) of 1 GiB, and an L1 table (grain directory) of 32 Mi entries.
    static let maximumGranularity: UInt64 = 0x20_0000
    static let maximumDirectoryEntries: UInt64 = 32 << 20

    /// What qemu reads (a backing file, the parent's CID) first, over its whole window; then that its text is
    /// the one desc_size declares, and Glance's rules: known lines, one createType, one sparse extent of its own.
    private func checkDescriptor(_ descriptor: VMDKDescriptor, sectors: UInt64) throws(ProbeStop) {
        let text = descriptor.text
        // qemu matches "parentFileNameHint" case-sensitively; any case is refused, to be safe.
        if let at = descriptor.occurrences(of: "parentfilenamehint", caseSensitive: false).first {
            throw .refused("vmdk descriptor names a backing file (\(descriptor.line(from: at).excerpt)); refused")
        }
        let declared = Int(min(Checked.multiply(sectors, 512) ?? .max, UInt64(Self.descriptorWindow)))
        guard text.count < declared else {
            if text.count == Self.descriptorWindow {
                throw .refused("vmdk descriptor has no NUL in the \(Self.descriptorWindow) bytes qemu reads; refused")
            }
            throw .refused("vmdk descriptor text is \(text.count) bytes, more than its desc_size of \(sectors) sectors holds; refused")
        }
        try checkParentCID(descriptor)
        if let index = text.firstIndex(where: { !(0x20...0x7E).contains($0) && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }) {
            let hex = String(text[index], radix: 16, uppercase: true)
            throw .refused("vmdk descriptor byte 0x\(hex.count < 2 ? "0" : "")\(hex) at offset \(512 + index) is not printable ASCII, tab, CR or LF; refused")
        }
        if let line = descriptor.unknownLines.first {
            throw .refused("vmdk descriptor has a line this inspector does not understand (\(line.prefix(64))); refused")
        }
        try checkCreateType(descriptor)
        if let named = descriptor.extentFiles.first(where: { $0.contains("/") || $0.contains("\\") }) {
            throw .refused("vmdk extent names another file (\(named.prefix(64))); refused")
        }
        guard descriptor.extents.count == 1, descriptor.extents[0].type == "sparse" else {
            throw .refused("vmdk descriptor must name exactly one sparse extent; refused")
        }
    }

    /// qemu's vmdk_read_cid takes the first "parentCID" anywhere; without one it cannot open the image.
    private func checkParentCID(_ descriptor: VMDKDescriptor) throws(ProbeStop) {
        let name = "parentCID"
        guard let at = descriptor.occurrences(of: name, caseSensitive: true).first else {
            throw .refused("vmdk descriptor has no parentCID field; refused")
        }
        let rest = descriptor.line(from: at).dropFirst(name.utf8.count)
        let value = rest.first == UInt8(ascii: "=") ? rest.dropFirst() : rest
        guard rest.first == UInt8(ascii: "="), value.lowercasedASCII == "ffffffff" else {
            throw .refused("vmdk descriptor field parentCID is \(value.excerpt), not ffffffff (the image expects a parent); refused")
        }
    }

    /// qemu reads the first "createType" anywhere, even inside another word or a comment: so there must be
    /// exactly one, on a line of its own.
    private func checkCreateType(_ descriptor: VMDKDescriptor) throws(ProbeStop) {
        let mentions = descriptor.occurrences(of: "createtype", caseSensitive: false)
        guard mentions.count <= 1 else {
            throw .refused("vmdk descriptor mentions createType \(mentions.count) times (qemu reads the first, anywhere); refused")
        }
        guard let at = mentions.first else { throw .refused("vmdk create type (none) is not supported; refused") }
        let line = descriptor.line(around: at)
        let prefix = Array("createType=\"".utf8)
        let value = line.dropFirst(prefix.count).dropLast()
        guard line.starts(with: prefix), line.count > prefix.count, line.last == VMDKDescriptor.quote,
            !value.contains(VMDKDescriptor.quote)
        else { throw .refused("vmdk descriptor line \(line.excerpt) is not createType=\"…\"; refused") }
        guard Self.allowedCreateTypes.contains(String(decoding: value, as: UTF8.self)) else {
            throw .refused("vmdk create type \(value.excerpt) is not supported; refused")
        }
    }

    /// streamOptimized may keep its grain directory in a footer copy of the header, which qemu then uses in
    /// place of the header: it must agree with the header and be followed by the end-of-stream marker.
    private func checkFooter(_ head: ByteView, _ reader: RegionReader) throws(ProbeStop) {
        // qemu reads the footer 1536 bytes before the end rounded up to a sector, not before the end.
        let size = try reader.fileSize(needingEnd: Self.footerLength)
        guard size % 512 == 0 else {
            throw .refused("vmdk file size \(size) is not a multiple of 512, so qemu would read its footer elsewhere; refused")
        }
        let end = ByteView(try reader.readEnd(Self.footerLength))
        guard end.count == Self.footerLength else { throw .refused("vmdk footer is truncated; refused") }
        let footer = ByteView(Array(end.slice(512, 512)))
        guard footer.matches(Self.magic) else { throw .refused("vmdk footer has no KDMV magic; refused") }
        for field in Self.footerFields {
            let value = Self.field(footer, field.offset, field.width), expected = Self.field(head, field.offset, field.width)
            guard value == expected else {
                throw .refused("vmdk footer \(field.name) \(value) differs from the header's \(expected); refused")
            }
        }
        if footer.le64(56) == Self.grainDirectoryAtEnd { throw .refused("vmdk footer points to another footer; refused") }
        let marker = ByteView(Array(end.slice(0, 512))), eos = ByteView(Array(end.slice(1024, 512)))
        let markerPadding = marker.slice(16, 496).allSatisfy { $0 == 0 }
        guard marker.le32(8) == 0, marker.le32(12) == 3, markerPadding else {
            throw .refused("vmdk footer marker is invalid; refused")
        }
        guard eos.bytes.allSatisfy({ $0 == 0 }) else { throw .refused("vmdk end-of-stream marker is invalid; refused") }
    }

    private static func field(_ view: ByteView, _ offset: Int, _ width: Int) -> UInt64 {
        switch width {
        case 2: UInt64(view.le16(offset))
        case 4: UInt64(view.le32(offset))
        default: view.le64(offset)
        }
    }

    /// A text descriptor file is small; qemu reads at most this much of one.
    static let maximumTextDescriptor = 65536

    /// The file's text, when its first sector is printable ASCII (a descriptor file).
    static func descriptorText(_ head: ByteView, _ reader: RegionReader) throws(ProbeStop) -> [UInt8]? {
        guard head.count >= 4,
            head.bytes.allSatisfy({ (0x20..<0x7F).contains($0) || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D })
        else { return nil }
        return Array(try reader.read(0, maximumTextDescriptor).prefix { $0 != 0 && $0 < 0x80 })
    }
}

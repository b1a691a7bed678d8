// vmdk: hosted sparse extents (monolithicSparse, streamOptimized) with their embedded descriptor, and
// plain-text descriptor files, which always name other files and so are always refused.

struct VMDKProbe: FormatProbe {
    var family: ImageFormat { .vmdk }

    static let magic: [UInt8] = [0x4B, 0x44, 0x4D, 0x56]  // "KDMV"
    static let sparseHeaderLength = 80
    /// qemu reads the embedded descriptor at sector 1 only, and at most 1 MiB - 1 of it.
    static let descriptorOffset: UInt64 = 1
    static let maximumDescriptor = (1 << 20) - 1
    /// A grain directory at the end means a footer, end-of-stream marker last (streamOptimized).
    static let grainDirectoryAtEnd = UInt64.max
    static let footerLength = 1536
    static let allowedCreateTypes: Set<String> = ["monolithicsparse", "streamoptimized"]

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let head = try reader.view(0, Head.length)
        if head.matches(Self.magic) {
            let sectors = Checked.multiply(head.le64(12), 512) ?? .max
            return Detection(format: .vmdk, virtualSize: Int64(clamping: sectors))
        }
        guard let text = try Self.descriptorText(head, reader) else { return nil }
        let descriptor = VMDKDescriptor(text)
        guard text.hasPrefix("# disk descriptorfile") || descriptor.createType != nil else { return nil }
        return Detection(format: .vmdk, virtualSize: descriptor.extentBytes)
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        let head = try reader.view(0, Head.length)
        guard head.matches(Self.magic) else {
            let descriptor = VMDKDescriptor(try Self.descriptorText(head, reader) ?? "")
            if let named = descriptor.extentFiles.first {
                throw .refused("vmdk descriptor file names another file (\(named)) for its data; refused")
            }
            throw .refused("vmdk descriptor file keeps its data in other files; refused")
        }
        guard head.count >= Self.sparseHeaderLength else { throw .refused("vmdk header is truncated; refused") }
        let version = head.le32(4)
        guard (1...3).contains(version) else { throw .refused("vmdk version \(version) is not supported; refused") }
        try checkVirtualSize(detection)
        guard head.le64(28) == Self.descriptorOffset else {
            throw .refused("vmdk embedded descriptor is not at sector 1; refused")
        }
        let sectors = head.le64(36)
        guard sectors > 0 else { throw .refused("vmdk image has no embedded descriptor; refused") }
        let length = Int(min(Checked.multiply(sectors, 512) ?? .max, UInt64(Self.maximumDescriptor)))
        let bytes = try reader.read(512, length)
        guard bytes.count == length else { throw .refused("vmdk descriptor runs past the end of the file; refused") }
        try checkDescriptor(bytes)
        if head.le64(56) == Self.grainDirectoryAtEnd { try checkFooter(head, reader) }
    }

    /// Each line must be a comment, a ddb entry, a key=value field or an extent; the only extent must be
    /// this file's own sparse data, so it may not name a path.
    private func checkDescriptor(_ bytes: [UInt8]) throws(ProbeStop) {
        let text = bytes.prefix { $0 != 0 }
        guard text.allSatisfy({ $0 < 0x80 }) else { throw .refused("vmdk descriptor is not ASCII text; refused") }
        let descriptor = VMDKDescriptor(String(decoding: text, as: UTF8.self).lowercased())
        if let line = descriptor.unknownLines.first {
            throw .refused("vmdk descriptor has a line this inspector does not understand (\(line.prefix(64))); refused")
        }
        guard let createType = descriptor.createType, Self.allowedCreateTypes.contains(createType) else {
            throw .refused("vmdk create type \(descriptor.createType ?? "(none)") is not supported; refused")
        }
        if let named = descriptor.extentFiles.first(where: { $0.contains("/") || $0.contains("\\") }) {
            throw .refused("vmdk extent names another file (\(named.prefix(64))); refused")
        }
        guard descriptor.extents.count == 1, descriptor.extents[0].type == "sparse" else {
            throw .refused("vmdk descriptor must name exactly one sparse extent; refused")
        }
    }

    /// streamOptimized keeps a footer copy of the header: it must agree with the header and be followed
    /// by the end-of-stream marker.
    private func checkFooter(_ head: ByteView, _ reader: RegionReader) throws(ProbeStop) {
        let end = ByteView(try reader.readEnd(Self.footerLength))
        guard end.count == Self.footerLength else { throw .refused("vmdk footer is truncated; refused") }
        let footer = ByteView(Array(end.slice(512, 512)))
        guard footer.matches(Self.magic), footer.le32(4) == head.le32(4), footer.le64(28) == head.le64(28),
            footer.le64(36) == head.le64(36)
        else { throw .refused("vmdk footer does not match its header; refused") }
        if footer.le64(56) == Self.grainDirectoryAtEnd { throw .refused("vmdk footer points to another footer; refused") }
        let marker = ByteView(Array(end.slice(0, 512))), eos = ByteView(Array(end.slice(1024, 512)))
        let markerPadding = marker.slice(16, 496).allSatisfy { $0 == 0 }
        guard marker.le32(8) == 0, marker.le32(12) == 3, markerPadding else {
            throw .refused("vmdk footer marker is invalid; refused")
        }
        guard eos.bytes.allSatisfy({ $0 == 0 }) else { throw .refused("vmdk end-of-stream marker is invalid; refused") }
    }

    /// A text descriptor file is small; qemu reads at most this much of one.
    static let maximumTextDescriptor = 65536

    /// The file as lowercased text, when its first sector is printable ASCII (a descriptor file).
    static func descriptorText(_ head: ByteView, _ reader: RegionReader) throws(ProbeStop) -> String? {
        guard head.count >= 4,
            head.bytes.allSatisfy({ (0x20..<0x7F).contains($0) || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D })
        else { return nil }
        let text = try reader.read(0, maximumTextDescriptor).prefix { $0 != 0 && $0 < 0x80 }
        return String(decoding: text, as: UTF8.self).lowercased()
    }
}

/// The lines of a (lowercased) vmdk descriptor, sorted by kind.
struct VMDKDescriptor {
    struct Extent {
        var sectors: UInt64
        var type: String
        var file: String?
    }

    var createType: String?
    var extents: [Extent] = []
    var unknownLines: [String] = []

    static let accessModes: Set<Substring> = ["rw", "rdonly", "noaccess"]

    init(_ text: String) {
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = rawLine.trimmingWhitespace
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("ddb") { continue }
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            if let first = words.first, Self.accessModes.contains(first) {
                let quoted = line.split(separator: "\"", omittingEmptySubsequences: false)
                extents.append(Extent(
                    sectors: words.count > 1 ? UInt64(words[1]) ?? 0 : 0,
                    type: words.count > 2 ? String(words[2]) : "",
                    file: quoted.count >= 3 ? String(quoted[1]) : nil))
            } else if let equals = line.firstIndex(of: "="), !line[..<equals].contains(" ") {
                if line[..<equals] == "createtype" {
                    createType = String(line[line.index(after: equals)...].filter { $0 != "\"" })
                }
            } else {
                unknownLines.append(String(line))
            }
        }
    }

    var extentFiles: [String] { extents.compactMap(\.file) }

    /// The disk size the extents add up to; saturates rather than overflowing on hostile counts.
    var extentBytes: Int64 {
        let sectors = extents.reduce(UInt64(0)) { $0.addingReportingOverflow($1.sectors).overflow ? .max : $0 + $1.sectors }
        return Int64(clamping: Checked.multiply(sectors, 512) ?? .max)
    }
}

extension Substring {
    var trimmingWhitespace: Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let start = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return self[endIndex...]
        }
        return self[start...last]
    }
}

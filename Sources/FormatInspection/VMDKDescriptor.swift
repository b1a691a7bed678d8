// A vmdk descriptor's text as qemu reads it: bytes up to the first NUL, lines ending at LF, words split on
// C isspace.

/// The lines of a vmdk descriptor, sorted by kind. It works on bytes, not Characters: "\r\n" is one Swift
/// Character, and splitting on it would join two of qemu's lines into one.
struct VMDKDescriptor {
    struct Extent {
        var sectors: UInt64
        /// Lowercased.
        var type: String
        var file: String?
    }

    /// The bytes before the first NUL.
    let text: [UInt8]
    private(set) var extents: [Extent] = []
    /// Lines that are neither a comment, a ddb entry, a key=value field nor an extent.
    private(set) var unknownLines: [String] = []

    /// An extent line starts with its access mode, in any case.
    static let accessModes: Set<String> = ["rw", "rdonly", "noaccess"]
    static let newline = UInt8(ascii: "\n"), quote = UInt8(ascii: "\"")

    init<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        text = Array(bytes.prefix { $0 != 0 })
        for rawLine in text.split(separator: Self.newline) {
            let line = rawLine.trimmingCSpace
            if line.isEmpty || line.first == UInt8(ascii: "#") || line.lowercasedASCII.hasPrefix("ddb") { continue }
            let words = line.split(whereSeparator: \.isCSpace)
            if let first = words.first, Self.accessModes.contains(first.lowercasedASCII) {
                let quoted = line.split(separator: Self.quote, omittingEmptySubsequences: false)
                extents.append(
                    Extent(
                        sectors: words.count > 1 ? UInt64(String(decoding: words[1], as: UTF8.self)) ?? 0 : 0,
                        type: words.count > 2 ? words[2].lowercasedASCII : "",
                        file: quoted.count >= 3 ? String(decoding: quoted[1], as: UTF8.self) : nil))
            } else if let equals = line.firstIndex(of: UInt8(ascii: "=")), !line[..<equals].contains(where: \.isCSpace) {
                continue
            } else {
                unknownLines.append(String(decoding: line, as: UTF8.self))
            }
        }
    }

    var extentFiles: [String] { extents.compactMap(\.file) }

    /// The disk size the extents add up to; saturates rather than overflowing on hostile counts.
    var extentBytes: Int64 {
        let sectors = extents.reduce(UInt64(0)) { $0.addingReportingOverflow($1.sectors).overflow ? .max : $0 + $1.sectors }
        return Int64(clamping: Checked.multiply(sectors, 512) ?? .max)
    }

    /// Where `word` starts, anywhere in the text: qemu finds its fields with strstr, not line by line.
    func occurrences(of word: String, caseSensitive: Bool) -> [Int] {
        let fold: (UInt8) -> UInt8 = { caseSensitive ? $0 : $0.lowercasedASCII }
        let needle = word.utf8.map(fold)
        guard text.count >= needle.count else { return [] }
        return (0...(text.count - needle.count)).filter { start in
            needle.indices.allSatisfy { fold(text[start + $0]) == needle[$0] }
        }
    }

    /// The rest of the line from `at`, without trailing white space, for checks and messages.
    func line(from at: Int) -> ArraySlice<UInt8> {
        let end = text[at...].firstIndex(of: Self.newline) ?? text.endIndex
        return text[at..<end].trimmingCSpace
    }

    /// The whole line that `at` lies in, trimmed.
    func line(around at: Int) -> ArraySlice<UInt8> {
        let start = text[..<at].lastIndex(of: Self.newline).map { $0 + 1 } ?? text.startIndex
        return line(from: start)
    }
}

extension UInt8 {
    /// C's isspace: qemu's sscanf and our tokeniser agree on what separates words.
    var isCSpace: Bool { self == 0x20 || (0x09...0x0D).contains(self) }

    var lowercasedASCII: UInt8 { (0x41...0x5A).contains(self) ? self + 0x20 : self }
}

extension ArraySlice<UInt8> {
    var trimmingCSpace: ArraySlice<UInt8> {
        guard let start = firstIndex(where: { !$0.isCSpace }), let last = lastIndex(where: { !$0.isCSpace }) else {
            return self[endIndex...]
        }
        return self[start...last]
    }

    var lowercasedASCII: String { String(decoding: map(\.lowercasedASCII), as: UTF8.self) }

    /// For messages: at most 64 bytes, as text.
    var excerpt: String { String(decoding: prefix(64), as: UTF8.self) }
}

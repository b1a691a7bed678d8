// The bytes of an image the checks have asked for, kept as sorted disjoint segments.

/// A byte range of the image.
struct ByteRange: Sendable, Hashable {
    var offset: Int64
    var count: Int

    /// Where the range ends; a range a header places past 2^63 ends there instead of trapping.
    var end: Int64 { Self.end(offset, count) }

    func overlaps(_ offset: Int64, _ count: Int) -> Bool {
        count > 0 && self.count > 0 && offset < end && self.offset < Self.end(offset, count)
    }

    static func end(_ offset: Int64, _ count: Int) -> Int64 {
        let (end, overflow) = offset.addingReportingOverflow(Int64(count))
        return overflow ? .max : end
    }
}

/// Kept bytes of an image; later bytes for the same offsets replace earlier ones.
struct RegionStore: Sendable {
    private var segments: [(offset: Int64, bytes: [UInt8])] = []
    private(set) var byteCount = 0

    /// Stores `bytes` at `offset`, merging with touching segments.
    mutating func insert<Bytes: Collection<UInt8>>(_ bytes: Bytes, at offset: Int64) {
        guard !bytes.isEmpty else { return }
        let end = offset + Int64(bytes.count)
        var start = offset, stop = end
        var touching: [(offset: Int64, bytes: [UInt8])] = []
        var kept: [(offset: Int64, bytes: [UInt8])] = []
        for segment in segments {
            let segmentEnd = segment.offset + Int64(segment.bytes.count)
            if segmentEnd >= offset && segment.offset <= end {
                touching.append(segment)
                start = min(start, segment.offset)
                stop = max(stop, segmentEnd)
            } else {
                kept.append(segment)
            }
        }
        var merged = [UInt8](repeating: 0, count: Int(stop - start))
        for segment in touching {
            let at = Int(segment.offset - start)
            merged.replaceSubrange(at..<(at + segment.bytes.count), with: segment.bytes)
        }
        let at = Int(offset - start)
        merged.replaceSubrange(at..<(at + bytes.count), with: bytes)
        kept.append((start, merged))
        kept.sort { $0.offset < $1.offset }
        segments = kept
        byteCount = segments.reduce(0) { $0 + $1.bytes.count }
    }

    /// The bytes of [offset, offset+count) when all of them are kept.
    /// Whether [offset, offset+count) is kept, without copying it.
    func covers(_ offset: Int64, _ count: Int) -> Bool {
        count == 0 || segments.contains { $0.offset <= offset && $0.offset + Int64($0.bytes.count) - offset >= Int64(count) }
    }

    func bytes(_ offset: Int64, _ count: Int) -> [UInt8]? {
        if count == 0 { return [] }
        for segment in segments where segment.offset <= offset {
            let available = segment.offset + Int64(segment.bytes.count) - offset
            if available >= Int64(count) {
                let at = Int(offset - segment.offset)
                return Array(segment.bytes[at..<(at + count)])
            }
        }
        return nil
    }

    /// Where the kept bytes are.
    var ranges: [ByteRange] { segments.map { ByteRange(offset: $0.offset, count: $0.bytes.count) } }

    /// Whether any kept byte lies in [offset, offset+count).
    func overlaps(_ offset: Int64, _ count: Int) -> Bool {
        segments.contains { ByteRange(offset: $0.offset, count: $0.bytes.count).overlaps(offset, count) }
    }
}

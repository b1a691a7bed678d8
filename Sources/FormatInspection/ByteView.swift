// Reading fixed-layout integers out of untrusted bytes without ever trapping.

/// Bytes read from an image. Fields beyond the end read as zero, like a zero-padded sector, so a
/// truncated header never traps; probes check lengths before they trust a field.
struct ByteView: Sendable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var count: Int { bytes.count }

    subscript(_ index: Int) -> UInt8 {
        index >= 0 && index < bytes.count ? bytes[index] : 0
    }

    func le16(_ at: Int) -> UInt16 { UInt16(self[at]) | UInt16(self[at + 1]) << 8 }
    func le32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(self[at + $1]) << (8 * $1) } }
    func le64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(self[at + $1]) << (8 * $1) } }
    func be16(_ at: Int) -> UInt16 { UInt16(self[at]) << 8 | UInt16(self[at + 1]) }
    func be32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 << 8 | UInt32(self[at + $1]) } }
    func be64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 << 8 | UInt64(self[at + $1]) } }

    /// Whether `prefix` appears at `at`.
    func matches(_ prefix: [UInt8], at: Int = 0) -> Bool {
        at >= 0 && at <= bytes.count - prefix.count && bytes[at..<(at + prefix.count)].elementsEqual(prefix)
    }

    func slice(_ at: Int, _ length: Int) -> ArraySlice<UInt8> {
        let start = min(max(at, 0), bytes.count)
        return bytes[start..<min(bytes.count, start + max(length, 0))]
    }
}

extension Array where Element == UInt8 {
    init(ascii: StaticString) {
        self = Array(UnsafeBufferPointer(start: ascii.utf8Start, count: ascii.utf8CodeUnitCount))
    }
}

/// Checked arithmetic on header values: an overflow is an absurd header, never a trap.
enum Checked {
    /// `value` as a file offset or size, nil when it does not fit.
    static func int64(_ value: UInt64) -> Int64? { Int64(exactly: value) }

    static func multiply(_ a: UInt64, _ b: UInt64) -> UInt64? {
        let (result, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? nil : result
    }

    static func add(_ a: Int64, _ b: Int64) -> Int64? {
        let (result, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : result
    }
}

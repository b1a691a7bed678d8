import StagingTestSupport
import Testing

// Header values that place a table at the end of the 64-bit offset space, fed as they arrive (streaming, the
// file's size unknown): the mount's write path inspected them with an overflowing range end and the daemon
// died on one write. Each must be refused (or wait for bytes that never come), never trap.
@testable import FormatInspection

@Suite("Inspector: offsets at the end of the 64-bit range")
struct InspectorOverflowTests {
    static func put<T: FixedWidthInteger>(_ value: T, bigEndian: Bool = false, at offset: Int, in bytes: inout [UInt8]) {
        withUnsafeBytes(of: bigEndian ? value.bigEndian : value.littleEndian) { bytes.replaceSubrange(offset..<offset + $0.count, with: $0) }
    }

    static var vhdx: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 256 * 1024)
        bytes.replaceSubrange(0..<8, with: Array("vhdxfile".utf8))
        let table = 192 * 1024
        bytes.replaceSubrange(table..<table + 4, with: Array("regi".utf8))
        put(UInt32(1), at: table + 8, in: &bytes)
        bytes.replaceSubrange(table + 16..<table + 32, with: [0x06, 0xA2, 0x7C, 0x8B, 0x90, 0x47, 0x9A, 0x4B, 0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E])
        put(UInt64(0x7FFF_FFFF_FFFF_FF00), at: table + 32, in: &bytes)
        return bytes
    }

    static var vhd: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 4096)
        bytes.replaceSubrange(0..<8, with: Array("conectix".utf8))
        put(UInt32(3), bigEndian: true, at: 60, in: &bytes)
        put(UInt64(0x7FFF_FFFF_FFFF_FF00), bigEndian: true, at: 16, in: &bytes)
        put(UInt64(1 << 20), bigEndian: true, at: 48, in: &bytes)
        return bytes
    }

    static var gpt: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 4096)
        bytes[510] = 0x55
        bytes[511] = 0xAA
        bytes[446 + 4] = 0xEE
        bytes[446 + 2] = 0x02
        put(UInt32(1), at: 446 + 8, in: &bytes)
        put(UInt32(0xFFFF_FFFF), at: 446 + 12, in: &bytes)
        bytes.replaceSubrange(512..<520, with: Array("EFI PART".utf8))
        put(UInt32(92), at: 512 + 12, in: &bytes)
        put(UInt64(1), at: 512 + 24, in: &bytes)
        put(UInt64(Int64.max / 512), at: 512 + 72, in: &bytes)
        put(UInt32(128), at: 512 + 80, in: &bytes)
        put(UInt32(128), at: 512 + 84, in: &bytes)
        return bytes
    }

    @Test("a table placed at 2^63 - 256 is refused, streaming and whole-file", arguments: ["vhdx", "vhd", "gpt"])
    func tableAtTheEnd(kind: String) {
        let bytes = kind == "vhdx" ? Self.vhdx : kind == "vhd" ? Self.vhd : Self.gpt
        // One feed of all the bytes, as one write(2) through the mount delivers them, then the end.
        var inspector = StreamingInspector()
        inspector.feed(bytes[...], at: 0)
        _ = inspector.state
        let streamed = inspector.finish(size: Int64(bytes.count), tail: Array(bytes.suffix(512)))
        let whole = inspectWhole(bytes)
        #expect(whole.refusal != nil, "\(kind): \(whole)")
        if let streamed { #expect(streamed == whole, "\(kind): streaming said \(streamed), whole-file \(whole)") }
    }
}

// Random and mutated headers never trap the inspector, and streaming never disagrees with whole-file mode.
import Foundation
import StagingTestSupport
import Testing

@testable import FormatInspection

@Suite("FormatInspector fuzzing")
struct FormatInspectorFuzzTests {
    /// Small real images (or the parts of them the checks read) to mutate.
    static func seeds() throws -> (ImageWorkspace, [[UInt8]]) {
        let workspace = try ImageWorkspace()
        let iso = isoScript(name: "iso", blocks: 24)
        try iso.write(toFile: workspace.path("iso.py"), atomically: true, encoding: .utf8)
        try workspace.sh(
            """
            qemu-img create -q -f qcow2 qcow2 16M && qemu-img create -q -f qcow2 -o compat=0.10 qcow2v2 16M && \
            qemu-img create -q -f qcow2 -o data_file=qcow2.data qcow2data 16M && \
            qemu-img create -q -f qed qed 16M && qemu-img create -q -f vmdk vmdk 16M && \
            qemu-img create -q -f vmdk -o subformat=streamOptimized stream 16M && \
            qemu-img create -q -f vpc vhd 16M && qemu-img create -q -f vdi vdi 16M && \
            qemu-img create -q -f vmdk -o subformat=monolithicFlat flat 1M && \
            qemu-img create -q -f raw gpt 1M && echo 'start=40, size=100' | sfdisk -q --label gpt gpt && \
            qemu-img create -q -f raw mbr 1M && echo 'start=40, size=100' | sfdisk -q --label dos mbr && \
            qemu-img create -q -f vhdx vhdx 16M && python3 iso.py && \
            head -c 5000 /dev/urandom | gzip -c > gz
            """)
        // The parts of a vhdx its checks read, with the metadata region and the BAT moved next to the region table
        // (and the region table's CRC-32C put right).
        try workspace.python(
            """
            import struct
            d = open('vhdx', 'rb').read()
            r = 192 * 1024
            head = bytearray(d[:256 * 1024])
            for i in range(struct.unpack('<I', d[r + 8:r + 12])[0]):
                e = r + 16 + 32 * i
                offset = struct.unpack('<Q', d[e + 16:e + 24])[0]
                if d[e:e + 4] == bytes.fromhex('06a27c8b'):
                    head[e + 16:e + 24] = struct.pack('<Q', 256 * 1024)
                    meta = d[offset:offset + 128 * 1024]
                if d[e:e + 4] == bytes.fromhex('6677c22d'):
                    head[e + 16:e + 24] = struct.pack('<Q', 384 * 1024)
                    bat = d[offset:offset + struct.unpack('<I', d[e + 24:e + 28])[0]]
            def crc32c(data):
                crc = 0xFFFFFFFF
                for byte in data:
                    crc ^= byte
                    for _ in range(8): crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
                return crc ^ 0xFFFFFFFF
            head[r + 4:r + 8] = bytes(4)
            head[r + 4:r + 8] = struct.pack('<I', crc32c(head[r:r + 64 * 1024]))
            open('vhdx-small', 'wb').write(bytes(head) + meta + bat)
            """)
        // streamOptimized with its grain directory in a footer (qemu-img never writes one), for the footer checks.
        try workspace.python(
            """
            import struct
            d = bytearray(open('stream', 'rb').read())
            footer = bytes(d[:512])
            d[56:64] = struct.pack('<Q', (1 << 64) - 1)
            open('stream-footer', 'wb').write(d + struct.pack('<QII', 1, 0, 3) + bytes(496) + footer + bytes(512))
            """)
        let names = ["qcow2", "qcow2v2", "qcow2data", "qed", "vmdk", "stream", "vhd", "vdi", "flat", "gpt", "mbr", "vhdx-small", "iso", "gz", "stream-footer"]
        return (workspace, try names.map { try workspace.bytes($0) })
    }

    static let extremes: [UInt64] = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x200, 0x1_0000, 0x7FFF_FFFF, 0xFFFF_FFFF, 1 << 32, 1 << 62, .max - 1, .max]

    /// One mutation of `seed`: flipped bytes, extreme or random fields, insertions, deletions, truncation.
    static func mutate(_ seed: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
        var bytes = seed
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            // Most fields live in the first sectors, or at the offsets headers point to.
            let hot = Int.random(in: 0..<4, using: &rng) == 0 ? max(bytes.count, 1) : min(max(bytes.count, 1), 2048)
            let at = Int.random(in: 0..<hot, using: &rng)
            switch Int.random(in: 0..<7, using: &rng) {
            case 0, 1:
                if at < bytes.count { bytes[at] ^= UInt8.random(in: 1...255, using: &rng) }
            case 2:
                let value = extremes.randomElement(using: &rng) ?? 0
                let width = [2, 4, 8].randomElement(using: &rng) ?? 4
                let bigEndian = Bool.random(using: &rng)
                for index in 0..<width where at + index < bytes.count {
                    let shift = 8 * (bigEndian ? width - 1 - index : index)
                    bytes[at + index] = UInt8(truncatingIfNeeded: value >> UInt64(shift))
                }
            case 3:
                let count = Int.random(in: 1...64, using: &rng)
                bytes.insert(contentsOf: (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: min(at, bytes.count))
            case 4:
                let count = min(Int.random(in: 1...64, using: &rng), bytes.count - min(at, bytes.count))
                bytes.removeSubrange(min(at, bytes.count)..<(min(at, bytes.count) + count))
            case 5:
                bytes = Array(bytes.prefix(Int.random(in: 0...max(bytes.count, 1), using: &rng)))
            default:
                // Copy a header from elsewhere in the file (polyglots).
                let from = Int.random(in: 0..<max(bytes.count, 1), using: &rng)
                let length = min(64, bytes.count - from, bytes.count - at)
                if length > 0 { bytes.replaceSubrange(at..<(at + length), with: bytes[from..<(from + length)]) }
            }
        }
        return bytes
    }

    @Test("mutated and random images: no trap, and a streaming verdict always equals whole-file mode's")
    func fuzz() throws {
        let (workspace, seeds) = try Self.seeds()
        _ = workspace
        var rng = SplitMix(state: 0x5EED)
        let deadline = ContinuousClock.now + .seconds(10)
        var cases = 0, streamedVerdicts = 0, refusals = 0
        // At least 1,000 cases however slow the machine is (no timing threshold); more while time is left.
        while (ContinuousClock.now < deadline || cases < 1000) && cases < 20_000 {
            let bytes: [UInt8]
            if Int.random(in: 0..<10, using: &rng) == 0 {
                bytes = (0..<Int.random(in: 0...4096, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = Self.mutate(seeds.randomElement(using: &rng) ?? [], &rng)
            }
            let whole = inspectWhole(bytes)
            if whole.refusal != nil { refusals += 1 }
            let seed = rng.next()
            for shuffled in [false, true] {
                let (inspector, streamed) = inspectStreaming(bytes, maximumChunk: Int.random(in: 1...70_000, using: &rng), shuffled: shuffled, seed: seed)
                _ = inspector.state
                if let streamed {
                    streamedVerdicts += 1
                    #expect(streamed == whole, "seed \(seed), \(bytes.count) bytes, shuffled \(shuffled)")
                }
            }
            cases += 1
        }
        #expect(streamedVerdicts > cases / 2)
        #expect(refusals > 0)
    }

    @Test("streaming stays within its memory limit, and defers to whole-file mode beyond it")
    func memoryLimit() throws {
        let (_, seeds) = try Self.seeds()
        let vhdx = seeds[11]
        var inspector = StreamingInspector(memoryLimit: 4096)
        inspector.feed(vhdx, at: 0)
        #expect(inspector.finish(size: Int64(vhdx.count), tail: Array(vhdx.suffix(512))) == nil)
        #expect(inspectWhole(vhdx).image?.format == .vhdx)
    }
}

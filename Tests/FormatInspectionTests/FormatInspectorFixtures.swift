// Crafted images for the format inspector tests, and streaming inspection (whole-file mode and the image
// workspace are in StagingTestSupport, shared with ImportCore's tests).
import Foundation
import StagingTestSupport
import Testing

@testable import FormatInspection

/// The file cut into random-sized writes, in order or shuffled.
func chunks(of count: Int, maximum: Int, shuffled: Bool, using rng: inout SplitMix) -> [Range<Int>] {
    var ranges: [Range<Int>] = []
    var at = 0
    while at < count {
        let length = Int.random(in: 1...maximum, using: &rng)
        ranges.append(at..<min(count, at + length))
        at += length
    }
    if shuffled { ranges.shuffle(using: &rng) }
    return ranges
}

/// Streaming mode: the file fed as writes, then finished with its tail.
func inspectStreaming(_ bytes: [UInt8], maximumChunk: Int = 200_000, shuffled: Bool = false, seed: UInt64 = 1) -> (StreamingInspector, InspectionVerdict?) {
    var rng = SplitMix(state: seed)
    var inspector = StreamingInspector()
    for range in chunks(of: bytes.count, maximum: maximumChunk, shuffled: shuffled, using: &rng) {
        inspector.feed(bytes[range], at: Int64(range.lowerBound))
    }
    let verdict = inspector.finish(size: Int64(bytes.count), tail: Array(bytes.suffix(512)))
    return (inspector, verdict)
}

extension InspectionVerdict {
    var refusal: InspectionRefusal? {
        if case .refused(let refusal) = self { refusal } else { nil }
    }

    var image: InspectedImage? {
        if case .accepted(let image) = self { image } else { nil }
    }
}

/// Python that writes a minimal ISO 9660 image: 16 system sectors, a primary volume descriptor, a terminator.
func isoScript(name: String, blocks: Int, systemArea: String = "bytes(32768)") -> String {
    """
    import struct
    pvd = bytearray(2048)
    pvd[0] = 1; pvd[1:6] = b'CD001'; pvd[6] = 1
    pvd[80:88] = struct.pack('<I', \(blocks)) + struct.pack('>I', \(blocks))
    pvd[128:132] = struct.pack('<H', 2048) + struct.pack('>H', 2048)
    term = bytearray(2048); term[0] = 255; term[1:6] = b'CD001'; term[6] = 1
    system = bytearray(\(systemArea))[:32768]
    system += bytes(32768 - len(system))
    data = system + pvd + term
    data += bytes(\(blocks) * 2048 - len(data))
    open('\(name)', 'wb').write(data)
    """
}

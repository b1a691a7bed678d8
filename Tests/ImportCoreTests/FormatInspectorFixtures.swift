// Real and crafted images for the format inspector tests, and the two ways of inspecting them.
import Foundation
@testable import ImportCore
import StagingTestSupport
import Testing

/// A temporary directory of images, removed when the test ends.
final class ImageWorkspace {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("inspector-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Runs a command in the workspace (names resolve inside it) and fails the test when it fails. qemu's LUKS
    /// key derivation times itself and gives up on a busy machine ("Unable to get accurate CPU usage"): that
    /// alone is tried again, a few times.
    @discardableResult
    func sh(_ script: String) throws -> String {
        var result = try run(["sh", "-c", "cd '\(directory.path)' && \(script)"])
        for _ in 0..<4 where !result.succeeded && result.stderr.contains("Unable to get accurate CPU usage") {
            result = try run(["sh", "-c", "cd '\(directory.path)' && \(script)"])
        }
        guard result.succeeded else { throw TestSetupError("\(script) failed: \(result)") }
        return result.stdout
    }

    /// Runs python3 with `script`, in the workspace.
    func python(_ script: String) throws {
        let file = path("script-\(UUID().uuidString).py")
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        try sh("python3 '\(file)'")
    }

    func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
    }

    /// What qemu-img says the virtual size is.
    func qemuVirtualSize(_ name: String, format: String? = nil) throws -> Int64 {
        let formatOption = format.map { "-f \($0) " } ?? ""
        let json = try sh("qemu-img info --output=json \(formatOption)'\(name)'")
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        guard let size = (object?["virtual-size"] as? NSNumber)?.int64Value else {
            throw TestSetupError("no virtual-size in \(json)")
        }
        return size
    }
}

/// Whole-file mode over bytes in memory.
func inspectWhole(_ bytes: [UInt8]) -> InspectionVerdict {
    FormatInspector.inspect(size: Int64(bytes.count)) { offset, count in
        let start = Int(min(offset, Int64(bytes.count)))
        return Array(bytes[start..<min(bytes.count, start + count)])
    }
}

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

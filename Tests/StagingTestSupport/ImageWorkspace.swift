// A temporary directory of images made by qemu-img and scripts, and whole-file inspection of bytes in memory.
import FormatInspection
import Foundation

/// A temporary directory of images, removed when the test ends.
public final class ImageWorkspace {
    public let directory: URL

    public init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("inspector-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    public func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Runs a command in the workspace (names resolve inside it) and fails the test when it fails. qemu's LUKS
    /// key derivation times itself with the thread's CPU clock and gives up when that did not move ("Unable to get
    /// accurate CPU usage"), which a loaded machine makes likely: that alone is tried again, up to 20 times, a
    /// moment apart (five immediate tries all failed once in CI).
    @discardableResult
    public func sh(_ script: String) throws -> String {
        var result = try run(["sh", "-c", "cd '\(directory.path)' && \(script)"])
        for _ in 0..<20 where !result.succeeded && result.stderr.contains("Unable to get accurate CPU usage") {
            usleep(200_000)
            result = try run(["sh", "-c", "cd '\(directory.path)' && \(script)"])
        }
        guard result.succeeded else { throw TestSetupError("\(script) failed: \(result)") }
        return result.stdout
    }

    /// Runs python3 with `script`, in the workspace.
    public func python(_ script: String) throws {
        let file = path("script-\(UUID().uuidString).py")
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        try sh("python3 '\(file)'")
    }

    public func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
    }

    /// What qemu-img says the virtual size is.
    public func qemuVirtualSize(_ name: String, format: String? = nil) throws -> Int64 {
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
public func inspectWhole(_ bytes: [UInt8]) -> InspectionVerdict {
    FormatInspector.inspect(size: Int64(bytes.count)) { offset, count in
        let start = Int(min(offset, Int64(bytes.count)))
        return Array(bytes[start..<min(bytes.count, start + count)])
    }
}

// qemu-img, the real tool (Debian's qemu-utils), as the image_conversion plugin runs it.
import CLinux
import Foundation

/// Runs `qemu-img convert` with the source format pinned to what the inspector found, never what qemu guesses.
enum QemuImg {
    /// qemu's driver name for a format the inspector accepted; nil for what qemu-img must not or cannot read
    /// (a LUKS image needs its secret; compressed containers are the decompression plugin's).
    static func driver(for format: ImageFormat) -> String? {
        switch format {
        case .raw, .iso, .gpt, .mbr: return "raw"
        case .vhd: return "vpc"
        case .qcow2, .qed, .vmdk, .vhdx, .vdi: return format.rawValue
        case .luks, .gzip, .zstd, .zip: return nil
        }
    }

    /// Converts `source` (of qemu driver `sourceDriver`) into `target` as `targetDriver`; the error says what qemu-img printed.
    static func convert(source: String, sourceDriver: String, target: String, targetDriver: String) throws(QemuImgError) {
        // Spawned directly (posix_spawn) rather than through Foundation's Process, which keeps descriptors of its own.
        let arguments = ["qemu-img", "convert", "-q", "-f", sourceDriver, "-O", targetDriver, source, target].joined(separator: "\0")
        var message = [CChar](repeating: 0, count: 4096)
        let status = arguments.withCString { text in
            message.withUnsafeMutableBufferPointer { clinux_run(text, arguments.utf8.count, $0.baseAddress, $0.count) }
        }
        let printed = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        switch status {
        case 0: return
        case -ENOENT: throw .notRunnable("qemu-img was not found in PATH")
        case ..<0: throw .notRunnable("spawning it failed with errno \(-status)")
        default: throw .failed(status: status, message: printed)
        }
    }
}

enum QemuImgError: Error, CustomStringConvertible {
    case notRunnable(String)
    case failed(status: Int32, message: String)

    var description: String {
        switch self {
        case let .notRunnable(reason): return "qemu-img could not be run (\(reason)); install qemu-utils"
        case let .failed(status, message): return "qemu-img convert exited with status \(status): \(message)"
        }
    }
}

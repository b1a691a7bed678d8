// qemu-img, the real tool (Debian's qemu-utils), as the import flow runs it: always in QemuSandbox.
import FormatInspection
import Foundation
import SystemPackage

/// Runs qemu-img with the source format pinned to what the inspector found, never what qemu guesses, and the
/// input named by `file.filename` (no filename syntax of qemu's is parsed from anything).
enum QemuImg {
    /// qemu's driver name for a format the inspector accepted; nil for what qemu-img must not or cannot read
    /// (a LUKS image needs its secret; compressed containers are the decompression plugin's).
    static func driver(for format: ImageFormat) -> String? {
        switch format {
        case .raw, .iso, .gpt, .mbr: return "raw"
        case .vhd: return "vpc"
        case .qcow2, .qed, .vmdk, .vhdx, .vdi: return format.rawValue
        case .luks, .gzip, .zstd, .zip, .xz, .bzip2, .lzma: return nil
        }
    }

    /// `--image-opts` for the sandbox's input read as `driver`.
    static func inputOptions(driver: String) -> String {
        "driver=\(driver),file.driver=file,file.filename=\(QemuSandbox.inputPath)"
    }

    /// Converts `input` (of qemu driver `sourceDriver`) into `output` as `targetDriver`; no file it writes may grow
    /// past `maxOutputBytes`.
    static func convert(
        _ input: FileDescriptor, sourceDriver: String, into output: FileDescriptor, targetDriver: String,
        maxOutputBytes: Int64, sandbox: QemuSandbox
    ) throws(SandboxError) {
        _ = try sandbox.run(
            ["/usr/bin/qemu-img", "convert", "-q", "--image-opts", inputOptions(driver: sourceDriver), "-O", targetDriver, QemuSandbox.outputPath],
            input: input, output: output, maxFileBytes: maxOutputBytes)
    }
}

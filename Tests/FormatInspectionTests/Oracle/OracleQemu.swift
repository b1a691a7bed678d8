// qemu-img itself as the inspector's oracle: `qemu-img info --output=json --backing-chain` of an accepted image,
// run in the import's sandbox under strace, must agree with the verdict and open nothing but the image.
import Foundation
import StagingTestSupport
import SystemPackage

@testable import FormatInspection
@testable import ImportCore

enum QemuOracle {
    static let sandbox = QemuSandbox(configuration: SandboxConfiguration())

    /// What qemu made of one image.
    struct Answer {
        /// Nil when qemu-img failed (its message is in `failure`).
        var info: [[String: Any]]?
        var failure: String?
        /// Opens and execs of paths outside `allowedPaths`, and any connect: each one a disagreement.
        var foreignAccess: [String]
    }

    /// Paths qemu-img may open besides its input, whatever the image says:
    /// - the dynamic loader's cache and preload list, and the shared libraries (and qemu's own block modules, under
    ///   /usr/lib/x86_64-linux-gnu/qemu) it maps from /lib, /lib64 and /usr/lib: code of the host's, not the image's;
    /// - /proc and /sys, which glib, libnuma and liburing probe at start (the sandbox has neither: they fail);
    /// - /dev/null and /dev/urandom, which qemu opens for its standard streams and for random seeds;
    /// - locale data under /usr/share/locale and /usr/lib/locale (gettext).
    static let allowedPrefixes = ["/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/proc/", "/sys/", "/usr/share/locale/"]
    static let allowedPaths: Set<String> = [QemuSandbox.inputPath, "/etc/ld.so.cache", "/etc/ld.so.preload", "/dev/null", "/dev/urandom"]

    static let traced = "open,openat,openat2,creat,execve,connect"

    /// The driver qemu-img info reads `format` with: the import's, and luks, which the import never runs qemu on (it
    /// cannot convert without the secret) but whose header qemu-img info reads without it, decrypting nothing.
    static func driver(for format: ImageFormat) -> String? {
        format == .luks ? "luks" : QemuImg.driver(for: format)
    }

    /// Runs the traced `qemu-img info` of `bytes` read as `driver`, from a root-only file in `scratch`.
    static func info(_ bytes: [UInt8], driver: String, scratch: String) throws -> Answer {
        let input = scratch + "/case", trace = scratch + "/trace"
        try? FileManager.default.removeItem(atPath: input)
        try? FileManager.default.removeItem(atPath: trace)
        try Data(bytes).write(to: URL(fileURLWithPath: input))
        chmod(input, 0o600)
        let inputFile = try FileDescriptor.open(input, .readOnly)
        defer { try? inputFile.close() }
        let traceFile = try FileDescriptor.open(trace, .readWrite, options: .create, permissions: [.ownerReadWrite])
        defer { try? traceFile.close() }
        let command = [
            "/usr/bin/strace", "-f", "-qq", "-s", "4096", "-e", "trace=\(traced)", "-o", QemuSandbox.outputPath,
            "/usr/bin/qemu-img", "info", "--output=json", "--backing-chain", "--image-opts", QemuImg.inputOptions(driver: driver),
        ]
        var answer = Answer(info: nil, failure: nil, foreignAccess: [])
        let printed: String
        do throws(SandboxError) {
            printed = try sandbox.run(command, input: inputFile, output: traceFile, maxFileBytes: 16 << 20)
        } catch {
            guard case .failed = error else { throw error }
            printed = ""
            answer.failure = "\(error)"
        }
        if answer.failure == nil {
            // qemu prints warnings (a bad vpc checksum) before the JSON, on the same stream.
            let json = printed.hasPrefix("[") ? printed : printed.range(of: "\n[").map { String(printed[printed.index(after: $0.lowerBound)...]) } ?? printed
            answer.info = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]]
            if answer.info == nil { answer.failure = "unparsable output: \(printed.prefix(300))" }
        }
        let lines = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n")
        guard lines.contains(where: { $0.contains("execve(\"/usr/bin/qemu-img\"") }) else {
            throw TestSetupError("strace traced nothing inside the sandbox: \(lines.prefix(5))")
        }
        answer.foreignAccess = lines.compactMap { foreign(String($0)) }
        return answer
    }

    /// The trace line when it is an access the allow-list does not cover.
    static func foreign(_ line: String) -> String? {
        if line.contains(" connect(") { return line }
        guard let call = line.range(of: #"(open|openat|openat2|creat|execve)\("#, options: .regularExpression),
            let path = line[call.upperBound...].range(of: #""[^"]*""#, options: .regularExpression)
        else { return nil }
        let name = String(line[path].dropFirst().dropLast())
        if line[call].hasPrefix("execve") { return name == "/usr/bin/qemu-img" ? nil : line }
        if allowedPaths.contains(name) || allowedPrefixes.contains(where: { name.hasPrefix($0) }) { return nil }
        return line
    }

    /// Every way `answer` disagrees with the inspector having accepted `image`; empty when qemu agrees. A failure of
    /// qemu to open the image is one (metadata that lies is to be refused), and so are a failure that names a backing
    /// or data file and a trace that shows another path.
    static func disagreements(_ answer: Answer, image: InspectedImage, driver: String) -> [String] {
        var problems = answer.foreignAccess.map { "qemu-img reached another path: \($0)" }
        guard let info = answer.info else {
            let failure = answer.failure ?? ""
            problems.append("qemu-img could not open an image the inspector accepted: \(failure)")
            let opened = failure.components(separatedBy: "Could not open '").dropFirst()
                .contains { !$0.hasPrefix(QemuSandbox.inputPath + "'") && !$0.hasPrefix(QemuImg.inputOptions(driver: driver) + "'") }
            if opened || failure.lowercased().contains("backing") || failure.lowercased().contains("data file") {
                problems.append("qemu-img looked for another file: \(failure)")
            }
            return problems
        }
        guard info.count == 1, let top = info.first else {
            return problems + ["qemu-img found a backing chain of \(info.count) images"]
        }
        if top["format"] as? String != driver { problems.append("qemu-img read it as \(top["format"] ?? "nothing"), not \(driver)") }
        let size = (top["virtual-size"] as? NSNumber)?.int64Value
        if size != image.virtualSize { problems.append("virtual size: inspector \(image.virtualSize), qemu-img \(size.map(String.init) ?? "none")") }
        for key in ["backing-filename", "full-backing-filename", "backing-filename-format"] where top[key] != nil {
            problems.append("qemu-img found \(key) \(top[key]!)")
        }
        if top["filename"] as? String != QemuSandbox.inputPath { problems.append("qemu-img names the image \(top["filename"] ?? "nothing")") }
        let specific = (top["format-specific"] as? [String: Any])?["data"] as? [String: Any] ?? [:]
        for key in ["data-file", "data-file-raw"] where specific[key] != nil {
            problems.append("qemu-img found \(key) \(specific[key]!)")
        }
        for extent in specific["extents"] as? [[String: Any]] ?? [] where extent["filename"] as? String != QemuSandbox.inputPath {
            problems.append("qemu-img found an extent in \(extent["filename"] ?? "nothing")")
        }
        return problems
    }
}

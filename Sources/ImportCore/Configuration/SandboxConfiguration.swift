// How qemu-img is confined: the account it runs as and the limits it runs under ([stagingfs] qemu_img_*).
import Foundation

public struct SandboxConfiguration: Sendable, Equatable {
    /// `[stagingfs] qemu_img_user`: the unprivileged account qemu-img runs as; never root.
    public var user = "stagingfs-qemu"
    /// `[stagingfs] qemu_img_timeout`: wall-clock seconds (and CPU seconds) one qemu-img run may take.
    public var timeoutSeconds = 3600
    /// `[stagingfs] qemu_img_address_space`: the address-space limit of one qemu-img run, in bytes.
    public var addressSpace: Int64 = 2 << 30

    public init() {}

    init(_ reader: OptionReader) throws(ConfigurationError) {
        user = try reader.value("stagingfs", "qemu_img_user", default: user, expected: "the name of an unprivileged account (not root)") {
            !$0.isEmpty && $0 != "root" && !$0.contains(where: { $0 == ":" || $0.isWhitespace }) ? $0 : nil
        }
        timeoutSeconds = try reader.value(
            "stagingfs", "qemu_img_timeout", default: timeoutSeconds,
            expected: "a whole number of seconds from 1 to 86400"
        ) { Int($0).flatMap { (1...86_400).contains($0) ? $0 : nil } }
        addressSpace = try reader.value(
            "stagingfs", "qemu_img_address_space", default: addressSpace,
            expected: "a size of at least 256M (qemu-img cannot start with less), e.g. 2G"
        ) {
            OptionReader.parseSize($0).flatMap { $0 >= 256 << 20 ? $0 : nil }
        }
    }
}

// Real disk images for tests, made by qemu-img (Debian's qemu-utils), the tool that makes them in production.
import Foundation

/// Runs qemu-img; a failure is a set-up error that says what qemu-img printed.
public func qemuImg(_ arguments: [String]) throws {
    let result = try run(["qemu-img"] + arguments)
    guard result.succeeded else { throw TestSetupError("qemu-img \(arguments.joined(separator: " ")) failed (is qemu-utils installed?): \(result)") }
}

/// A qcow2 image at `path` holding `rawBytes` random bytes of data (so that its size and hash differ from the raw's),
/// with the raw source beside it at `path.raw`. Returns the raw source's path.
@discardableResult
public func makeQcow2(_ path: String, rawBytes: Int, options: [String] = []) throws -> String {
    let raw = path + ".raw"
    try makeRandomFile(raw, bytes: rawBytes)
    try qemuImg(["convert", "-f", "raw", "-O", "qcow2"] + options + [raw, path])
    return raw
}

/// A qcow2 image that names `backing` as its backing file: the image Glance's CVEs were about.
public func makeQcow2WithBackingFile(_ path: String, backing: String) throws {
    try qemuImg(["create", "-f", "qcow2", "-b", backing, "-F", "raw", path])
}

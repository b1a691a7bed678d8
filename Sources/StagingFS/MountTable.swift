// Finds what is mounted at a path, so a crashed run's stale FUSE mount can be cleaned before mounting again.
import Foundation
import SystemPackage

/// One line of /proc/self/mountinfo.
struct MountEntry: Equatable {
    var mountpoint: String
    var filesystemType: String
    var source: String
}

enum MountTable {
    /// Every mount whose mountpoint is `path` (an absolute, normalized path).
    static func entries(at path: String, mountinfo: String? = nil) -> [MountEntry] {
        let text = mountinfo ?? ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
        return text.split(separator: "\n").compactMap { line -> MountEntry? in
            let halves = line.components(separatedBy: " - ")
            guard halves.count >= 2 else { return nil }
            let fields = halves[0].split(separator: " ")
            let tail = halves[1].split(separator: " ")
            guard fields.count >= 5, tail.count >= 2 else { return nil }
            let entry = MountEntry(mountpoint: unescape(String(fields[4])), filesystemType: String(tail[0]), source: unescape(String(tail[1])))
            return entry.mountpoint == path ? entry : nil
        }
    }

    /// mountinfo escapes space, tab, newline and backslash as octal (\040…).
    static func unescape(_ text: String) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "\\"), utf8.count >= 3, let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

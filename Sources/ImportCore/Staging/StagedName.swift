// Staged files' names, and the namespaces they live in.
//
// A project's free-named files (`disk.img`, rsync's `.disk.img.XyZ`) live in a namespace of that project's own,
// so that a name another project holds is not merely hidden but absent: every answer (stat, an exclusive
// create, a no-replace rename) is the one a name nobody holds gets. Names Glance gives meaning to — `<image_id>`
// and its intermediates `<image_id>.<ext>` — are shared by every caller and bound to the image's owner instead
// (StagingAccessPolicy.swift); the service user's names are the shared ones too.
import Foundation

/// A staged file's name as a caller wrote it (one path component, valid UTF-8, at most 255 bytes, no control
/// characters, any normalisation form: names are bytes, as on disk), and the namespace it is in.
public struct StagedName: Sendable, Hashable, CustomStringConvertible {
    /// The file's key in the records, the catalog, the open-file table and the backing directory: the name itself
    /// for a shared name, `.projects/<project>/<name>` for a project's free-named file.
    public let value: String
    /// The name as its caller sees it in the mount.
    public let shown: String

    public static let maximumLength = 255
    /// The backing directory's subdirectory that holds the projects' namespaces. It cannot be a shared file's
    /// name (creating one is refused), and a project's file of that name is inside its own namespace.
    public static let projectsDirectory = ".projects"

    /// Validates a name as the kernel passed it (raw bytes, no NUL): a shared name until `placed(inProject:)`.
    public init(bytes: some Collection<UInt8>) throws(StagingError) {
        guard bytes.count <= Self.maximumLength else { throw .nameTooLong(length: bytes.count) }
        guard !bytes.isEmpty else { throw .invalidName(reason: "the name is empty") }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .invalidName(reason: "the name is not valid UTF-8")
        }
        guard text != ".", text != ".." else { throw .invalidName(reason: "'\(text)' cannot name a staged file") }
        if let bad = bytes.first(where: { $0 == UInt8(ascii: "/") || $0 < 0x20 || $0 == 0x7f }) {
            throw .invalidName(reason: bad == UInt8(ascii: "/") ? "the name contains '/'" : "the name contains a control character (byte \(bad))")
        }
        value = text
        shown = text
    }

    public init(_ text: String) throws(StagingError) {
        try self.init(bytes: Array(text.utf8))
    }

    private init(value: String, shown: String) {
        self.value = value
        self.shown = shown
    }

    /// The name a file's key (`value`, as records and the backing directory hold it) stands for.
    public init(key: String) throws(StagingError) {
        let parts = key.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].elementsEqual(Self.projectsDirectory.utf8), !parts[1].isEmpty else {
            try self.init(bytes: Array(key.utf8))
            return
        }
        let name = try StagedName(bytes: parts[2])
        self.init(value: key, shown: name.shown)
    }

    /// The same name in `project`'s own namespace.
    public func placed(inProject project: String) -> StagedName {
        StagedName(value: "\(Self.projectsDirectory)/\(Self.directoryName(ofProject: project))/\(shown)", shown: shown)
    }

    /// Whether the name is in a project's own namespace.
    public var isInProjectNamespace: Bool { value.utf8.count != shown.utf8.count }

    /// Whether the name is in the namespace whose directory is `directory` (`directoryName(ofProject:)`).
    func isInNamespace(_ directory: String?) -> Bool {
        guard let directory else { return false }
        return value.utf8.starts(with: "\(Self.projectsDirectory)/\(directory)/".utf8)
    }

    /// A project id as one directory name: bytes outside `[A-Za-z0-9_-]` (and a leading `.`) become `%XX`, so two
    /// ids never share a directory and none is `.` or `..`.
    static func directoryName(ofProject project: String) -> String {
        var encoded = ""
        for byte in project.utf8 {
            let plain =
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || (byte == UInt8(ascii: ".") && !encoded.isEmpty)
            encoded += plain ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
        }
        return encoded.isEmpty ? "%" : encoded
    }

    public var description: String { value }

    // Byte for byte, as the kernel compares names (NameTable.swift says why not String's equality).
    public static func == (lhs: StagedName, rhs: StagedName) -> Bool { ExactText(lhs.value) == ExactText(rhs.value) }

    public func hash(into hasher: inout Hasher) { ExactText(value).hash(into: &hasher) }
}

// A staged file's record: who owns it, what state it is in, and what its bytes hash to.
import FormatInspection
import Foundation

/// The life of a staged file (DESIGN.md, "A staged file's life").
public enum StagedFileState: String, Sendable, Codable, CaseIterable {
    /// Open for writing by at least one writer.
    case writing
    /// The last writer closed: size and hashes are recorded.
    case staged
    /// Its bytes cannot be trusted whole: a write failed, or the daemon stopped while it was being written.
    /// It must be re-staged (rewritten) before it can be imported.
    case incomplete
    /// An import is promoting it into the image store.
    case importing
}

/// What StagingFS records about one file of the staging area.
public struct StagedFile: Sendable, Equatable {
    public var name: String
    public var state: StagedFileState
    /// The project that owns the file; nil for the service (glance) user's own files.
    public var projectID: String?
    public var userID: String?
    public var ownerUID: UInt32
    public var ownerGID: UInt32
    public var size: Int64
    /// Glance's `os_hash_algo` / `os_hash_value` and `checksum` (md5); nil until sealed with hashing on.
    public var hashAlgorithm: DigestAlgorithm
    public var hashValue: String?
    public var checksum: String?
    /// Why the file is `incomplete`, or another note for the operator.
    public var message: String?
    public var createdAt: Date
    public var updatedAt: Date
    /// The backing file's modification time (ns) when it was sealed: with `sealedInode` and `size`, the identity
    /// of the bytes the hashes are of (see `isBound(to:)`).
    public var sealedModification: Int64?
    /// The backing file's inode when it was sealed.
    public var sealedInode: UInt64?
    /// What the format inspector found when the file was sealed (nil: not inspected, or refused: `message` says why).
    public var inspection: InspectedImage?
    /// The node that last opened it for writing (several nodes share one catalog).
    public var writerNode: String?

    public init(
        name: String, state: StagedFileState, projectID: String?, userID: String?, ownerUID: UInt32, ownerGID: UInt32,
        size: Int64 = 0, hashAlgorithm: DigestAlgorithm, hashValue: String? = nil, checksum: String? = nil,
        message: String? = nil, createdAt: Date = Date(), updatedAt: Date = Date(), sealedModification: Int64? = nil,
        sealedInode: UInt64? = nil, inspection: InspectedImage? = nil, writerNode: String? = nil
    ) {
        self.name = name
        self.state = state
        self.projectID = projectID
        self.userID = userID
        self.ownerUID = ownerUID
        self.ownerGID = ownerGID
        self.size = size
        self.hashAlgorithm = hashAlgorithm
        self.hashValue = hashValue
        self.checksum = checksum
        self.message = message
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.sealedModification = sealedModification
        self.sealedInode = sealedInode
        self.inspection = inspection
        self.writerNode = writerNode
    }
}

extension StagedFile {
    /// Binds the record to the bytes just hashed: the backing file's inode, size and modification time (ns).
    mutating func bind(to attributes: BackingAttributes) {
        sealedInode = attributes.inode
        sealedModification = attributes.modificationNanoseconds
        size = attributes.size
    }

    /// Whether the file is still the one whose bytes were hashed. Writes through StagingFS start a new write
    /// generation (the record says `writing` first); anything else that changes the bytes (a crash between a
    /// write and its record, a hand in the backing directory, another node) changes size or mtime.
    func isBound(to attributes: BackingAttributes) -> Bool { change(since: attributes) == nil }

    /// Whether an image owned by `owner` may take these bytes: the service user's (glance-api's) or the
    /// owner's own project's, compared as bytes. Staged data binds to the project that wrote it.
    public func mayBeImported(byOwner owner: String?) -> Bool {
        projectID == nil || ExactText.same(projectID, owner)
    }

    /// What differs between the file the record hashed and the file there now (nil while bound).
    func change(since attributes: BackingAttributes) -> String? {
        if sealedInode == nil || sealedModification == nil { return "its record binds no file identity (sealed before StagingFS recorded one)" }
        if sealedInode != attributes.inode { return "replaced by another file after it was sealed" }
        if size != attributes.size { return "size \(size) when sealed, \(attributes.size) now" }
        if sealedModification != attributes.modificationNanoseconds { return "modified after it was sealed" }
        return nil
    }

    /// The record as far as it can be trusted for the file as it is now: `staged` only while bound to it
    /// (docs/architecture.md, invariant 1); otherwise `incomplete`, saying why.
    func trusted(against attributes: BackingAttributes) -> StagedFile {
        guard state == .staged, let change = change(since: attributes) else { return self }
        var file = self
        file.state = .incomplete
        file.hashValue = nil
        file.checksum = nil
        file.inspection = nil
        file.message = "its bytes are not the ones hashed (\(change)); write it again before importing it"
        return file
    }
}

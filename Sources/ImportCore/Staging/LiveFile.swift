// An open staged file: the write state its handles share, and one handle.
import FormatInspection
import Foundation
import Logging
import Synchronization
import SystemPackage

/// The write state one open file's handles share.
final class LiveFile: Sendable {
    struct State {
        var name: String
        var handles = 0
        var writers = 0
        /// Written or truncated since the last seal.
        var dirty = false
        var digest: DigestStream?
        /// Bytes fed to `digest`, in order from offset 0.
        var hashedUpTo: Int64 = 0
        /// A write or truncate broke the sequence: the digests must be recomputed from the file at seal.
        var stale = false
        /// The size accounted in the project's quota.
        var size: Int64
        /// Why a write of this writing session failed; the file then seals `incomplete`.
        var failure: String?
        /// Bytes written since writeback was last started.
        var unwrittenBack: Int64 = 0
        var unlinked = false
        /// The format inspector this writing session feeds (nil with `inspect_on_write` off).
        var inspector: StreamingInspector?
        /// The image's declared format, when the file is an image's data.
        var expectation: FormatExpectation?
        /// Set when the inspector refused the bytes: later writes of the session are refused too.
        var refusal: InspectionRefusal?
        /// The catalog durably says `writing` for the current write generation. A generation begins with the
        /// first write, truncate or open for writing after a seal; seal ends it. No byte of a generation is
        /// acknowledged before its record is durable (docs/architecture.md, invariant 2).
        var writingRecorded = false
        /// Counts generations, so that a seal records `staged` only if no generation began while it hashed.
        var generation: UInt64 = 0
        /// An import holds the file: writes and truncates through earlier handles get EBUSY.
        var held = false
        /// The file went into the image store (or was replaced by a daemon's intermediate): handles opened before
        /// no longer refer to a staged file; reads get ESTALE, writes EBUSY.
        var detached = false
        /// Removed while open: its bytes stay charged to its project until the last handle closes.
        var chargedUntilLastClose = false

        /// Bytes were (or may be) written since the last seal: a write generation is running.
        var isBeingWritten: Bool { writingRecorded || dirty }
        /// No handle may write the file: an import holds it, or it is no longer a staged file.
        var refusesWrites: Bool { held || detached }
    }

    let state: Mutex<State>

    init(name: String, size: Int64) {
        state = Mutex(State(name: name, size: size))
    }
}

/// An open staged file. The FUSE layer keeps it in its handle table; the API layer will use it the same way.
public final class StagedFileHandle: Sendable {
    public let descriptor: FileDescriptor
    public let readable: Bool
    public let writable: Bool
    let live: LiveFile
    let project: String?
    /// The owner its file had when it was opened (owners never change): its name may be another file's since.
    public let ownerUID: UInt32
    public let ownerGID: UInt32

    init(descriptor: FileDescriptor, readable: Bool, writable: Bool, live: LiveFile, owner file: StagedFile) {
        self.descriptor = descriptor
        self.readable = readable
        self.writable = writable
        self.live = live
        project = file.projectID
        ownerUID = file.ownerUID
        ownerGID = file.ownerGID
    }

    public var name: String { live.state.withLock { $0.name } }

    /// The file this handle was opened on went into the image store: it must not be read through the handle.
    public var isDetached: Bool { live.state.withLock { $0.detached } }
}

/// How a caller opens a staged file.
public struct OpenRequest: Sendable {
    public var read: Bool
    public var write: Bool
    public var truncate: Bool
    public var sync: Bool

    public init(read: Bool, write: Bool, truncate: Bool = false, sync: Bool = false) {
        self.read = read
        self.write = write
        self.truncate = truncate
        self.sync = sync
    }
}

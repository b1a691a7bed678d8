// Where staged-file records persist, behind one protocol so another database can be added without touching callers.

/// Persistent staged-file records. Implementations must be safe to call from any thread.
public protocol StagedFileCatalog: Sendable {
    /// Whether other daemons change these records too (several nodes over one catalog): a node then reads a
    /// record again before it uses one of a file it does not hold open. A catalog only this daemon writes (a
    /// SQLite file, which the daemon locks for itself) is never behind its in-memory records.
    var isShared: Bool { get }
    func allStagedFiles() throws -> [StagedFile]
    func stagedFile(named name: String) throws -> StagedFile?
    /// Inserts or replaces the record with `file.name`.
    func save(_ file: StagedFile) throws
    /// Saves `file` only if the stored record meets `condition`, in one transaction (the row locked while it is
    /// checked): check-then-act across the nodes that share the catalog. Returns whether it saved.
    func save(_ file: StagedFile, if condition: StagedFileCondition) throws -> Bool
    func removeStagedFile(named name: String) throws
    /// Moves a record to a new name, replacing any record already there.
    func renameStagedFile(from source: String, to target: String) throws
}

extension StagedFileCatalog {
    /// Shared unless the catalog says otherwise: reading again is never wrong, only slower.
    public var isShared: Bool { true }
}

/// What the stored record must be for a conditional save.
public enum StagedFileCondition: Sendable {
    /// No record, or one in another state (a write generation may begin unless an import holds the file).
    case stateIsNot(StagedFileState)
    /// The record as this node last read it: same state, size, hashes and bound identity (an import holds only
    /// the file it checked).
    case unchangedSince(StagedFile)

    public func holds(for stored: StagedFile?) -> Bool {
        switch self {
        case let .stateIsNot(state):
            return stored?.state != state
        case let .unchangedSince(expected):
            guard let stored else { return false }
            return stored.state == expected.state && stored.size == expected.size && stored.hashValue == expected.hashValue
                && stored.checksum == expected.checksum && stored.sealedInode == expected.sealedInode
                && stored.sealedModification == expected.sealedModification
        }
    }
}

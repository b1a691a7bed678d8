// Where staged-file records persist, behind one protocol so another database can be added without touching callers.

/// Persistent staged-file records. Implementations must be safe to call from any thread.
public protocol StagedFileCatalog: Sendable {
    func allStagedFiles() throws -> [StagedFile]
    func stagedFile(named name: String) throws -> StagedFile?
    /// Inserts or replaces the record with `file.name`.
    func save(_ file: StagedFile) throws
    func removeStagedFile(named name: String) throws
    /// Moves a record to a new name, replacing any record already there.
    func renameStagedFile(from source: String, to target: String) throws
}

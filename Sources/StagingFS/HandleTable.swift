// Open files and directories by the 64-bit handle the kernel hands back to us.
import ImportCore
import Synchronization

/// A snapshot of the entries a caller may see, taken at opendir so that readdir offsets stay stable.
public struct DirectorySnapshot: Sendable {
    public struct Entry: Sendable {
        /// The name the caller sees.
        public var name: String
        /// The staged file's key (`StagedName.value`); nil for "." and "..".
        public var key: String? = nil
        public var attributes: NodeAttributes
    }

    public var entries: [Entry]
}

/// Handle numbers for open files and directories; 0 is never used.
final class HandleTable: Sendable {
    enum Entry: Sendable {
        /// An open file and the inode the kernel opened it as.
        case file(StagedFileHandle, ino: UInt64)
        case directory(DirectorySnapshot)
    }

    private let state = Mutex<(entries: [UInt64: Entry], next: UInt64)>(([:], 1))

    func add(_ entry: Entry) -> UInt64 {
        state.withLock { state in
            let id = state.next
            state.next += 1
            state.entries[id] = entry
            return id
        }
    }

    func file(_ id: UInt64) -> StagedFileHandle? {
        state.withLock { if case let .file(handle, _) = $0.entries[id] { return handle } else { return nil } }
    }

    /// An open file handle on inode `ino`, if any.
    func file(onInode ino: UInt64) -> StagedFileHandle? {
        state.withLock { state in
            for entry in state.entries.values { if case let .file(handle, opened) = entry, opened == ino { return handle } }
            return nil
        }
    }

    /// The inodes that open handles were detached from (see `StagedFileHandle.isDetached`).
    func detachedInodes() -> Set<UInt64> {
        state.withLock { state in
            Set(
                state.entries.values.compactMap { entry in
                    if case let .file(handle, ino) = entry, handle.isDetached { return ino } else { return nil }
                })
        }
    }

    func directory(_ id: UInt64) -> DirectorySnapshot? {
        state.withLock { if case let .directory(snapshot) = $0.entries[id] { return snapshot } else { return nil } }
    }

    func remove(_ id: UInt64) -> Entry? {
        state.withLock { $0.entries.removeValue(forKey: id) }
    }
}

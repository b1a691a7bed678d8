// Open files and directories by the 64-bit handle the kernel hands back to us.
import ImportCore
import Synchronization

/// A snapshot of the entries a caller may see, taken at opendir so that readdir offsets stay stable.
public struct DirectorySnapshot: Sendable {
    public var entries: [(name: String, attributes: NodeAttributes)]
}

/// Handle numbers for open files and directories; 0 is never used.
final class HandleTable: Sendable {
    enum Entry: Sendable {
        case file(StagedFileHandle)
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
        state.withLock { if case let .file(handle) = $0.entries[id] { return handle } else { return nil } }
    }

    func directory(_ id: UInt64) -> DirectorySnapshot? {
        state.withLock { if case let .directory(snapshot) = $0.entries[id] { return snapshot } else { return nil } }
    }

    func remove(_ id: UInt64) -> Entry? {
        state.withLock { $0.entries.removeValue(forKey: id) }
    }
}

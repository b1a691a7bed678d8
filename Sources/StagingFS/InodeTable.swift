// The one inode table: FUSE inode numbers for backing files, with the kernel's lookup counts.
import Synchronization

/// Maps FUSE inode numbers to backing files. `remember` (lookup, create, readdirplus) adds a reference,
/// `forget` is the only place references go down, and a node is freed at zero. The root is pinned.
final class InodeTable: Sendable {
    static let root: UInt64 = 1

    struct Node: Equatable {
        var name: String
        var backingInode: UInt64
        var lookups: UInt64
    }

    private struct State {
        var nodes: [UInt64: Node] = [:]
        var byBackingInode: [UInt64: UInt64] = [:]
        var next: UInt64 = 2
    }

    private let state = Mutex(State())

    /// Returns the inode number for the backing file, adding one kernel reference.
    func remember(name: String, backingInode: UInt64) -> UInt64 {
        state.withLock { state in
            if let ino = state.byBackingInode[backingInode] {
                state.nodes[ino]!.lookups += 1
                state.nodes[ino]!.name = name
                return ino
            }
            let ino = state.next
            state.next += 1
            state.nodes[ino] = Node(name: name, backingInode: backingInode, lookups: 1)
            state.byBackingInode[backingInode] = ino
            return ino
        }
    }

    func node(_ ino: UInt64) -> Node? {
        state.withLock { $0.nodes[ino] }
    }

    /// Drops `count` kernel references; the node is freed at zero.
    func forget(_ ino: UInt64, count: UInt64) {
        guard ino != Self.root else { return }
        state.withLock { state in
            guard var node = state.nodes[ino] else { return }
            assert(node.lookups >= count, "the kernel forgot more references than it had")
            node.lookups -= min(count, node.lookups)
            if node.lookups == 0 {
                state.nodes[ino] = nil
                if state.byBackingInode[node.backingInode] == ino { state.byBackingInode[node.backingInode] = nil }
            } else {
                state.nodes[ino] = node
            }
        }
    }

    /// A rename inside the mount: the node keeps its number under its new name.
    func renamed(backingInode: UInt64, to name: String) {
        state.withLock { state in
            if let ino = state.byBackingInode[backingInode] { state.nodes[ino]?.name = name }
        }
    }

    var count: Int { state.withLock { $0.nodes.count } }
}

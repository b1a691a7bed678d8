// A SQLite catalog belongs to one daemon: its records in memory are then the catalog's (no lookup reads the
// file again), which holds only while no other daemon writes the same file. That is made so, not assumed.
import Foundation

/// An exclusive lock on `<catalog>.lock`, held until `release()` at shutdown (the kernel drops it when the
/// process ends, however it ends). A second daemon on the same catalog refuses to start.
final class CatalogLock: Sendable {
    private let descriptor: Int32

    enum Failure: Error, CustomStringConvertible {
        case heldByAnother(path: String)
        case cannotOpen(path: String, reason: String)

        var description: String {
            switch self {
            case let .heldByAnother(path):
                return "the catalog is in use by another stagingfs (\(path) is locked): a SQLite catalog belongs to one daemon; "
                    + "stop the other one, give this one its own state_dir, or share a catalog between nodes with [database] connection = postgresql://…"
            case let .cannotOpen(path, reason):
                return "cannot open the catalog's lock file \(path): \(reason); check that the state directory is writable"
            }
        }
    }

    init(catalogPath: String) throws(Failure) {
        let path = catalogPath + ".lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let error = errno
            close(fd)
            if error == EWOULDBLOCK { throw .heldByAnother(path: path) }
            throw .cannotOpen(path: path, reason: String(cString: strerror(error)))
        }
        descriptor = fd
    }

    /// After the catalog is closed.
    func release() {
        close(descriptor)
    }
}

// Why an import failed, in words an operator can act on (Glance says only "Task failed due to Internal Error").

/// A failed import step. The description becomes the task's message.
public enum ImportFailure: Error, Equatable, CustomStringConvertible {
    case noStagedData(imageID: String)
    case stagedDataNotReady(imageID: String, state: String, reason: String?)
    case stagedDataChanged(imageID: String, what: String)
    case stagedByAnotherProject(imageID: String, writer: String, owner: String?)
    case storeFailed(path: String, reason: String)
    case verificationFailed(imageID: String, expected: String, actual: String)
    case lockLost(imageID: String, taskID: String, holder: String?)
    case interrupted(taskID: String)
    /// The node running it stopped heartbeating; another node reverted it.
    case takenOver(taskID: String, from: String, by: String)
    case catalog(reason: String)
    /// The format inspector refused the data (unsafe, or not the image's disk_format).
    case refusedByInspector(imageID: String, reason: String)
    case pluginFailed(plugin: ImportPlugin, imageID: String, reason: String)
    case downloadFailed(uri: String, reason: String)
    /// Another node took the task over (this node's lease ran out): this node stops and changes nothing more.
    case leaseLost(taskID: String, node: String)

    public var description: String {
        switch self {
        case let .noStagedData(id):
            return "no staged data for image \(id): stage the image data again (importctl stage, or copy it into the staging mount as \(id))"
        case let .stagedDataNotReady(id, state, reason):
            return "the staged data of image \(id) is \(state)\(reason.map { " (\($0))" } ?? ""): stage it again before importing"
        case let .stagedDataChanged(id, what):
            return "the staged data of image \(id) changed after it was staged (\(what)): stage it again before importing"
        case let .stagedByAnotherProject(id, writer, owner):
            return
                "the staged data of image \(id) was written by project \(writer), not by the image's owner (\(owner ?? "the service")); it is not imported: remove it and stage the image's own data"
        case let .storeFailed(path, reason):
            return "could not write the image into the store at \(path): \(reason); check filesystem_store_datadir (space, permissions) and import again"
        case let .verificationFailed(id, expected, actual):
            return
                "the copy of image \(id) in the store does not match the staged data (expected \(expected.prefix(16))…, read \(actual.prefix(16))…); nothing was kept, import again"
        case let .lockLost(id, task, holder):
            return "import task \(task) lost the lock on image \(id) (now held by \(holder ?? "nobody")); nothing was changed"
        case let .interrupted(task):
            return "import task \(task) was interrupted by a restart of the daemon and reverted; import again"
        case let .takenOver(task, from, by):
            return "node \(from) stopped (its lease ran out) while running import task \(task); node \(by) reverted it; import again"
        case let .catalog(reason):
            return "the catalog database failed: \(reason)"
        case let .refusedByInspector(id, reason):
            return
                "image \(id): \(reason). Nothing was stored and the staged data is kept for inspection; stage a safe image of the declared disk_format and import again"
        case let .leaseLost(task, node):
            return "node \(node) lost its lease on import task \(task) to another node, which finishes or reverts it"
        case let .downloadFailed(uri, reason):
            return "web-download of \(uri) failed: \(reason). Nothing was kept; the image is queued again"
        case let .pluginFailed(plugin, id, reason):
            return "the \(plugin.rawValue) plugin failed on image \(id): \(reason); nothing was stored, the staged data is kept"
        }
    }
}

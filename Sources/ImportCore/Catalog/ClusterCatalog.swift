// What several stagingfs nodes over one staging area share through the catalog: who is alive, and which node
// holds which import task (a lease it renews), so that each import runs on exactly one node.
import Foundation

/// One stagingfs daemon of a shared staging area.
public struct NodeRecord: Sendable, Equatable {
    /// `[stagingfs] node_id`: stable across restarts of the same node.
    public var id: String
    public var host: String
    public var mountpoint: String
    public var startedAt: Date
    public var heartbeatAt: Date

    public init(id: String, host: String, mountpoint: String, startedAt: Date = Date(), heartbeatAt: Date = Date()) {
        self.id = id
        self.host = host
        self.mountpoint = mountpoint
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
    }
}

/// A node's hold on a task: valid while `holder` and `epoch` are still the task's. Every claim increments the
/// epoch, so a node that lost its lease (it stalled, another node took the task over) can no longer change the image.
public struct TaskLease: Sendable, Equatable {
    public var taskID: String
    public var holder: String
    public var epoch: Int

    public init(taskID: String, holder: String, epoch: Int) {
        self.taskID = taskID
        self.holder = holder
        self.epoch = epoch
    }
}

/// Nodes and task leases. Every method is one transaction.
public protocol ClusterCatalog: Sendable {
    /// Records the node (inserting or replacing it) with its heartbeat.
    func register(_ node: NodeRecord) throws
    /// The node is alive: its heartbeat is `now`, and the leases it holds on unfinished tasks run until
    /// `leaseUntil`. Returns the ids of the tasks it holds.
    @discardableResult
    func heartbeat(node: String, now: Date, leaseUntil: Date) throws -> [String]
    func nodes() throws -> [NodeRecord]
    func removeNode(_ id: String) throws
    /// Claims a `pending` or `processing` task for `node` when no other node holds a live lease on it
    /// (its lease ended before `now`, or it has none). Returns the task with its new lease, or nil.
    func claim(taskID: String, node: String, now: Date, leaseUntil: Date) throws -> ImportTask?
    /// Unfinished tasks nobody holds a live lease on at `now`.
    func claimableTasks(now: Date) throws -> [ImportTask]
    /// As `ImageCatalog.updateImage`, but only while `lease` still holds its task, checked in the same transaction;
    /// otherwise throws `CatalogError.leaseLost`.
    @discardableResult
    func updateImage(_ id: String, holding lease: TaskLease, _ change: (inout Image) throws -> Void) throws -> Image
}

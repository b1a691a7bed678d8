// Several nodes, one catalog: each node heartbeats and renews the leases of the tasks it runs; a task whose
// lease ran out (its node died or stalled) is claimed by another node, which finishes or reverts it.
import CLinux
import Foundation

/// A node as `importctl node-list` shows it.
public struct NodeStatus: Sendable, Equatable {
    public var record: NodeRecord
    /// Heartbeating: its last heartbeat is at most two lease periods old.
    public var isUp: Bool
    /// Unfinished import tasks it holds.
    public var tasks: [String]
}

extension ImportController {
    /// Registers this node, takes back the tasks it held before a restart (still leased to it, but nothing runs
    /// them now), and starts the lease keeper.
    func startNode() {
        let now = Date()
        bestEffort("register this node; other nodes may take its tasks over until its first heartbeat", ["node.id": "\(node)"]) {
            try catalog.register(
                NodeRecord(
                    id: node, host: ProcessInfo.processInfo.hostName,
                    mountpoint: configuration.mountpoint ?? configuration.backingDirectory, startedAt: now, heartbeatAt: now))
        }
        let own =
            bestEffort("list this node's tasks to take them back after a restart", ["node.id": "\(node)"]) {
                try catalog.tasks(status: .processing) + catalog.tasks(status: .pending)
            } ?? []
        claimAndRun(own.filter { $0.leaseHolder == node }, now: now)
        keepLeases()
        let thread = Thread { [self] in
            clinux_name_thread("lease-keeper")
            while !stopping.load(ordering: .relaxed) {
                Thread.sleep(forTimeInterval: leaseDuration / 3)
                if !stopping.load(ordering: .relaxed) { keepLeases() }
            }
        }
        thread.start()
    }

    /// One round: heartbeat (renewing this node's leases), claim what nobody holds, and mark files that stopped
    /// nodes were writing `incomplete`. Runs every third of a lease period, so a dead node's task is taken over
    /// within two lease periods of its last heartbeat.
    func keepLeases() {
        let now = Date()
        bestEffort("heartbeat; this node's leases run out unless the next one succeeds", ["node.id": "\(node)"]) {
            _ = try catalog.heartbeat(node: node, now: now, leaseUntil: now.addingTimeInterval(leaseDuration))
        }
        claimAndRun(bestEffort("list claimable tasks", ["node.id": "\(node)"]) { try catalog.claimableTasks(now: now) } ?? [], now: now)
        let nodes = bestEffort("list nodes to find stopped writers", ["node.id": "\(node)"]) { try catalog.nodes() } ?? []
        let dead = Set(nodes.filter { $0.id != node && !isUp($0, now: now) }.map(\.id))
        staging.abandonWrites(ofNodes: dead)
    }

    private func claimAndRun(_ tasks: [ImportTask], now: Date) {
        for task in tasks where !running.withLock({ $0.contains(task.id) }) {
            let claim = bestEffort("claim an import task", ["task.id": "\(task.id)", "image.id": "\(task.imageID)", "node.id": "\(node)"]) {
                try catalog.claim(taskID: task.id, node: node, now: now, leaseUntil: now.addingTimeInterval(leaseDuration))
            }
            guard let claimed = claim ?? nil, let lease = claimed.lease else { continue }
            logger.notice(
                "claimed import task",
                metadata: [
                    "task.id": "\(task.id)", "image.id": "\(task.imageID)", "task.status": "\(claimed.status.rawValue)",
                    "lease.previous_holder": "\(task.leaseHolder ?? "none")", "lease.epoch": "\(lease.epoch)",
                ])
            if claimed.status == .pending {
                schedule(lease, imageID: claimed.imageID)
            } else {
                takeOver(claimed, lease, from: task.leaseHolder)
            }
        }
    }

    /// A task that was running on a node that stopped (or on this node before a restart): recorded as done if it
    /// had activated its image, otherwise reverted: nothing in the store, the staged data back, the image `queued`.
    private func takeOver(_ task: ImportTask, _ lease: TaskLease, from previous: String?) {
        let id = task.imageID
        let action = ImportAction(imageID: id, lease: lease, catalog: catalog, logger: logger)
        let ttl = configuration.imports.taskTimeToLive
        let image = bestEffort("read the image of a task taken over", ["task.id": "\(task.id)", "image.id": "\(id)"]) { try catalog.image(id) } ?? nil
        // A plugin's output, or a copy, left the staged data in place; a renamed promotion took it away.
        let stagedPresent = staging.backingFileExists(id)
        staging.removeIntermediates(ofImage: id)
        do { try staging.reclaimFromSandbox(id) } catch {
            logger.error("interrupted import left its staged data lent to qemu-img's sandbox", metadata: ["image.id": "\(id)", "error": "\(error)"])
        }
        if let image, image.status == .active, image.importTask == nil, store.contains(id) {
            staging.finishImport(id, promotion: stagedPresent ? .copied : .renamed)
            action.finish(.success, message: "", result: ["image_id": id, "os_hash_value": image.osHashValue ?? ""], timeToLive: ttl)
            logger.notice("import had finished before its node stopped; recorded", metadata: ["task.id": "\(task.id)", "image.id": "\(id)"])
            return
        }
        if store.contains(id), image?.status != .active, image?.importTask == task.id {
            staging.withdraw(id, from: store, promotion: stagedPresent ? .copied : .renamed, promoted: nil)
        }
        store.removePartial(".\(id).partial")
        staging.endImport(id)
        action.releaseLock()
        let failure: ImportFailure =
            previous == nil || previous == node
            ? .interrupted(taskID: task.id) : .takenOver(taskID: task.id, from: previous ?? "?", by: node)
        action.finish(.failure, message: failure.description, result: nil, timeToLive: ttl)
        logger.warning(
            "interrupted import reverted", metadata: ["task.id": "\(task.id)", "image.id": "\(id)", "lease.previous_holder": "\(previous ?? "none")"])
    }

    /// Whether another node, alive, holds the import of `imageID` (its store files are then not this node's to remove).
    func heldElsewhere(imageID: String) -> Bool {
        guard let holder = (try? catalog.image(imageID))??.importTask, let task = (try? catalog.task(holder)) ?? nil,
            let owner = task.leaseHolder, owner != node, let expiry = task.leaseExpiresAt
        else { return false }
        return expiry > Date()
    }

    func isUp(_ record: NodeRecord, now: Date) -> Bool {
        now.timeIntervalSince(record.heartbeatAt) <= 2 * leaseDuration
    }

    /// `importctl node-list`: admins only (it shows the deployment).
    public func nodes(for caller: CallerIdentity) throws(ImageError) -> [NodeStatus] {
        try authorize("tasks_api_access", caller, ["project_id": caller.projectID ?? ""])
        let now = Date()
        let unfinished = try catalogCall { try catalog.tasks(status: .processing) + catalog.tasks(status: .pending) }
        return try catalogCall { try catalog.nodes() }.map { record in
            NodeStatus(
                record: record, isUp: isUp(record, now: now),
                tasks: unfinished.filter { $0.leaseHolder == record.id && ($0.leaseExpiresAt ?? .distantPast) > now }.map(\.id))
        }
    }
}

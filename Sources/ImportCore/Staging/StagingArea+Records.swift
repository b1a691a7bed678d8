// Records as the shared catalog has them: refresh, other nodes' abandoned writes, usage.
import Foundation
import Logging
import Synchronization
import SystemPackage

extension StagingArea {

    /// The record of a file, as the catalog has it now.
    public func stagedFile(named name: String) -> StagedFile? {
        refresh(name)
        return namespace.withLock { $0.records[name] }
    }

    /// Several nodes share the catalog: a file this node does not have open may have been written, sealed or
    /// imported through another node since this node last looked, so its record is read again. (Files this node
    /// has open are this node's to record.) A catalog that cannot be read leaves the record as it was, said.
    /// A catalog only this daemon writes is never newer than the records in memory: nothing is read.
    func refresh(_ name: String) {
        guard catalog.isShared, namespace.withLock({ $0.live[name] == nil }) else { return }
        let stored: StagedFile?
        do { stored = try catalog.stagedFile(named: name) } catch {
            logger.error(
                "cannot read a record from the shared catalog; using the one this node last read",
                metadata: [
                    "staging.file": "\(name)", "error": "\(error)",
                ])
            return
        }
        namespace.withLock { ns in
            guard ns.live[name] == nil else { return }
            ns.records[name] = stored
        }
    }

    /// `refresh` for every record at once (a directory listing).
    func refreshAll() {
        guard catalog.isShared else { return }
        let stored: [StagedFile]
        do { stored = try catalog.allStagedFiles() } catch {
            logger.error("cannot read the records from the shared catalog; listing those this node last read", metadata: ["error": "\(error)"])
            return
        }
        var byName = NameTable<StagedFile>()
        for file in stored { byName[file.name] = file }
        namespace.withLock { ns in
            for name in ns.records.names + byName.names where ns.live[name] == nil { ns.records[name] = byName[name] }
        }
    }

    /// Files other nodes were writing when they stopped heartbeating become `incomplete`, as this node's own do
    /// when it restarts: their bytes cannot be trusted whole.
    public func abandonWrites(ofNodes nodes: Set<String>) {
        guard !nodes.isEmpty else { return }
        let stored: [StagedFile]
        do { stored = try catalog.allStagedFiles() } catch {
            logger.error(
                "cannot read the records to find files stopped nodes were writing; the next round tries again",
                metadata: [
                    "node.stopped": "\(nodes.sorted())", "error": "\(error)",
                ])
            return
        }
        for var file in stored where file.state == .writing && nodes.contains(file.writerNode ?? "") {
            file.state = .incomplete
            file.hashValue = nil
            file.checksum = nil
            file.message = "node \(file.writerNode ?? "?") stopped while this file was being written through it; write it again"
            file.updatedAt = Date()
            do { try catalog.save(file) } catch {
                logger.error("could not record a file of a stopped node as incomplete", metadata: ["staging.file": "\(file.name)", "error": "\(error)"])
            }
            namespace.withLock { ns in if ns.live[file.name] == nil { ns.records[file.name] = file } }
            logger.warning(
                "file was being written by a node that stopped; marked incomplete",
                metadata: [
                    "staging.file": "\(file.name)", "node.id": "\(file.writerNode ?? "?")",
                ])
        }
    }

    public func usage(ofProject project: String) -> (bytes: Int64, files: Int) {
        let usage = ledger.usage(of: project)
        return (usage.bytes, usage.files)
    }

    /// Free-named files a project staged before names had namespaces (StagedName.swift) sat among the shared
    /// names: each moves into its project's namespace, file first and then its record, so that a start after a
    /// crash between the two finds the file moved and moves the record.
    static func moveIntoProjectNamespaces(backing: any BackingStore, catalog: any StagedFileCatalog, logger: Logger) throws {
        for file in try catalog.allStagedFiles() {
            guard let project = file.projectID, file.state != .importing, ProjectOwnershipPolicy.imageIDPrefix(of: file.name) == nil,
                let name = try? StagedName(key: file.name), !name.isInProjectNamespace
            else { continue }
            let placed = name.placed(inProject: project)
            do {
                try backing.rename(file.name, to: placed.value, replace: false)
            } catch .noSuchFileOrDirectory {
                guard (try? backing.attributes(of: placed.value)) != nil else { continue }  // gone: recovery drops the record
            } catch {
                logger.error(
                    "could not move a project's free-named file into its namespace; the service user alone sees it",
                    metadata: [
                        "staging.file": "\(file.name)", "staging.target": "\(placed)", "error": "\(error)",
                    ])
                continue
            }
            try catalog.renameStagedFile(from: file.name, to: placed.value)
            logger.notice(
                "moved a project's free-named file into its namespace",
                metadata: [
                    "staging.file": "\(file.name)", "staging.target": "\(placed)", "project.id": "\(project)",
                ])
        }
    }
}

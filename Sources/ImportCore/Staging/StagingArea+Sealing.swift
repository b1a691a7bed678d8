// Sealing: the last writer's close records the bytes, hashed and bound to the file's identity.
import FormatInspection
import Foundation
import Logging
import Synchronization
import SystemPackage

extension StagingArea {
    /// close(2) of one descriptor: when it is the file's only writer, the file is sealed now, so that
    /// `cp` returning means the file is staged with its hashes.
    public func flush(_ handle: StagedFileHandle) {
        guard handle.writable, handle.live.state.withLock({ $0.writers == 1 }) else { return }
        seal(handle)
    }

    /// The last reference to a handle is gone: seal when the last writer leaves, and forget the file when nobody has it open.
    public func release(_ handle: StagedFileHandle) {
        let lastWriter = handle.live.state.withLock { state -> Bool in
            if handle.writable { state.writers -= 1 }
            return handle.writable && state.writers == 0
        }
        if lastWriter {
            seal(handle)
            handle.live.state.withLock { state in
                if state.writers == 0 {
                    state.digest?.cancel()
                    state.digest = nil
                }
            }
        }
        let freed = namespace.withLock { ns in
            handle.live.state.withLock { state -> Int64 in
                state.handles -= 1
                if state.handles == 0, ns.live[state.name] === handle.live { ns.live[state.name] = nil }
                guard state.handles == 0, state.chargedUntilLastClose else { return 0 }
                state.chargedUntilLastClose = false
                return state.size
            }
        }
        release(freed, for: handle.project)
        try? handle.descriptor.close()
    }

    /// Records the file as `staged` (or `incomplete`) with its size and digests, bound to the backing file's
    /// identity. The seal ends the write generation: a write that arrives while it hashes begins a new one
    /// (its `writing` record is made before its bytes land), and then this seal records nothing.
    func seal(_ handle: StagedFileHandle) {
        typealias Session = (digest: DigestStream?, stale: Bool, hashedUpTo: Int64, failure: String?, inspector: StreamingInspector?, generation: UInt64)
        guard
            let session = handle.live.state.withLock({ state -> Session? in
                // A generation may have begun without a byte (a second writer's open after a seal): it ends too.
                guard state.isBeingWritten, !state.unlinked else { return nil }
                state.dirty = false
                state.writingRecorded = false
                // The stream stays: finishing digests a copy of its state, so writes through a descriptor that is
                // still open (dd closes a dup of its output before writing) keep hashing in sequence.
                return (state.digest, state.stale, state.hashedUpTo, state.failure, state.inspector, state.generation)
            })
        else { return }
        var failure = session.failure
        // `staged` promises that these bytes are there after a crash too: an import renames them into the store
        // without reading them again. Writeback started while writing, so this is mostly already done.
        do { try backing.sync(handle.descriptor, dataOnly: false) } catch {
            failure = failure ?? "the bytes could not be made durable (fsync: \(error))"
        }
        let identity: BackingAttributes
        do { identity = try backing.attributes(of: handle.descriptor) } catch {
            logger.error(
                "could not stat a file to seal it; it stays as recorded (writing), and is incomplete after a restart",
                metadata: [
                    "staging.file": "\(handle.name)", "error": "\(error)",
                ])
            return
        }
        let size = identity.size
        var hashes: [DigestAlgorithm: String] = [:]
        var message: String?
        var state = StagedFileState.staged
        if let failure {
            state = .incomplete
            message = "a write failed (\(failure)); the bytes before it are intact, but write the file again before importing it"
        } else if configuration.hashOnWrite {
            if let digest = session.digest, !session.stale, session.hashedUpTo == size {
                hashes = digest.finish()
            } else {
                do {
                    hashes = try digests.digest(upTo: size) { (offset, count) throws(Errno) in try backing.read(handle.descriptor, at: offset, count: count) }
                } catch {
                    state = .incomplete
                    message = "the file could not be read back to hash it: \(error)"
                }
            }
        } else {
            message = "hash_on_write is off: hashes are computed at import"
        }
        var inspection: InspectedImage?
        if state == .staged, let inspector = session.inspector {
            switch inspectSealed(handle.descriptor, inspector, size: size) {
            case let .accepted(image): inspection = image
            case let .refused(refusal): message = "refused by the format inspector: \(refusal.reason)"
            }
        }
        let file = namespace.withLock { ns -> StagedFile? in
            handle.live.state.withLock { live -> StagedFile? in
                // A newer generation began while this seal hashed: its record (`writing`) stands.
                guard live.generation == session.generation, !live.unlinked, ns.live[live.name] === handle.live,
                    var file = ns.records[live.name]
                else { return nil }
                file.state = state
                file.hashValue = hashes[configuration.hashingAlgorithm]
                file.checksum = hashes[.md5]
                file.message = message
                file.updatedAt = Date()
                file.bind(to: identity)
                file.inspection = inspection
                do { try catalog.save(file) } catch {
                    // The durable record still says `writing` (incomplete after a restart): say the same now.
                    logger.error(
                        "could not record a sealed file in the catalog; it is incomplete",
                        metadata: [
                            "staging.file": "\(file.name)", "error": "\(error)",
                        ])
                    file.state = .incomplete
                    file.hashValue = nil
                    file.checksum = nil
                    file.message = "its seal could not be recorded in the catalog (\(error)); write it again before importing it"
                }
                ns.records[live.name] = file
                return file
            }
        }
        guard let file else { return }
        for observer in sealObservers.withLock({ $0 }) { observer(file) }
        logger.info(
            "sealed",
            metadata: [
                "staging.file": "\(file.name)", "staging.state": "\(file.state.rawValue)", "staging.size": "\(file.size)",
                "staging.rehashed": "\(session.stale || session.hashedUpTo != size)", "image.os_hash_value": "\(file.hashValue ?? "-")",
            ])
    }

    /// The sealed file's format: the streaming inspector's verdict when it kept every region its checks need,
    /// otherwise whole-file inspection (a few small reads). An unreadable file is refused as such.
    func inspectSealed(_ descriptor: FileDescriptor, _ inspector: StreamingInspector, size: Int64) -> InspectionVerdict {
        let tailStart = max(0, size - 512)
        if let tail = try? backing.read(descriptor, at: tailStart, count: Int(size - tailStart)),
            let verdict = inspector.finish(size: size, tail: [UInt8](tail))
        {
            return verdict
        }
        return inspect(descriptor, size: size)
    }

    /// Whole-file inspection of an open backing file.
    func inspect(_ descriptor: FileDescriptor, size: Int64) -> InspectionVerdict {
        do {
            return try FormatInspector.inspect(size: size, options: configuration.imports.imageFormat) { offset, count in
                [UInt8](try backing.read(descriptor, at: offset, count: count))
            }
        } catch {
            return .refused(InspectionRefusal(format: nil, reason: "the file could not be read to inspect it: \(error)"))
        }
    }

    /// Tells the write path which format an image's data must have (the import controller knows the images).
    public func expectFormats(_ provider: @escaping @Sendable (String) -> FormatExpectation?) {
        formatExpectations.withLock { $0 = provider }
    }
}

// The write path: quota, backing write, digests and inspection, one durable `writing` record per generation.
import FormatInspection
import Foundation
import Logging
import Synchronization
import SystemPackage

extension StagingArea {
    // MARK: - The write path

    /// Writes `data` at `offset`: quota and reserve first, then the backing file, then (when it continues the
    /// sequence) hands the same buffer to the digest lanes. Nothing acknowledged is ever undone.
    public func write(_ handle: StagedFileHandle, _ data: Data, at offset: Int64) throws(StagingError) -> Int {
        try write(handle, count: data.count, at: offset, digestible: data) { () throws(Errno) in
            try backing.write(handle.descriptor, data, at: offset)
        }
    }

    /// Writes `count` bytes that `transfer` moves into the backing file itself (the FUSE layer splices them from
    /// the kernel when nothing needs to see them: with `hash_on_write = false`). Same rules as `write(_:_:at:)`;
    /// with digests running, such a write breaks the sequence and the digests are recomputed at seal.
    public func write(
        _ handle: StagedFileHandle, count: Int, at offset: Int64,
        transfer: (FileDescriptor) throws(Errno) -> Void
    ) throws(StagingError) -> Int {
        try write(handle, count: count, at: offset, digestible: nil) { () throws(Errno) in try transfer(handle.descriptor) }
    }

    func write(
        _ handle: StagedFileHandle, count: Int, at offset: Int64, digestible data: Data?,
        perform: () throws(Errno) -> Void
    ) throws(StagingError) -> Int {
        guard handle.writable else { throw .badHandle(reason: "the file was not opened for writing") }
        let (end, overflow) = offset.addingReportingOverflow(Int64(count))
        guard offset >= 0, !overflow else { throw .fileTooLarge(reason: "a write of \(count) bytes at offset \(offset) ends past the largest offset") }
        return try inWriteGeneration(handle) { (state: inout LiveFile.State) throws(StagingError) -> Int in
            if let refusal = state.refusal { throw .formatRefused(name: state.name, reason: refusal.reason) }
            state.dirty = true
            let growth = max(0, end - state.size)
            if growth > 0 {
                do {
                    try checkSizeCap(end)
                    try reserve(growth, for: handle.project)
                } catch let error as StagingError {
                    state.failure = state.failure ?? error.description
                    throw error
                } catch {}
            }
            do {
                try perform()
            } catch let error as Errno {
                let actual = (try? backing.attributes(of: handle.descriptor).size) ?? state.size
                release(growth - max(0, actual - state.size), for: handle.project)
                state.size = max(state.size, actual)
                state.stale = true
                state.failure = state.failure ?? "writing at offset \(offset) failed: \(error)"
                throw .system(error, context: "write \(state.name)")
            } catch {}
            state.size = max(state.size, end)
            state.unwrittenBack += Int64(count)
            if state.unwrittenBack >= Self.writebackInterval {
                backing.startWriteback(handle.descriptor, offset: max(0, end - state.unwrittenBack), count: state.unwrittenBack)
                state.unwrittenBack = 0
            }
            if let digest = state.digest, let data, !state.stale, offset == state.hashedUpTo {
                digest.feed(data)
                state.hashedUpTo = end
            } else if state.digest != nil, !state.stale {
                state.stale = true
                logger.debug(
                    "write out of sequence; digests will be recomputed at seal",
                    metadata: [
                        "staging.file": "\(state.name)", "write.offset": "\(offset)", "staging.hashed_up_to": "\(state.hashedUpTo)",
                    ])
            }
            if state.inspector != nil { try inspect(&state, data, at: offset, count: count, descriptor: handle.descriptor) }
            return count
        }
    }

    /// Feeds the written bytes the format inspector still needs (read back from the file when they were spliced)
    /// and refuses the write as soon as they prove the image unsafe or not its declared format. The bytes stay.
    func inspect(
        _ state: inout LiveFile.State, _ data: Data?, at offset: Int64, count: Int,
        descriptor: FileDescriptor
    ) throws(StagingError) {
        // The inspector sees every write it can (it tracks how far the file has grown, and copies only what its
        // checks want); spliced bytes are read back only when wanted. Its verdict is worked out again only after
        // a write it wanted: the other writes cannot change it.
        let wanted = state.inspector?.wants(offset: offset, count: count) == true
        if let data {
            state.inspector?.feed(data, at: offset)
        } else if wanted, let bytes = try? backing.read(descriptor, at: offset, count: count) {
            state.inspector?.feed(bytes, at: offset)
        }
        guard wanted else { return }
        let refusal: InspectionRefusal?
        switch state.inspector?.state {
        case let .refused(unsafe)?: refusal = unsafe
        case let .detected(image)? where FormatExpectation.isDefinite(image): refusal = state.expectation?.mismatch(image)
        default: refusal = nil
        }
        guard let refusal else { return }
        state.refusal = refusal
        state.failure = state.failure ?? "refused by the format inspector: \(refusal.reason)"
        logger.warning(
            "write refused by the format inspector",
            metadata: [
                "staging.file": "\(state.name)", "write.offset": "\(offset)", "inspection.reason": "\(refusal.reason)",
            ])
        throw .formatRefused(name: state.name, reason: refusal.reason)
    }

    /// Writeback is started every this many bytes, so that storage works while the bytes still arrive and the
    /// writer's fsync at the end finds little left to do.
    static let writebackInterval: Int64 = 8 << 20

    func reserve(_ bytes: Int64, for project: String?) throws(StagingError) {
        if configuration.freeSpaceReserve > 0 {
            let available = (try? backing.filesystemStats().bytesAvailable) ?? Int64.max
            // `available - bytes` without a trap: a write of any size against any free space.
            let (left, overflow) = available.subtractingReportingOverflow(bytes)
            if overflow || left < configuration.freeSpaceReserve {
                throw .noSpace(
                    reason: "the backing filesystem must keep \(configuration.freeSpaceReserve) bytes free (free_space_reserve); \(available) are free")
            }
        }
        if let project { try ledger.reserve(bytes: bytes, for: project) }
    }

    /// Glance holds staged data to image_size_cap too (413 on a stage that passes it).
    func checkSizeCap(_ size: Int64) throws(StagingError) {
        let cap = configuration.imports.imageSizeCap
        if size > cap { throw .sizeCapExceeded(size: size, cap: cap) }
    }

    func release(_ bytes: Int64, for project: String?) {
        if let project, bytes > 0 { ledger.release(bytes: bytes, for: project) }
    }

    /// Runs `body` on the file's write state within a write generation: when none is running (the first write
    /// or truncate after a seal), the durable `writing` record is made first, under the namespace lock, and the
    /// state is checked again, since a seal may have ended the generation in between. Refused (EBUSY) while an
    /// import holds the file.
    func inWriteGeneration<T>(_ handle: StagedFileHandle, _ body: (inout LiveFile.State) throws(StagingError) -> T) throws(StagingError) -> T {
        while true {
            let result = try handle.live.state.withLock { (state: inout LiveFile.State) throws(StagingError) -> T? in
                if state.refusesWrites {
                    logger.notice(
                        "refused a write through a handle opened before an import took the file",
                        metadata: [
                            "staging.file": "\(state.name)", "errno": "EBUSY", "staging.imported": "\(state.detached)",
                        ])
                    throw .busy(name: state.name)
                }
                guard state.writingRecorded else { return nil }
                return try body(&state)
            }
            if let result { return result }
            try namespace.withLock { (ns: inout Namespace) throws(StagingError) in try markWriting(handle.live, in: &ns) }
        }
    }

    /// Truncates through a handle (ftruncate).
    public func truncate(_ handle: StagedFileHandle, to size: Int64) throws(StagingError) {
        guard handle.writable else { throw .badHandle(reason: "the file was not opened for writing") }
        try inWriteGeneration(handle) { (state: inout LiveFile.State) throws(StagingError) in try resize(&state, handle, to: size) }
    }

    /// Changes the file's size, within a write generation (the caller holds the file's write state).
    func resize(_ state: inout LiveFile.State, _ handle: StagedFileHandle, to size: Int64) throws(StagingError) {
        // Both sizes ≥ 0 below, so `growth` and `-growth` cannot overflow.
        guard size >= 0 else { throw .system(.invalidArgument, context: "truncate \(state.name) to \(size) bytes: a size cannot be negative") }
        if size > state.size { try checkSizeCap(size) }
        let growth = size - state.size
        if growth > 0 { try reserve(growth, for: handle.project) }
        do { try backing.truncate(handle.descriptor, to: size) } catch {
            release(growth, for: handle.project)
            throw .system(error, context: "truncate \(state.name)")
        }
        if growth < 0 { release(-growth, for: handle.project) }
        state.size = size
        state.dirty = true
        if size == 0, state.digest != nil || configuration.hashOnWrite {
            state.digest?.cancel()
            state.digest = configuration.hashOnWrite ? digests.makeStream() : nil
            state.hashedUpTo = 0
            state.stale = false
        } else if size != state.hashedUpTo {
            state.stale = true
        }
    }

    /// Truncates by name (truncate(2) without an open handle).
    public func truncate(_ name: StagedName, to size: Int64, caller: Caller) throws(StagingError) {
        let handle = try open(name, request: OpenRequest(read: false, write: true), caller: caller)
        defer { release(handle) }
        try truncate(handle, to: size)
    }

    public func sync(_ handle: StagedFileHandle, dataOnly: Bool) throws(StagingError) {
        do { try backing.sync(handle.descriptor, dataOnly: dataOnly) } catch { throw .system(error, context: "fsync \(handle.name)") }
    }
}

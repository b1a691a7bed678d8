// The FUSE session's life: clean a stale mount, mount, serve with worker threads, unmount. Unwound in reverse.
import CFuse
import CLinux
import Foundation
import ImportCore
import Logging
import Synchronization
import SystemPackage

/// Why the mount could not be made or served.
public enum MountError: Error, CustomStringConvertible {
    case mountpointUnusable(path: String, reason: String)
    case alreadyMounted(path: String, filesystemType: String)
    case staleMountNotCleaned(path: String, reason: String)
    case sessionFailed(reason: String)

    public var description: String {
        switch self {
        case let .mountpointUnusable(path, reason):
            return "mountpoint \(path) cannot be used: \(reason)"
        case let .alreadyMounted(path, type):
            return "\(path) is already mounted (\(type)) and answering: stop the stagingfs serving it, or choose another mountpoint"
        case let .staleMountNotCleaned(path, reason):
            return "a stale mount is left at \(path) and could not be removed (\(reason)); run 'fusermount3 -u -z \(path)' as its owner or root"
        case let .sessionFailed(reason):
            return "FUSE session failed: \(reason) (is /dev/fuse present and fuse3 installed?)"
        }
    }
}

/// A mounted staging filesystem. `run()` serves until `stop()` or an external unmount.
public final class FuseMount: Sendable {
    public let mountpoint: String
    let context: FuseContext
    let threads: Int
    let logger: Logger
    private let session = Mutex<SessionBox?>(nil)
    /// Written once to wake every worker out of poll(2) when the daemon is told to stop.
    private let wakeup: (read: FileDescriptor, write: FileDescriptor)

    private struct SessionBox: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    public init(fileSystem: StagingFileSystem, mountpoint: String, threads: Int, logger: Logger) throws(MountError) {
        self.mountpoint = FilePath(mountpoint).lexicallyNormalized().string
        self.threads = max(1, threads)
        self.logger = logger
        // One buffer per worker, plus what the digest lanes may hold queued.
        let bufferSize = Int(FuseOperations.maxWrite) + 4096
        self.context = FuseContext(fileSystem: fileSystem, pool: BufferPool(count: self.threads + 12, bufferSize: bufferSize))
        do {
            let pipe = try FileDescriptor.pipe()
            wakeup = (pipe.readEnd, pipe.writeEnd)
        } catch {
            throw .sessionFailed(reason: "cannot create a pipe: \(error)")
        }
    }

    deinit {
        try? wakeup.read.close()
        try? wakeup.write.close()
    }

    /// Removes a mount left at the mountpoint by a daemon that died (its connection answers ENOTCONN).
    /// A live mount is left alone and reported.
    public static func cleanStaleMount(at path: String, logger: Logger) throws(MountError) {
        let normalized = FilePath(path).lexicallyNormalized().string
        for entry in MountTable.entries(at: normalized) {
            // statvfs always reaches the filesystem (stat may be answered from the kernel's attribute cache):
            // ENOTCONN means the daemon behind this mount is gone.
            var stats = statvfs()
            if statvfs(normalized, &stats) == 0 || errno != ENOTCONN {
                throw .alreadyMounted(path: normalized, filesystemType: entry.filesystemType)
            }
            logger.warning(
                "cleaning a stale mount left by a previous run", metadata: ["mount.point": "\(normalized)", "mount.type": "\(entry.filesystemType)"])
            if geteuid() == 0 {
                guard umount2(normalized, Int32(MNT_DETACH)) == 0 else {
                    throw .staleMountNotCleaned(path: normalized, reason: String(cString: strerror(errno)))
                }
            } else {
                let unmount = ChildProcess.run(["fusermount3", "-u", "-z", normalized], timeoutSeconds: 30)
                guard unmount.outcome == .finished(status: 0) else {
                    throw .staleMountNotCleaned(path: normalized, reason: "fusermount3 -u -z: \(unmount.outcome) \(unmount.output)")
                }
            }
        }
    }

    /// Mounts and serves requests until stopped or unmounted from outside. `whenServing` runs once the workers
    /// are reading requests: the moment to tell whoever waits for the mount (the service manager's READY=1).
    public func run(whenServing: () -> Void = {}) throws(MountError) {
        try Self.cleanStaleMount(at: mountpoint, logger: logger)
        let status: Stat
        do {
            status = try Stat(FilePath(mountpoint))
        } catch {
            throw .mountpointUnusable(path: mountpoint, reason: "\(error); create the directory first")
        }
        guard status.type == .directory else { throw .mountpointUnusable(path: mountpoint, reason: "it is not a directory") }

        let backing = context.fileSystem.area.configuration.backingDirectory
        let fsname = "stagingfs:" + backing.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ",", with: "\\,")
        let arguments = ["stagingfs", "-o", "allow_other,subtype=stagingfs,fsname=\(fsname)"]
        var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        defer { cArguments.forEach { free($0) } }
        var operations = FuseOperations.table()
        let created = cArguments.withUnsafeMutableBufferPointer { argv -> OpaquePointer? in
            var args = cfuse_args_init(Int32(argv.count), argv.baseAddress)
            defer { fuse_opt_free_args(&args) }
            return fuse_session_new(&args, &operations, MemoryLayout<fuse_lowlevel_ops>.size, Unmanaged.passUnretained(context).toOpaque())
        }
        guard let pointer = created else { throw .sessionFailed(reason: "fuse_session_new refused the options") }
        defer { fuse_session_destroy(pointer) }
        guard fuse_session_mount(pointer, mountpoint) == 0 else {
            throw .sessionFailed(reason: "mounting \(mountpoint) failed")
        }
        session.withLock { $0 = SessionBox(pointer: pointer) }
        context.fileSystem.area.onDetach { [weak self] in self?.invalidateDetachedInodes() }
        defer {
            session.withLock { box in
                if box != nil { fuse_session_unmount(pointer) }
                box = nil
            }
        }
        let fd = fuse_session_fd(pointer)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        logger.info("mounted", metadata: ["mount.point": "\(mountpoint)", "staging.backing_dir": "\(backing)", "fuse.threads": "\(threads)"])

        let finished = DispatchSemaphore(value: 0)
        let box = SessionBox(pointer: pointer)
        for index in 0..<threads {
            Thread { [self] in
                clinux_name_thread("fuse-\(index)")
                serve(pointer: box, fd: fd)
                finished.signal()
            }.start()
        }
        whenServing()
        for _ in 0..<threads { finished.wait() }
        logger.info("unmounted", metadata: ["mount.point": "\(mountpoint)"])
    }

    /// Drops the kernel's cached pages and attributes of inodes whose handles were detached: a page another
    /// handle wrote stays cached, and a read through a detached handle would get it without reaching us.
    private func invalidateDetachedInodes() {
        session.withLock { box in
            guard let box else { return }
            for ino in context.fileSystem.detachedInodes() {
                let status = fuse_lowlevel_notify_inval_inode(box.pointer, fuse_ino_t(ino), 0, 0)
                // ENOENT: the kernel no longer holds the inode, so it caches nothing of it.
                if status != 0, status != -ENOENT {
                    logger.error(
                        "could not drop the kernel's cache of a detached file", metadata: ["fuse.ino": "\(ino)", "error": "\(Errno(rawValue: -status))"])
                }
            }
        }
    }

    /// Asks `run()` to return: wakes the workers, which finish the request in hand and exit; `run()` unmounts.
    public func stop() {
        _ = try? wakeup.write.writeAll([UInt8(1)])
    }

    /// One worker: wait for a request (one worker is woken per request) or the stop signal, read the request into
    /// an owned buffer, let libfuse dispatch it.
    private func serve(pointer box: SessionBox, fd: Int32) {
        let worker = FuseWorker()
        pthread_setspecific(context.workerKey, Unmanaged.passUnretained(worker).toOpaque())
        let events = clinux_worker_epoll(fd, wakeup.read.rawValue)
        defer {
            pthread_setspecific(context.workerKey, nil)
            if let buffer = worker.buffer { context.pool.give(buffer) }
            if events >= 0 { close(events) }
        }
        guard events >= 0 else {
            logger.error("cannot wait on /dev/fuse", metadata: ["error": "\(Errno(rawValue: -events))"])
            return
        }
        // Without write-time hashing nothing needs the bytes in memory: let libfuse splice them.
        let splice = !context.fileSystem.area.configuration.hashOnWrite
        while true {
            if worker.buffer == nil { worker.buffer = context.pool.take() }
            let ready = clinux_worker_wait(events, wakeup.read.rawValue)
            if ready == 0 { return }
            if ready < 0 {
                logger.error("waiting on /dev/fuse failed", metadata: ["error": "\(Errno(rawValue: -ready))"])
                return
            }
            var buffer = fuse_buf()
            buffer.mem = worker.buffer! + context.pool.requestOffset
            buffer.size = context.pool.bufferSize
            let count: Int
            if splice {
                // libfuse splices a write's payload into a per-thread pipe and hands it to write_buf as a descriptor.
                let received = fuse_session_receive_buf(box.pointer, &buffer)
                count = received < 0 ? -1 : Int(received)
                if received < 0 { errno = -received }
            } else {
                count = Glibc.read(fd, buffer.mem, context.pool.bufferSize)
                buffer.size = max(count, 0)
            }
            if count < 0 {
                switch errno {
                case EINTR, EAGAIN, ENOENT: continue  // ENOENT: the request was interrupted before we read it
                case ENODEV: return  // unmounted
                default:
                    logger.error("reading /dev/fuse failed", metadata: ["error": "\(Errno(rawValue: errno))"])
                    return
                }
            }
            if count == 0 || fuse_session_exited(box.pointer) != 0 { return }
            fuse_session_process_buf(box.pointer, &buffer)
        }
    }
}

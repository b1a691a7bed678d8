// libfuse's low-level operations table: short @convention(c) trampolines into StagingFileSystem, one reply each.
import CFuse
import CLinux
import Foundation
import ImportCore
import SystemPackage

/// What every trampoline finds through `fuse_req_userdata`: the filesystem and the receive-buffer pool.
final class FuseContext: @unchecked Sendable {
    let fileSystem: StagingFileSystem
    let pool: BufferPool
    /// Thread-specific key holding the calling worker, so a write can take over the buffer it arrived in.
    let workerKey: pthread_key_t

    init(fileSystem: StagingFileSystem, pool: BufferPool) {
        self.fileSystem = fileSystem
        self.pool = pool
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        workerKey = key
    }

    deinit { pthread_key_delete(workerKey) }

    /// The write's bytes as `Data` without copying: the worker gives up its receive buffer, which goes back to the
    /// pool when the digest lanes are done with it. Bytes from anywhere else are copied.
    func adopt(_ bytes: UnsafePointer<CChar>, count: Int) -> Data {
        if let raw = pthread_getspecific(workerKey) {
            let worker = Unmanaged<FuseWorker>.fromOpaque(raw).takeUnretainedValue()
            if let base = worker.buffer {
                let start = UnsafeRawPointer(bytes)
                if start >= UnsafeRawPointer(base), start + count <= UnsafeRawPointer(base) + pool.capacity {
                    worker.buffer = nil
                    let pool = self.pool
                    let address = UInt(bitPattern: base)
                    return Data(
                        bytesNoCopy: UnsafeMutableRawPointer(mutating: start), count: count,
                        deallocator: .custom { _, _ in
                            pool.give(UnsafeMutableRawPointer(bitPattern: address)!)
                        })
                }
            }
        }
        return Data(bytes: bytes, count: count)
    }
}

/// A worker thread's state; touched only by that thread.
final class FuseWorker {
    var buffer: UnsafeMutableRawPointer?
}

/// A request, kept only for the synchronous lifetime of one callback (to read supplementary groups lazily).
private struct RequestReference: @unchecked Sendable {
    let request: fuse_req_t?

    func groups() -> [UInt32] {
        var list = [gid_t](repeating: 0, count: 64)
        var count = fuse_req_getgroups(request, Int32(list.count), &list)
        if count > list.count {
            list = [gid_t](repeating: 0, count: Int(count))
            count = fuse_req_getgroups(request, Int32(list.count), &list)
        }
        return count > 0 ? Array(list.prefix(Int(count))) : []
    }
}

private func context(_ req: fuse_req_t?) -> FuseContext {
    Unmanaged<FuseContext>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
}

private func fileSystem(_ req: fuse_req_t?) -> StagingFileSystem { context(req).fileSystem }

/// The caller as the kernel reports it: never what the process claims.
private func caller(_ req: fuse_req_t?) -> Caller {
    let ctx = fuse_req_ctx(req)!.pointee
    let reference = RequestReference(request: req)
    return Caller(uid: ctx.uid, gid: ctx.gid, pid: ctx.pid) { reference.groups() }
}

private func nameBytes(_ name: UnsafePointer<CChar>?) -> UnsafeRawBufferPointer {
    guard let name else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: name, count: strlen(name))
}

// MARK: - Replies: each request is answered exactly once, through one of these.

private func replyError(_ req: fuse_req_t?, _ errno: Errno) {
    fuse_reply_err(req, errno.rawValue)
}

private func reply(_ req: fuse_req_t?, _ result: Result<Void, Errno>) {
    switch result {
    case .success: fuse_reply_err(req, 0)
    case let .failure(errno): replyError(req, errno)
    }
}

private func reply<T>(_ req: fuse_req_t?, _ result: Result<T, Errno>, _ success: (T) -> Void) {
    switch result {
    case let .success(value): success(value)
    case let .failure(errno): replyError(req, errno)
    }
}

private func cStat(_ attributes: NodeAttributes) -> stat {
    var st = stat()
    st.st_ino = UInt(attributes.ino)
    st.st_mode = attributes.mode
    st.st_nlink = UInt(attributes.linkCount)
    st.st_uid = attributes.uid
    st.st_gid = attributes.gid
    st.st_size = Int(attributes.size)
    st.st_blocks = Int(attributes.blocks)
    st.st_blksize = attributes.blockSize
    st.st_atim = attributes.accessTime
    st.st_mtim = attributes.modificationTime
    st.st_ctim = attributes.changeTime
    return st
}

/// Timeouts are zero: what a caller may see depends on who it is, so the kernel must ask every time.
private func entryParameter(_ attributes: NodeAttributes) -> fuse_entry_param {
    var entry = fuse_entry_param()
    entry.ino = attributes.ino
    entry.attr = cStat(attributes)
    entry.attr_timeout = 0
    entry.entry_timeout = 0
    return entry
}

private func replyEntry(_ req: fuse_req_t?, _ result: Result<NodeEntry, Errno>) {
    reply(req, result) { entry in
        var parameter = entryParameter(entry.attributes)
        fuse_reply_entry(req, &parameter)
    }
}

private func replyAttributes(_ req: fuse_req_t?, _ result: Result<NodeAttributes, Errno>) {
    reply(req, result) { attributes in
        var st = cStat(attributes)
        fuse_reply_attr(req, &st, 0)
    }
}

private func replyOpen(_ req: fuse_req_t?, _ fi: UnsafeMutablePointer<fuse_file_info>?, _ result: Result<UInt64, Errno>) {
    reply(req, result) { handle in
        fi!.pointee.fh = handle
        fuse_reply_open(req, fi)
    }
}

private func replyBytes(_ req: fuse_req_t?, _ size: Int, _ result: Result<[UInt8], Errno>) {
    reply(req, result) { bytes in
        if size == 0 {
            fuse_reply_xattr(req, bytes.count)
        } else if bytes.count > size {
            replyError(req, .outOfRange)
        } else {
            bytes.withUnsafeBufferPointer { buffer in
                _ = buffer.withMemoryRebound(to: CChar.self) { fuse_reply_buf(req, $0.baseAddress, $0.count) }
            }
        }
    }
}

private func readdir(_ req: fuse_req_t?, _ size: Int, _ offset: off_t, _ fi: UnsafeMutablePointer<fuse_file_info>?, plus: Bool) {
    let fs = fileSystem(req)
    reply(req, fs.directoryEntries(fi!.pointee.fh)) { snapshot in
        var buffer = [CChar](repeating: 0, count: size)
        var used = 0
        var index = Int(offset)
        buffer.withUnsafeMutableBufferPointer { buffer in
            while index < snapshot.entries.count {
                let entry = snapshot.entries[index]
                let needed =
                    plus
                    ? fuse_add_direntry_plus(req, nil, 0, entry.name, nil, 0)
                    : fuse_add_direntry(req, nil, 0, entry.name, nil, 0)
                guard used + needed <= size else { break }
                let next = off_t(index + 1)
                if plus {
                    var parameter = entryParameter(fs.rememberListed(entry))
                    _ = fuse_add_direntry_plus(req, buffer.baseAddress! + used, size - used, entry.name, &parameter, next)
                } else {
                    var st = cStat(entry.attributes)
                    _ = fuse_add_direntry(req, buffer.baseAddress! + used, size - used, entry.name, &st, next)
                }
                used += needed
                index += 1
            }
            fuse_reply_buf(req, buffer.baseAddress, used)
        }
    }
}

// MARK: - The operations table

enum FuseOperations {
    static let maxWrite: UInt32 = 1 << 20

    static func table() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, conn in
            guard let conn, let userdata else { return }
            conn.pointee.max_write = FuseOperations.maxWrite
            conn.pointee.want &= ~UInt32(FUSE_CAP_WRITEBACK_CACHE)
            conn.pointee.time_gran = 1
            // Written bytes are spliced past us only when nothing has to hash them.
            if Unmanaged<FuseContext>.fromOpaque(userdata).takeUnretainedValue().fileSystem.area.configuration.hashOnWrite {
                conn.pointee.want &= ~UInt32(FUSE_CAP_SPLICE_READ)
            }
        }
        ops.lookup = { req, parent, name in
            replyEntry(req, fileSystem(req).lookup(parent: parent, name: nameBytes(name), caller: caller(req)))
        }
        ops.forget = { req, ino, count in
            fileSystem(req).forget(ino, count: count)
            fuse_reply_none(req)
        }
        ops.forget_multi = { req, count, forgets in
            let fs = fileSystem(req)
            for index in 0..<count { fs.forget(forgets![index].ino, count: forgets![index].nlookup) }
            fuse_reply_none(req)
        }
        ops.getattr = { req, ino, fi in
            replyAttributes(req, fileSystem(req).getattr(ino, handle: fi?.pointee.fh, caller: caller(req)))
        }
        ops.setattr = { req, ino, attr, toSet, fi in
            var changes = AttributeChanges()
            let st = attr!.pointee
            if toSet & FUSE_SET_ATTR_SIZE != 0 { changes.size = Int64(st.st_size) }
            if toSet & FUSE_SET_ATTR_MODE != 0 { changes.mode = st.st_mode }
            if toSet & FUSE_SET_ATTR_UID != 0 { changes.uid = st.st_uid }
            if toSet & FUSE_SET_ATTR_GID != 0 { changes.gid = st.st_gid }
            if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 {
                changes.accessTime = .now
            } else if toSet & FUSE_SET_ATTR_ATIME != 0 {
                changes.accessTime = .to(st.st_atim)
            }
            if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 {
                changes.modificationTime = .now
            } else if toSet & FUSE_SET_ATTR_MTIME != 0 {
                changes.modificationTime = .to(st.st_mtim)
            }
            replyAttributes(req, fileSystem(req).setattr(ino, changes, handle: fi?.pointee.fh, caller: caller(req)))
        }
        ops.create = { req, parent, name, mode, fi in
            let result = fileSystem(req).create(
                parent: parent, name: nameBytes(name), mode: mode, flags: OpenFlags(rawValue: fi!.pointee.flags), caller: caller(req))
            reply(req, result) { entry, handle in
                fi!.pointee.fh = handle
                var parameter = entryParameter(entry.attributes)
                fuse_reply_create(req, &parameter, fi)
            }
        }
        ops.open = { req, ino, fi in
            replyOpen(req, fi, fileSystem(req).open(ino, flags: OpenFlags(rawValue: fi!.pointee.flags), caller: caller(req)))
        }
        ops.read = { req, _, size, offset, fi in
            reply(req, fileSystem(req).readSource(fi!.pointee.fh)) { descriptor in
                var buffers = cfuse_fd_bufvec(size, descriptor.rawValue, offset)
                fuse_reply_data(req, &buffers, FUSE_BUF_SPLICE_MOVE)
            }
        }
        ops.write_buf = { req, _, buffers, offset, fi in
            let ctx = context(req)
            let size = fuse_buf_size(buffers)
            let first = buffers!.pointee.buf
            let result: Result<Int, Errno>
            if first.flags.rawValue & FUSE_BUF_IS_FD.rawValue != 0 {
                // Spliced from /dev/fuse into a pipe (only with hash_on_write = false): pipe → backing file, no copy to us.
                result = ctx.fileSystem.write(fi!.pointee.fh, count: size, at: Int64(offset)) { (descriptor) throws(Errno) in
                    var destination = cfuse_fd_bufvec(size, descriptor.rawValue, offset)
                    let moved = fuse_buf_copy(&destination, buffers, fuse_buf_copy_flags(rawValue: 0))
                    guard moved >= 0 else { throw Errno(rawValue: Int32(-moved)) }
                    guard moved == size else { throw .ioError }  // a short splice: the bytes after it never arrived
                }
            } else {
                let bytes = first.mem!.assumingMemoryBound(to: CChar.self) + buffers!.pointee.off
                result = ctx.fileSystem.write(fi!.pointee.fh, ctx.adopt(bytes, count: size), at: Int64(offset))
            }
            reply(req, result) { fuse_reply_write(req, $0) }
        }
        ops.flush = { req, _, fi in reply(req, fileSystem(req).flush(fi!.pointee.fh)) }
        ops.release = { req, _, fi in
            fileSystem(req).release(fi!.pointee.fh)
            fuse_reply_err(req, 0)
        }
        ops.fsync = { req, _, datasync, fi in
            reply(req, fileSystem(req).fsync(fi!.pointee.fh, dataOnly: datasync != 0))
        }
        ops.unlink = { req, parent, name in
            reply(req, fileSystem(req).unlink(parent: parent, name: nameBytes(name), caller: caller(req)))
        }
        ops.rename = { req, parent, name, newParent, newName, flags in
            let noReplace = flags & clinux_rename_noreplace != 0
            reply(
                req,
                fileSystem(req).rename(
                    parent: parent, name: nameBytes(name), newParent: newParent, newName: nameBytes(newName),
                    noReplace: noReplace, otherFlags: flags & ~clinux_rename_noreplace != 0, caller: caller(req)))
        }
        ops.opendir = { req, ino, fi in replyOpen(req, fi, fileSystem(req).opendir(ino, caller: caller(req))) }
        ops.readdir = { req, _, size, offset, fi in readdir(req, size, offset, fi, plus: false) }
        ops.readdirplus = { req, _, size, offset, fi in readdir(req, size, offset, fi, plus: true) }
        ops.releasedir = { req, _, fi in
            fileSystem(req).releasedir(fi!.pointee.fh)
            fuse_reply_err(req, 0)
        }
        ops.fsyncdir = { req, _, _, _ in fuse_reply_err(req, 0) }
        ops.statfs = { req, _ in
            reply(req, fileSystem(req).statfs(caller: caller(req))) { stats in
                var st = statvfs()
                st.f_bsize = UInt(stats.blockSize)
                st.f_frsize = UInt(stats.fragmentSize)
                st.f_blocks = UInt(stats.blocks)
                st.f_bfree = UInt(stats.blocksFree)
                st.f_bavail = UInt(stats.blocksAvailable)
                st.f_files = UInt(stats.files)
                st.f_ffree = UInt(stats.filesFree)
                st.f_favail = UInt(stats.filesFree)
                st.f_namemax = UInt(StagedName.maximumLength)
                fuse_reply_statfs(req, &st)
            }
        }
        ops.access = { req, ino, mask in
            reply(req, fileSystem(req).access(ino, write: mask & W_OK != 0, caller: caller(req)))
        }
        ops.getxattr = { req, ino, name, size in
            replyBytes(req, size, fileSystem(req).getxattr(ino, name: String(cString: name!), caller: caller(req)))
        }
        ops.listxattr = { req, ino, size in
            replyBytes(req, size, fileSystem(req).listxattr(ino, caller: caller(req)))
        }
        ops.setxattr = { req, ino, name, _, _, _ in
            replyError(req, fileSystem(req).changeXattr(ino, name: String(cString: name!), caller: caller(req)))
        }
        ops.removexattr = { req, ino, name in
            replyError(req, fileSystem(req).changeXattr(ino, name: String(cString: name!), caller: caller(req)))
        }
        // A staging area holds regular files in one directory: everything else is refused with a clear errno.
        ops.mkdir = { req, _, _, _ in replyError(req, fileSystem(req).refuse("mkdir", caller: caller(req))) }
        ops.mknod = { req, _, _, _, _ in replyError(req, fileSystem(req).refuse("mknod", caller: caller(req))) }
        ops.symlink = { req, _, _, _ in replyError(req, fileSystem(req).refuse("symlink", caller: caller(req))) }
        ops.link = { req, _, _, _ in replyError(req, fileSystem(req).refuse("link", caller: caller(req))) }
        ops.rmdir = { req, _, _ in replyError(req, .notDirectory) }
        ops.readlink = { req, _ in replyError(req, .invalidArgument) }
        ops.fallocate = { req, _, _, _, _, _ in replyError(req, .notSupported) }
        return ops
    }
}

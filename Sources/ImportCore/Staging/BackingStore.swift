// The one seam through which all I/O on the backing directory goes.
import CLinux
import Foundation
import SystemPackage

/// What StagingFS needs to know of a backing file.
public struct BackingAttributes: Sendable, Equatable {
    public var inode: UInt64
    public var size: Int64
    public var blocks: Int64
    public var blockSize: Int
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var accessTime: timespec
    public var modificationTime: timespec
    public var changeTime: timespec

    /// The modification time in nanoseconds, as recorded at seal.
    /// The mtime as one number, as records bind it. A caller may set any time a filesystem keeps (ext4: to 2446),
    /// past what nanoseconds since 1970 hold in 64 bits (2262): it wraps there instead of trapping.
    public var modificationNanoseconds: Int64 { Int64(modificationTime.tv_sec) &* 1_000_000_000 &+ Int64(modificationTime.tv_nsec) }
    public var device: UInt64

    public var isRegularFile: Bool { FileMode(rawValue: mode_t(mode)).type == .regular }
    public var isDirectory: Bool { FileMode(rawValue: mode_t(mode)).type == .directory }

    public static func == (a: Self, b: Self) -> Bool {
        a.inode == b.inode && a.size == b.size && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid
            && a.modificationTime.tv_sec == b.modificationTime.tv_sec && a.modificationTime.tv_nsec == b.modificationTime.tv_nsec
    }
}

/// Space on the backing filesystem.
public struct FilesystemStats: Sendable {
    public var blockSize: UInt64
    public var fragmentSize: UInt64
    public var blocks: UInt64
    public var blocksFree: UInt64
    public var blocksAvailable: UInt64
    public var files: UInt64
    public var filesFree: UInt64

    public var bytesAvailable: Int64 { Int64(clamping: blocksAvailable &* fragmentSize) }
}

/// A time to set, or leave alone.
public enum TimeChange: Sendable {
    case now
    case to(timespec)
}

/// I/O on the backing directory. Names are staged files' keys (`StagedName.value`): a validated component, or one
/// in a project's namespace directory, which only the daemon creates. Nothing here follows a symlink.
public protocol BackingStore: Sendable {
    func attributes(of name: String) throws(Errno) -> BackingAttributes
    func directoryAttributes() throws(Errno) -> BackingAttributes
    func attributes(of fd: FileDescriptor) throws(Errno) -> BackingAttributes
    func names() throws(Errno) -> [String]
    /// Opens (and with `createMode`, exclusively creates) a regular file.
    func open(_ name: String, access: FileDescriptor.AccessMode, truncate: Bool, sync: Bool, createMode: UInt32?) throws(Errno) -> FileDescriptor
    func unlink(_ name: String) throws(Errno)
    func rename(_ source: String, to target: String, replace: Bool) throws(Errno)
    /// Moves a file out of the backing directory into `directory` (same filesystem only), never replacing.
    func move(_ name: String, to directory: FileDescriptor, as target: String) throws(Errno)
    /// Moves a file from `directory` back into the backing directory, never replacing.
    func move(_ name: String, from directory: FileDescriptor, as target: String) throws(Errno)
    func setTimes(of name: String, access: TimeChange?, modification: TimeChange?) throws(Errno)
    func setMode(of name: String, to mode: UInt32) throws(Errno)
    func truncate(_ fd: FileDescriptor, to size: Int64) throws(Errno)
    func write(_ fd: FileDescriptor, _ data: Data, at offset: Int64) throws(Errno)
    /// Starts writing a range back to storage without waiting, so the writer's final fsync is short.
    func startWriteback(_ fd: FileDescriptor, offset: Int64, count: Int64)
    func read(_ fd: FileDescriptor, at offset: Int64, count: Int) throws(Errno) -> Data
    func sync(_ fd: FileDescriptor, dataOnly: Bool) throws(Errno)
    func filesystemStats() throws(Errno) -> FilesystemStats
    /// A path to the file that another process of ours (qemu-img) can open, even with the mount on top of the directory.
    func externalPath(of name: String) -> String
}

/// The real backing directory, reached through a directory descriptor with `*at` calls and `O_NOFOLLOW`.
public final class BackingDirectory: BackingStore {
    public let path: String
    private let directory: FileDescriptor

    /// Opens the backing directory; a missing or unwritable one is a start-up error that says so.
    public init(path: String) throws(StagingError) {
        self.path = path
        let st: Stat
        do {
            st = try Stat(FilePath(path))
        } catch {
            throw .system(error, context: "backing directory \(path) (node_staging_uri) cannot be used; create it or fix the path")
        }
        guard st.type == .directory else {
            throw .system(.notDirectory, context: "backing directory \(path) (node_staging_uri) is not a directory")
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw .system(Errno(rawValue: errno), context: "backing directory \(path) (node_staging_uri) is not writable by the daemon")
        }
        do {
            directory = try FileDescriptor.open(path, .readOnly, options: [.directory, .closeOnExec])
        } catch let error as Errno {
            throw .system(error, context: "backing directory \(path) cannot be opened")
        } catch {
            throw .system(.ioError, context: "backing directory \(path) cannot be opened")
        }
    }

    deinit { try? directory.close() }

    public func attributes(of name: String) throws(Errno) -> BackingAttributes {
        try Self.convert(Stat(FilePath(name), relativeTo: directory, flags: .symlinkNoFollow))
    }

    public func directoryAttributes() throws(Errno) -> BackingAttributes {
        try Self.convert(Stat(directory))
    }

    public func attributes(of fd: FileDescriptor) throws(Errno) -> BackingAttributes {
        try Self.convert(Stat(fd))
    }

    /// The staged files' keys: the directory's entries and those of each project's namespace (StagedName.swift),
    /// read through the directory descriptor: when the mount sits on top of the backing directory itself, its
    /// path shows the mount, but the descriptor still reaches what is beneath.
    public func names() throws(Errno) -> [String] {
        var names: [String] = []
        for name in try Self.entries(of: directory.rawValue, ".") where name != StagedName.projectsDirectory {
            names.append(name)
        }
        let projects: [String]
        do { projects = try Self.entries(of: directory.rawValue, StagedName.projectsDirectory) } catch .noSuchFileOrDirectory { return names }
        for project in projects {
            let namespace = StagedName.projectsDirectory + "/" + project
            do {
                for name in try Self.entries(of: directory.rawValue, namespace) { names.append(namespace + "/" + name) }
            } catch .notDirectory {
                continue
            }
        }
        return names
    }

    /// The entries of a directory beneath `parent` (never through a symlink), but "." and "..". Names that are
    /// not UTF-8 cannot be staged files' names: they are left out.
    private static func entries(of parent: Int32, _ path: String) throws(Errno) -> [String] {
        let fd = openat(parent, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        guard let stream = fdopendir(fd) else {
            let error = Errno(rawValue: errno)
            close(fd)
            throw error
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in
                String(validating: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }
            if let name, name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    /// Creates the project namespace a key is in, if it is in one: `.projects/<project>/`, the daemon's own (0700).
    private func makeNamespace(of key: String) throws(Errno) {
        var parts = key.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        guard !parts.isEmpty else { return }
        var path = String(parts.removeFirst())
        while true {
            if mkdirat(directory.rawValue, path, 0o700) != 0, errno != EEXIST { throw Errno(rawValue: errno) }
            guard !parts.isEmpty else { return }
            path += "/" + parts.removeFirst()
        }
    }

    public func open(_ name: String, access: FileDescriptor.AccessMode, truncate: Bool, sync: Bool, createMode: UInt32?) throws(Errno) -> FileDescriptor {
        var flags = access.rawValue | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
        if truncate { flags |= O_TRUNC }
        if sync { flags |= O_SYNC }
        if createMode != nil {
            flags |= O_CREAT | O_EXCL
            try makeNamespace(of: name)
        }
        let fd = openat(directory.rawValue, name, flags, mode_t(createMode ?? 0))
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        let descriptor = FileDescriptor(rawValue: fd)
        // O_NONBLOCK only kept a FIFO planted in the backing directory from blocking the open; refuse anything not regular.
        do {
            let attributes = try self.attributes(of: descriptor)
            guard attributes.isRegularFile else { throw Errno.permissionDenied }
            _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        } catch let error as Errno {
            try? descriptor.close()
            throw error
        } catch {
            try? descriptor.close()
            throw .ioError
        }
        return descriptor
    }

    public func externalPath(of name: String) -> String {
        "/proc/\(getpid())/fd/\(directory.rawValue)/\(name)"
    }

    public func unlink(_ name: String) throws(Errno) {
        guard unlinkat(directory.rawValue, name, 0) == 0 else { throw Errno(rawValue: errno) }
    }

    public func rename(_ source: String, to target: String, replace: Bool) throws(Errno) {
        let flags: UInt32 = replace ? 0 : clinux_rename_noreplace
        try makeNamespace(of: target)
        guard clinux_renameat2(directory.rawValue, source, directory.rawValue, target, flags) == 0 else { throw Errno(rawValue: errno) }
    }

    public func move(_ name: String, to other: FileDescriptor, as target: String) throws(Errno) {
        guard clinux_renameat2(directory.rawValue, name, other.rawValue, target, clinux_rename_noreplace) == 0 else { throw Errno(rawValue: errno) }
    }

    public func move(_ name: String, from other: FileDescriptor, as target: String) throws(Errno) {
        guard clinux_renameat2(other.rawValue, name, directory.rawValue, target, clinux_rename_noreplace) == 0 else { throw Errno(rawValue: errno) }
    }

    public func setTimes(of name: String, access: TimeChange?, modification: TimeChange?) throws(Errno) {
        func spec(_ change: TimeChange?) -> timespec {
            switch change {
            case .none: return timespec(tv_sec: 0, tv_nsec: clinux_utime_omit)
            case .now: return timespec(tv_sec: 0, tv_nsec: clinux_utime_now)
            case let .to(value): return value
            }
        }
        let times = [spec(access), spec(modification)]
        guard utimensat(directory.rawValue, name, times, AT_SYMLINK_NOFOLLOW) == 0 else { throw Errno(rawValue: errno) }
    }

    public func setMode(of name: String, to mode: UInt32) throws(Errno) {
        // fchmodat cannot refuse to follow a symlink on Linux, so check the name first: only regular files are ours.
        guard try attributes(of: name).isRegularFile else { throw .notPermitted }
        guard fchmodat(directory.rawValue, name, mode_t(mode), 0) == 0 else { throw Errno(rawValue: errno) }
    }

    public func truncate(_ fd: FileDescriptor, to size: Int64) throws(Errno) {
        do { try fd.resize(to: size) } catch let error as Errno { throw error } catch { throw .ioError }
    }

    public func write(_ fd: FileDescriptor, _ data: Data, at offset: Int64) throws(Errno) {
        do {
            _ = try data.withUnsafeBytes { try fd.writeAll(toAbsoluteOffset: offset, $0) }
        } catch let error as Errno {
            throw error
        } catch {
            throw .ioError
        }
    }

    public func startWriteback(_ fd: FileDescriptor, offset: Int64, count: Int64) {
        _ = clinux_start_writeback(fd.rawValue, off_t(offset), off_t(count))
    }

    public func read(_ fd: FileDescriptor, at offset: Int64, count: Int) throws(Errno) -> Data {
        var data = Data(count: count)
        do {
            let got = try data.withUnsafeMutableBytes { try fd.read(fromAbsoluteOffset: offset, into: $0) }
            data.count = got
            return data
        } catch let error as Errno {
            throw error
        } catch {
            throw .ioError
        }
    }

    public func sync(_ fd: FileDescriptor, dataOnly: Bool) throws(Errno) {
        guard (dataOnly ? fdatasync(fd.rawValue) : fsync(fd.rawValue)) == 0 else { throw Errno(rawValue: errno) }
    }

    public func filesystemStats() throws(Errno) -> FilesystemStats {
        var st = statvfs()
        guard fstatvfs(directory.rawValue, &st) == 0 else { throw Errno(rawValue: errno) }
        return FilesystemStats(
            blockSize: UInt64(st.f_bsize), fragmentSize: UInt64(st.f_frsize), blocks: UInt64(st.f_blocks),
            blocksFree: UInt64(st.f_bfree), blocksAvailable: UInt64(st.f_bavail), files: UInt64(st.f_files), filesFree: UInt64(st.f_ffree))
    }

    private static func convert(_ st: Stat) -> BackingAttributes {
        let raw = st.rawValue
        return BackingAttributes(
            inode: UInt64(raw.st_ino), size: Int64(raw.st_size), blocks: Int64(raw.st_blocks), blockSize: Int(raw.st_blksize),
            mode: UInt32(raw.st_mode), uid: raw.st_uid, gid: raw.st_gid,
            accessTime: raw.st_atim, modificationTime: raw.st_mtim, changeTime: raw.st_ctim, device: UInt64(raw.st_dev))
    }
}

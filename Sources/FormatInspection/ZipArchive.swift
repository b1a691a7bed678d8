// Finding the one file of a zip archive through its central directory, as Python's `zipfile` does.
import SystemPackage

/// The single file of a zip archive, as its central directory describes it.
struct ZipMember {
    var name: String
    var isDeflated: Bool
    var crc32: UInt32
    var uncompressedSize: Int64
    /// Where the member's compressed data lies in the archive.
    var dataStart: Int64
    var dataEnd: Int64

    /// Reads the end-of-central-directory record (zip64 too), requires exactly one entry that is a plain or deflated
    /// file, and follows it to its local header. Like Glance, a directory entry counts as an entry.
    static func locate(in source: FileDescriptor) throws(DecompressionError) -> ZipMember {
        let fileSize: Int64
        do { fileSize = try source.stat().size } catch { throw .readFailed(error) }
        let directory = try CentralDirectory(in: source, fileSize: fileSize)
        let listing = try readBytes(source, at: directory.offset, count: Int(min(directory.size, 1 << 20)))
        guard directory.entries == 1 else {
            // The first few names are enough to tell someone what they zipped.
            var names: [String] = [], index = 0
            while names.count < 10, let entry = DirectoryEntry(listing, at: index) {
                names.append(entry.name)
                index += entry.length
            }
            throw .zipNotSingleFile(entries: directory.entries, names: names)
        }
        guard let entry = DirectoryEntry(listing, at: 0) else {
            throw .corrupt(.zip, offset: directory.offset, reason: "the central directory entry is damaged")
        }
        // zipfile's is_dir(): a directory is an entry whose name ends with a slash.
        guard !entry.name.hasSuffix("/") else { throw .zipMemberIsDirectory(name: entry.name) }
        // Bit 0: traditional or AES encryption; method 99 is WinZip's AES.
        guard entry.flags & 1 == 0, entry.method != 99 else { throw .zipMemberEncrypted(name: entry.name) }
        guard entry.method == 0 || entry.method == 8 else { throw .zipUnsupportedMethod(name: entry.name, method: entry.method) }

        let headerOffset = Int64(clamping: entry.localHeaderOffset)
        let noHeader = DecompressionError.corrupt(
            .zip, offset: headerOffset, reason: "no local header where the central directory says '\(entry.name)' starts")
        // A member precedes the central directory; checked first, this also keeps the offsets below from overflowing.
        guard headerOffset < directory.offset else { throw noHeader }
        let header = try readBytes(source, at: headerOffset, count: 30)
        guard header.count == 30, header.uint(at: 0, 4) == 0x0403_4B50 else { throw noHeader }
        // The local header's name and extra field may differ in length from the central directory's.
        let dataStart = headerOffset + 30 + Int64(header.uint(at: 26, 2) + header.uint(at: 28, 2))
        let compressedSize = Int64(clamping: entry.compressedSize)
        guard compressedSize <= directory.offset - dataStart else {
            throw .corrupt(.zip, offset: headerOffset, reason: "the data of '\(entry.name)' runs into the central directory")
        }
        return ZipMember(
            name: entry.name, isDeflated: entry.method == 8, crc32: entry.crc32,
            uncompressedSize: Int64(clamping: entry.uncompressedSize), dataStart: dataStart, dataEnd: dataStart + compressedSize)
    }
}

/// Where the central directory is and how many entries it has, from the end-of-central-directory record.
private struct CentralDirectory {
    var entries: Int
    var offset: Int64
    var size: Int64

    init(in source: FileDescriptor, fileSize: Int64) throws(DecompressionError) {
        // The record (22 bytes) ends the archive, followed only by a comment of at most 65535 bytes.
        let tailStart = max(0, fileSize - 22 - 0xFFFF)
        let tail = try readBytes(source, at: tailStart, count: Int(fileSize - tailStart))
        // As zipfile does, take the last signature whose comment fits in the file.
        guard tail.count >= 22,
            let at = stride(from: tail.count - 22, through: 0, by: -1).first(where: {
                tail.uint(at: $0, 4) == 0x0605_4B50 && $0 + 22 + Int(tail.uint(at: $0 + 20, 2)) <= tail.count
            })
        else { throw .truncated(.zip, offset: fileSize) }
        let recordOffset = tailStart + Int64(at)
        guard tail.uint(at: at + 4, 2) == 0, tail.uint(at: at + 6, 2) == 0 else {
            throw .corrupt(.zip, offset: recordOffset, reason: "the archive is split across several files; join it into one")
        }
        var entries = tail.uint(at: at + 10, 2), size = tail.uint(at: at + 12, 4), offset = tail.uint(at: at + 16, 4)
        // A field at its maximum means the real value is in the zip64 record, found through the locator before this one.
        if entries == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
            let missing = DecompressionError.corrupt(.zip, offset: recordOffset, reason: "the zip64 end-of-central-directory record is missing")
            guard recordOffset >= 20 else { throw missing }
            let locator = try readBytes(source, at: recordOffset - 20, count: 20)
            guard locator.count == 20, locator.uint(at: 0, 4) == 0x0706_4B50 else { throw missing }
            let zip64Offset = Int64(clamping: locator.uint(at: 8, 8))
            guard zip64Offset < recordOffset else { throw missing }
            let record = try readBytes(source, at: zip64Offset, count: 56)
            guard record.count == 56, record.uint(at: 0, 4) == 0x0606_4B50 else { throw missing }
            entries = record.uint(at: 32, 8)
            size = record.uint(at: 40, 8)
            offset = record.uint(at: 48, 8)
        }
        self.entries = Int(clamping: entries)
        self.offset = Int64(clamping: offset)
        self.size = Int64(clamping: size)
        guard self.offset <= recordOffset, self.size <= recordOffset - self.offset else {
            throw .corrupt(.zip, offset: recordOffset, reason: "the central directory lies outside the archive")
        }
    }
}

/// One central directory file header.
private struct DirectoryEntry {
    var name: String
    var flags: UInt16
    var method: UInt16
    var crc32: UInt32
    var compressedSize: UInt64
    var uncompressedSize: UInt64
    var localHeaderOffset: UInt64
    /// The bytes the entry takes in the central directory.
    var length: Int

    /// Parses the entry at `index`; nil when there is none, or it does not fit in `bytes`.
    init?(_ bytes: [UInt8], at index: Int) {
        guard index + 46 <= bytes.count, bytes.uint(at: index, 4) == 0x0201_4B50 else { return nil }
        let nameLength = Int(bytes.uint(at: index + 28, 2)), extraLength = Int(bytes.uint(at: index + 30, 2))
        length = 46 + nameLength + extraLength + Int(bytes.uint(at: index + 32, 2))
        guard index + length <= bytes.count else { return nil }
        name = String(decoding: bytes[(index + 46)..<(index + 46 + nameLength)], as: UTF8.self)
        flags = UInt16(bytes.uint(at: index + 8, 2))
        method = UInt16(bytes.uint(at: index + 10, 2))
        crc32 = UInt32(bytes.uint(at: index + 16, 4))
        compressedSize = bytes.uint(at: index + 20, 4)
        uncompressedSize = bytes.uint(at: index + 24, 4)
        localHeaderOffset = bytes.uint(at: index + 42, 4)
        // The zip64 extra field (id 1) holds, in this order, the 64-bit values of the fields that are at their maximum.
        var field = index + 46 + nameLength
        let extraEnd = field + extraLength
        while field + 4 <= extraEnd {
            let id = bytes.uint(at: field, 2), end = min(extraEnd, field + 4 + Int(bytes.uint(at: field + 2, 2)))
            if id == 1 {
                var value = field + 4
                for member in [\DirectoryEntry.uncompressedSize, \.compressedSize, \.localHeaderOffset]
                where self[keyPath: member] == 0xFFFF_FFFF && value + 8 <= end {
                    self[keyPath: member] = bytes.uint(at: value, 8)
                    value += 8
                }
            }
            field = end
        }
    }
}

extension [UInt8] {
    /// The little-endian unsigned integer of `width` bytes at `index`; callers check the bounds.
    fileprivate func uint(at index: Int, _ width: Int) -> UInt64 {
        self[index..<(index + width)].reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// Up to `count` bytes at `offset` of `source`: fewer only at the end of the file.
private func readBytes(_ source: FileDescriptor, at offset: Int64, count: Int) throws(DecompressionError) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    var filled = 0
    while filled < count {
        // Array's withUnsafeMutableBytes rethrows untyped errors, so the result comes out as a Result.
        let read = try bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(DecompressionError) in
                try Decompressor.read(source, at: offset + Int64(filled), into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            }
        }.get()
        if read == 0 { break }
        filled += read
    }
    return Array(bytes[..<filled])
}

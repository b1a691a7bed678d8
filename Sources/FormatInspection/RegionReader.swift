// The one byte source every format check reads through, in both whole-file and streaming mode.

/// Why a check stopped before reaching its answer.
enum ProbeStop: Error {
    /// A region it needs is not kept (yet).
    case missing(ByteRange)
    /// It needs the file size, and `endCount` bytes before the end, which only a complete file has.
    case needsEnd(endCount: Int)
    /// The kept bytes prove the image unsafe.
    case refused(String)
}

/// Reads of the kept bytes; a read that is not answerable throws instead of guessing.
struct RegionReader {
    let store: RegionStore
    /// The file size, once known (whole-file mode, or streaming at finish).
    let size: Int64?
    /// The size to report for formats whose virtual size is the file size, while it is not known.
    let provisionalSize: Int64
    /// The operator's `[image_format]` options (which checks are only warnings).
    let options: ImageFormatOptions

    /// The largest region a check may ask for; larger header values are refusals, not allocations.
    static let maximumRead = 1 << 20

    /// The bytes of [offset, offset+count); fewer only when the file ends first.
    func read(_ offset: Int64, _ count: Int) throws(ProbeStop) -> [UInt8] {
        // A region ending past 2^63 bytes is in no file: while streaming (size unknown) it would wait forever.
        guard offset >= 0, count >= 0, count <= Self.maximumRead, offset <= Int64.max - Int64(count) else {
            throw .refused("a header asks for \(count) bytes at offset \(offset), which is absurd")
        }
        var available = count
        if let size {
            guard offset < size else { return [] }
            available = Int(min(Int64(count), size - offset))
        }
        guard let bytes = store.bytes(offset, available) else {
            throw .missing(ByteRange(offset: offset, count: count))
        }
        return bytes
    }

    /// For a table checked only once the file is complete: while it is not, asks streaming to keep
    /// [offset, offset+length), a chunk of `maximumRead` at a time, without copying what is kept.
    func keep(_ offset: Int64, _ length: Int64) throws(ProbeStop) {
        guard size == nil, offset >= 0, length >= 0 else { return }
        guard offset <= Int64.max - length else { throw .refused("a table of \(length) bytes at offset \(offset) ends past any file") }
        let end = offset + length
        var at = offset
        while at < end {
            let count = Int(min(Int64(Self.maximumRead), end - at))
            guard store.covers(at, count) else { throw .missing(ByteRange(offset: at, count: count)) }
            at += Int64(count)
        }
    }

    func view(_ offset: Int64, _ count: Int) throws(ProbeStop) -> ByteView {
        ByteView(try read(offset, count))
    }

    /// The file size; only known for a complete file.
    func fileSize(needingEnd endCount: Int = 0) throws(ProbeStop) -> Int64 {
        guard let size else { throw .needsEnd(endCount: endCount) }
        return size
    }

    /// The last `count` bytes of the file (fewer when the file is smaller).
    func readEnd(_ count: Int) throws(ProbeStop) -> [UInt8] {
        let size = try fileSize(needingEnd: count)
        let start = max(0, size - Int64(count))
        return try read(start, Int(size - start))
    }

    /// The file size when known, else how much has arrived so far.
    var sizeSoFar: Int64 { size ?? provisionalSize }
}

/// The first sector, which most formats identify themselves by. Kept small so that even a tiny image
/// (an empty vdi is 1 KiB) is recognised in streaming before its size is known.
enum Head {
    static let length = 512
}

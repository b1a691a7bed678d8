// Streaming decompression of a staged image (Glance's `image_decompression` plugin), in bounded memory.
import CCompression
import SystemPackage

/// A compressed container an image may arrive in, unpacked before the image is stored.
public enum CompressedContainer: String, Sendable, CaseIterable {
    case gzip, zstd, zip, xz, bzip2
}

/// Why a compressed image could not be decompressed, in words for the person who uploaded it.
public enum DecompressionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The compressed data is invalid at `offset` in the source; `reason` is the decoder's word for it.
    case corrupt(CompressedContainer, offset: Int64, reason: String)
    /// The source ends, at `offset`, in the middle of a gzip member, a zstd frame, a zip archive, an xz or a bzip2 stream.
    case truncated(CompressedContainer, offset: Int64)
    /// A zip archive must hold exactly one file; it has `entries` (`names` lists the first few).
    case zipNotSingleFile(entries: Int, names: [String])
    /// The zip archive's only entry is a directory.
    case zipMemberIsDirectory(name: String)
    case zipMemberEncrypted(name: String)
    /// The member is compressed with a method other than stored (0) or deflate (8).
    case zipUnsupportedMethod(name: String, method: UInt16)
    /// The output would pass `limit` bytes: a decompression bomb, or an image larger than allowed.
    case tooLarge(limit: Int64)
    /// The decoder library could not start or could not allocate its state (`reason` is its word for it).
    case decoderFailed(CompressedContainer, reason: String)
    case readFailed(Errno)
    case writeFailed(Errno)

    public var description: String {
        switch self {
        case let .corrupt(container, offset, reason):
            return
                "the \(container.rawValue) data is corrupt at byte \(offset) (\(reason)): it was damaged in transfer or was never valid \(container.rawValue); upload the image again"
        case let .truncated(container, offset):
            return "the \(container.rawValue) data ends early, at byte \(offset): the upload was cut short; upload the whole image again"
        case let .zipNotSingleFile(entries, names):
            guard entries > 0 else { return "the zip archive is empty; it must hold exactly one file, the image" }
            let listed = names.map { "'\($0)'" } + (entries > names.count ? ["…"] : [])
            return "the zip archive holds \(entries) entries (\(listed.joined(separator: ", "))); it must hold exactly one file, the image: zip the image alone"
        case let .zipMemberIsDirectory(name):
            return "the zip archive's only entry, '\(name)', is a directory; it must be the image file: zip the image itself"
        case let .zipMemberEncrypted(name):
            return "the zip member '\(name)' is encrypted; upload the image unencrypted"
        case let .zipUnsupportedMethod(name, method):
            return
                "the zip member '\(name)' is compressed with zip method \(method), which is not supported; store or deflate it (zip's default), or use gzip or zstd"
        case let .decoderFailed(container, reason):
            return "the \(container.rawValue) decoder failed (\(reason)): the host is short of memory; retry the import later"
        case let .tooLarge(limit):
            return
                "the decompressed image would be larger than \(limit) bytes, so it was refused (it may be a decompression bomb); upload it uncompressed or ask for a larger limit"
        case let .readFailed(errno):
            return "reading the compressed image failed: \(errno)"
        case let .writeFailed(errno):
            return "writing the decompressed image failed: \(errno); free space in the staging area and retry"
        }
    }
}

/// Decompresses staged images, one container at a time, through the system zlib, libzstd, liblzma and libbz2.
public enum Decompressor {
    /// Bytes read from the source, and written to the destination, per step: this bounds the memory used.
    private static let chunkSize = 1 << 20

    /// Decompresses `source` (read from offset 0) into `destination` (written from offset 0), in bounded memory;
    /// stops with `.tooLarge` as soon as the output would pass `limit`. `progress` gets input bytes consumed.
    /// Returns the output size.
    ///
    /// gzip may hold several concatenated members (as `gzip -dc` reads them); zstd several frames; xz and bzip2
    /// several streams; zip exactly one file, stored or deflated. Both descriptors are used with positioned I/O only, and `destination` is
    /// expected to be empty: it is neither truncated nor synced here.
    /// - Parameter progress: how far into `source` decompression has read, a running total in bytes.
    public static func decompress(
        _ container: CompressedContainer, from source: FileDescriptor, to destination: FileDescriptor, limit: Int64,
        progress: (Int64) -> Void
    ) throws(DecompressionError) -> Int64 {
        switch container {
        case .gzip:
            return try pump(try GzipDecoder(), .gzip, from: source, to: destination, limit: limit, progress: progress)
        case .zstd:
            return try pump(try ZstdDecoder(), .zstd, from: source, to: destination, limit: limit, progress: progress)
        case .xz:
            return try pump(try XzDecoder(), .xz, from: source, to: destination, limit: limit, progress: progress)
        case .bzip2:
            return try pump(try Bzip2Decoder(), .bzip2, from: source, to: destination, limit: limit, progress: progress)
        case .zip:
            let member = try ZipMember.locate(in: source)
            // The central directory's size is only a claim, still checked while writing; an honest one fails fast.
            guard member.uncompressedSize <= limit else { throw .tooLarge(limit: limit) }
            let decoder = try ZipMemberDecoder(deflated: member.isDeflated)
            let size = try pump(
                decoder, .zip, from: source, range: member.dataStart..<member.dataEnd, to: destination, limit: limit,
                progress: progress)
            guard size == member.uncompressedSize else {
                throw .corrupt(
                    .zip, offset: member.dataStart,
                    reason: "'\(member.name)' decompressed to \(size) bytes, the central directory says \(member.uncompressedSize)")
            }
            guard decoder.checksum == member.crc32 else {
                throw .corrupt(.zip, offset: member.dataStart, reason: "the CRC-32 of '\(member.name)' does not match its central directory entry")
            }
            return size
        }
    }

    /// Feeds `range` of `source` through `decoder` chunk by chunk, writing what it produces, until both are exhausted.
    private static func pump(
        _ decoder: some StreamDecoder, _ container: CompressedContainer, from source: FileDescriptor,
        range: Range<Int64> = 0..<Int64.max, to destination: FileDescriptor, limit: Int64, progress: (Int64) -> Void
    ) throws(DecompressionError) -> Int64 {
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { input.deallocate() }
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { output.deallocate() }
        var position = range.lowerBound  // the next source byte to read
        var pending = 0..<0  // bytes of `input` read but not yet consumed
        var sourceEnded = false
        var written: Int64 = 0
        while true {
            if pending.isEmpty && !sourceEnded {
                let want = Int(min(Int64(chunkSize), range.upperBound - position))
                let count = try read(source, at: position, into: UnsafeMutableRawBufferPointer(rebasing: input[..<want]))
                position += Int64(count)
                pending = 0..<count
                sourceEnded = count == 0
                progress(position)
            }
            let (consumed, produced) = try decoder.decode(
                UnsafeRawBufferPointer(rebasing: input[pending]), into: output, offset: position - Int64(pending.count))
            pending = pending.dropFirst(consumed)
            if produced > 0 {
                guard written + Int64(produced) <= limit else { throw .tooLarge(limit: limit) }
                do {
                    try destination.writeAll(toAbsoluteOffset: written, UnsafeRawBufferPointer(rebasing: output[..<produced]))
                } catch let error as Errno { throw .writeFailed(error) } catch { throw .writeFailed(.ioError) }
                written += Int64(produced)
            } else if consumed == 0 && pending.isEmpty && sourceEnded {
                break
            }
        }
        guard decoder.isComplete else { throw .truncated(container, offset: position) }
        return written
    }

    /// One positioned read; 0 at the end of the file.
    static func read(_ source: FileDescriptor, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(DecompressionError) -> Int {
        do { return try source.read(fromAbsoluteOffset: offset, into: buffer) } catch let error as Errno {
            throw .readFailed(error)
        } catch { throw .readFailed(.ioError) }
    }
}

// MARK: - Decoders

/// One container's decoder as `Decompressor.pump` drives it. Given input and room for output, it always
/// consumes or produces something, unless it needs more input or is done.
protocol StreamDecoder {
    /// Decodes what it can of `input` into `output`; `offset` is where `input` starts in the source, for errors.
    /// `input` is empty only once the source has ended.
    func decode(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, offset: Int64
    ) throws(DecompressionError) -> (consumed: Int, produced: Int)
    /// Whether the input may end here: not in the middle of a member, frame or deflate stream.
    var isComplete: Bool { get }
}

/// A zlib inflate stream. The `z_stream` lives at a fixed address, as zlib checks that it never moves.
private final class Inflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let container: CompressedContainer
    private(set) var ended = false

    /// `windowBits` as `inflateInit2` takes it: 15 + 16 for a gzip member, -15 for raw deflate (zip).
    init(windowBits: Int32, container: CompressedContainer) throws(DecompressionError) {
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = ccompression_inflate_init2(stream, windowBits)
        // Thrown before `self` is whole, so deinit does not run: zlib freed what it had allocated.
        guard status == Z_OK else {
            stream.deallocate()
            throw .decoderFailed(container, reason: "zlib inflateInit2 error \(status)")
        }
        self.stream = stream
        self.container = container
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// Starts a new stream (the next gzip member) with the same allocations.
    func reset() {
        inflateReset(stream)
        ended = false
    }

    func inflate(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, offset: Int64
    ) throws(DecompressionError) -> (consumed: Int, produced: Int) {
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        stream.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(output.count)
        let status = CCompression.inflate(stream, Z_NO_FLUSH)
        let consumed = input.count - Int(stream.pointee.avail_in)
        let produced = output.count - Int(stream.pointee.avail_out)
        switch status {
        case Z_OK, Z_BUF_ERROR:  // Z_BUF_ERROR only says no progress was possible: more input is needed
            break
        case Z_STREAM_END:
            ended = true
        case Z_MEM_ERROR:
            throw .decoderFailed(container, reason: "zlib cannot allocate its window")
        default:
            let reason = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(status)"
            throw .corrupt(container, offset: offset + Int64(consumed), reason: reason)
        }
        return (consumed, produced)
    }
}

/// gzip, with zlib checking each member's CRC-32 and size.
private final class GzipDecoder: StreamDecoder {
    private let inflater: Inflater

    init() throws(DecompressionError) {
        inflater = try Inflater(windowBits: 15 + 16, container: .gzip)
    }

    var isComplete: Bool { inflater.ended }

    func decode(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, offset: Int64
    ) throws(DecompressionError) -> (consumed: Int, produced: Int) {
        if inflater.ended && !input.isEmpty {
            // Like `gzip -dc`, read concatenated members as one stream; unlike it, refuse trailing garbage,
            // which would otherwise be silently dropped from the image.
            guard zip(input, [0x1F, 0x8B] as [UInt8]).allSatisfy({ $0 == $1 }) else {
                throw .corrupt(.gzip, offset: offset, reason: "data after the last gzip member is not another member")
            }
            inflater.reset()
        }
        return try inflater.inflate(input, into: output, offset: offset)
    }
}

/// zstd: any number of frames (and skippable frames); the checksum, when the frame has one, is checked by libzstd.
/// libzstd's default window limit (128 MiB) bounds its memory: a frame that needs more is refused as corrupt.
private final class ZstdDecoder: StreamDecoder {
    private let context: OpaquePointer
    private(set) var isComplete = false

    init() throws(DecompressionError) {
        guard let context = ZSTD_createDCtx() else { throw .decoderFailed(.zstd, reason: "ZSTD_createDCtx failed") }
        self.context = context
    }

    deinit { ZSTD_freeDCtx(context) }

    func decode(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, offset: Int64
    ) throws(DecompressionError) -> (consumed: Int, produced: Int) {
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        var target = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
        let hint = ZSTD_decompressStream(context, &target, &source)
        if ZSTD_isError(hint) != 0 {
            throw .corrupt(.zstd, offset: offset + Int64(source.pos), reason: String(cString: ZSTD_getErrorName(hint)))
        }
        // 0 means a frame is complete and flushed; a call that did nothing answers for the next frame's header.
        if source.pos > 0 || target.pos > 0 { isComplete = hint == 0 }
        return (source.pos, target.pos)
    }
}

/// A zip member's data, stored or raw deflate, with the CRC-32 of its output for checking against the archive.
private final class ZipMemberDecoder: StreamDecoder {
    private let inflater: Inflater?  // nil: stored
    private(set) var checksum: UInt32 = 0

    init(deflated: Bool) throws(DecompressionError) {
        inflater = deflated ? try Inflater(windowBits: -15, container: .zip) : nil
    }

    var isComplete: Bool { inflater?.ended ?? true }

    func decode(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, offset: Int64
    ) throws(DecompressionError) -> (consumed: Int, produced: Int) {
        let result: (consumed: Int, produced: Int)
        if let inflater {
            guard !inflater.ended || input.isEmpty else {
                throw .corrupt(.zip, offset: offset, reason: "the member's data goes on after its deflate stream ends")
            }
            result = try inflater.inflate(input, into: output, offset: offset)
        } else {
            let count = min(input.count, output.count)
            output.copyMemory(from: UnsafeRawBufferPointer(rebasing: input[..<count]))
            result = (count, count)
        }
        checksum = UInt32(crc32(uLong(checksum), output.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(result.produced)))
        return result
    }
}

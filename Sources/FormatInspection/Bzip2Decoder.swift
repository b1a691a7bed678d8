// bzip2 through the system libbz2: the decoder `Decompressor` drives for .bz2 images.
import CCompression

/// bzip2: any number of concatenated streams, as `bzip2 -d` reads them; libbz2 checks each block's CRC and the
/// stream's. The `bz_stream` lives at a fixed address, as libbz2 checks that it never moves.
final class Bzip2Decoder: StreamDecoder {
    private let stream = UnsafeMutablePointer<bz_stream>.allocate(capacity: 1)
    private(set) var isComplete = false
    /// Whether libbz2 holds a state for the stream, to be ended.
    private var started = false

    init() throws(DecompressionError) {
        stream.initialize(to: bz_stream())
        try start()
    }

    deinit {
        if started { BZ2_bzDecompressEnd(stream) }
        stream.deallocate()
    }

    /// Starts decoding a stream; libbz2 has no reset, so each stream of a concatenation gets a fresh state.
    private func start() throws(DecompressionError) {
        let status = BZ2_bzDecompressInit(stream, 0, 0)
        guard status == BZ_OK else { throw .decoderFailed(.bzip2, reason: "BZ2_bzDecompressInit error \(status)") }
        started = true
    }

    func decode(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, offset: Int64
    ) throws(DecompressionError) -> (consumed: Int, produced: Int) {
        if isComplete {
            // libbz2 takes no call after a stream's end.
            guard !input.isEmpty else { return (0, 0) }
            // Like `bzip2 -d`, read concatenated streams as one; unlike it, refuse trailing garbage (it only warns),
            // which would otherwise be silently dropped from the image.
            guard zip(input, Array(ascii: "BZh")).allSatisfy({ $0 == $1 }) else {
                throw .corrupt(.bzip2, offset: offset, reason: "data after the last bzip2 stream is not another stream")
            }
            BZ2_bzDecompressEnd(stream)
            started = false
            try start()
            isComplete = false
        }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: CChar.self))
        stream.pointee.avail_in = UInt32(input.count)
        stream.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: CChar.self)
        stream.pointee.avail_out = UInt32(output.count)
        let status = BZ2_bzDecompress(stream)
        let consumed = input.count - Int(stream.pointee.avail_in)
        let produced = output.count - Int(stream.pointee.avail_out)
        switch status {
        case BZ_OK:
            break
        case BZ_STREAM_END:
            isComplete = true
        case BZ_DATA_ERROR_MAGIC:
            throw .corrupt(.bzip2, offset: offset + Int64(consumed), reason: "libbz2: no bzip2 stream header where a stream starts")
        case BZ_MEM_ERROR:
            // libbz2 allocates a block's tables (at most 3.6 MiB, by the header's block size) when it reads them.
            throw .decoderFailed(.bzip2, reason: "libbz2 cannot allocate a block's tables")
        case BZ_DATA_ERROR:
            throw .corrupt(.bzip2, offset: offset + Int64(consumed), reason: "libbz2: a block is invalid or fails its CRC")
        default:
            throw .corrupt(.bzip2, offset: offset + Int64(consumed), reason: "libbz2 error \(status)")
        }
        return (consumed, produced)
    }
}

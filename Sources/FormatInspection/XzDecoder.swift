// xz through the system liblzma: the decoder `Decompressor` drives for .xz images.
import CCompression

/// xz: any number of concatenated streams (and the padding between them), each of any number of blocks; liblzma
/// checks each block's integrity check, the index and the stream footer. The `lzma_stream` lives at a fixed
/// address, as liblzma keeps pointers into it.
final class XzDecoder: StreamDecoder {
    /// Bounds what a stream's header can make liblzma allocate: a 128 MiB dictionary (libzstd's default window
    /// limit for zstd; twice what `xz -9` uses) and liblzma's own state. A stream that needs more is refused.
    static let memoryLimit: UInt64 = 129 << 20

    private let stream: UnsafeMutablePointer<lzma_stream>
    private(set) var isComplete = false

    init() throws(DecompressionError) {
        let stream = UnsafeMutablePointer<lzma_stream>.allocate(capacity: 1)
        stream.initialize(to: lzma_stream())
        // Told, liblzma reports an integrity check it cannot verify, rather than skipping it: such a stream is refused.
        let flags = ccompression_lzma_concatenated | ccompression_lzma_tell_unsupported_check
        let status = lzma_stream_decoder(stream, Self.memoryLimit, flags)
        // Thrown before `self` is whole, so deinit does not run: liblzma freed what it had allocated.
        guard status == LZMA_OK else {
            stream.deallocate()
            throw .decoderFailed(.xz, reason: "lzma_stream_decoder error \(status.rawValue)")
        }
        self.stream = stream
    }

    deinit {
        lzma_end(stream)
        stream.deallocate()
    }

    func decode(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, offset: Int64
    ) throws(DecompressionError) -> (consumed: Int, produced: Int) {
        stream.pointee.next_in = input.baseAddress?.assumingMemoryBound(to: UInt8.self)
        stream.pointee.avail_in = input.count
        stream.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: UInt8.self)
        stream.pointee.avail_out = output.count
        // Another stream may always follow, so only the end of the source lets liblzma say the last one is whole.
        let status = lzma_code(stream, input.isEmpty ? LZMA_FINISH : LZMA_RUN)
        let consumed = input.count - stream.pointee.avail_in
        let produced = output.count - stream.pointee.avail_out
        switch status {
        case LZMA_OK, LZMA_BUF_ERROR:  // LZMA_BUF_ERROR only says no progress was possible: more input is needed
            break
        case LZMA_STREAM_END:
            isComplete = true
        case LZMA_MEM_ERROR:
            throw .decoderFailed(.xz, reason: "liblzma cannot allocate memory")
        default:
            throw .corrupt(.xz, offset: offset + Int64(consumed), reason: reason(status))
        }
        return (consumed, produced)
    }

    private func reason(_ status: lzma_ret) -> String {
        switch status {
        case LZMA_DATA_ERROR: "liblzma: compressed data is corrupt"
        case LZMA_FORMAT_ERROR: "liblzma: not in the .xz format"
        case LZMA_OPTIONS_ERROR: "liblzma: a filter or option this liblzma does not support"
        case LZMA_UNSUPPORTED_CHECK: "liblzma: an integrity check type it cannot verify"
        case LZMA_MEMLIMIT_ERROR:
            "decoding needs \(lzma_memusage(stream) >> 20) MiB of memory, more than the \(Self.memoryLimit >> 20) MiB allowed; "
                + "compress with a smaller dictionary (xz -9 or less)"
        default: "liblzma error \(status.rawValue)"
        }
    }
}

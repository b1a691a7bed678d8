import FormatInspection
// xz and bzip2 beyond what every container is tested for: blocks, padding, liblzma's and libzstd's limits, and the legacy
// .lzma format, which is refused.
import Foundation
import StagingTestSupport
import SystemPackage
import Testing

extension DecompressionTests {
    /// Rewrites bytes of `path` with a Python program that gets the file's bytes as `data` (a bytearray) and `zlib`.
    func patch(_ path: String, _ program: String) throws {
        let wrapped = "import sys, zlib\ndata = bytearray(open(sys.argv[1], 'rb').read())\n\(program)\nopen(sys.argv[1], 'wb').write(data)"
        try Self.succeed(["/usr/bin/python3", "-c", wrapped, path])
    }

    /// What the inspector answers for the whole file at `path`.
    func inspect(_ path: String) throws -> InspectionVerdict {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        return FormatInspector.inspect(size: Int64(bytes.count)) { offset, count in
            Array(bytes[Int(offset)..<min(bytes.count, Int(offset) + count)])
        }
    }

    @Test("an xz of many blocks comes back byte for byte")
    func xzBlocks() throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw"), compressed = scratch.path("disk.raw.xz")
        try makeRandomFile(original, bytes: 5_000_000)
        try Self.succeed(["sh", "-c", "xz -T1 --block-size=1MiB -c '\(original)' > '\(compressed)'"])
        let listing = try run(["xz", "--robot", "--list", compressed])
        let totals = listing.stdout.split(separator: "\n").first { $0.hasPrefix("totals") }?.split(separator: "\t")
        #expect(totals.map { Int($0[2]) } == 5, "xz --list: \(listing.stdout)")  // streams, then blocks

        let outcome = try decompress(.xz, compressed)
        #expect(try outcome.result.get() == 5_000_000)
        #expect(try digest("sha512sum", of: outcome.output) == digest("sha512sum", of: original))
    }

    @Test("nothing, compressed, decompresses to nothing", arguments: [CompressedContainer.xz, .bzip2])
    func empty(container: CompressedContainer) throws {
        let scratch = try Scratch()
        let original = scratch.path("empty")
        #expect(FileManager.default.createFile(atPath: original, contents: nil))
        let compressed = try scratch.compress(original, as: container)
        let format = try #require(ImageFormat(rawValue: container.rawValue))
        #expect(try inspect(compressed) == .accepted(InspectedImage(format: format, virtualSize: size(of: compressed))))
        #expect(try decompress(container, compressed).result.get() == 0)
    }

    @Test("xz stream padding is read, as xz reads it; other data after the last stream is refused")
    func xzTrailingData() throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw")
        try makeRandomFile(original, bytes: 100_000)
        let compressed = try scratch.compress(original, as: .xz)
        let padded = scratch.path("padded.xz"), garbage = scratch.path("garbage.xz")
        // (Fewer bytes than a stream header are taken for one cut short: refused as truncated.)
        try Self.succeed([
            "sh", "-c",
            "(cat '\(compressed)'; head -c 512 /dev/zero) > '\(padded)' && (cat '\(compressed)'; head -c 512 /dev/zero | tr '\\0' x) > '\(garbage)'",
        ])

        #expect(try decompress(.xz, padded).result.get() == 100_000)
        let error = try decompress(.xz, garbage).error
        guard case let .corrupt(.xz, offset, _)? = error else {
            Issue.record("expected corrupt xz, got \(String(describing: error))")
            return
        }
        #expect(try offset >= size(of: compressed))
    }

    @Test("data after the last bzip2 stream is refused, not dropped")
    func bzip2TrailingGarbage() throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw")
        try makeRandomFile(original, bytes: 100_000)
        let compressed = try scratch.compress(original, as: .bzip2)
        let end = try size(of: compressed)
        try Self.succeed(["sh", "-c", "head -c 512 /dev/zero >> '\(compressed)'"])

        let error = try decompress(.bzip2, compressed).error
        #expect(error == .corrupt(.bzip2, offset: end, reason: "data after the last bzip2 stream is not another stream"))
    }

    @Test("an xz whose dictionary needs more memory than liblzma may use is refused; 128 MiB is allowed")
    func xzMemoryLimit() throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw")
        try makeRandomFile(original, bytes: 100_000)
        let compressed = try scratch.compress(original, as: .xz)
        // The block header's LZMA2 dictionary byte, as an encoder with a larger dictionary writes it: only the
        // decoder's buffer grows, so the data still decodes. Then the header's CRC-32 again.
        func setDictionary(_ code: Int) throws {
            try patch(
                compressed,
                """
                size = (data[12] + 1) * 4
                assert data[13] & 0xC3 == 0 and data[14:16] == b'\\x21\\x01', 'one LZMA2 filter, no sizes'
                data[16] = \(code)
                data[12 + size - 4:12 + size] = zlib.crc32(data[12:12 + size - 4]).to_bytes(4, 'little')
                """)
        }
        try setDictionary(30)  // 128 MiB
        let outcome = try decompress(.xz, compressed)
        #expect(try outcome.result.get() == 100_000)
        #expect(try digest("sha512sum", of: outcome.output) == digest("sha512sum", of: original))

        try setDictionary(32)  // 256 MiB
        let error = try decompress(.xz, compressed).error
        guard case let .corrupt(.xz, _, reason)? = error else {
            Issue.record("expected corrupt xz, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("MiB of memory, more than the 129 MiB allowed"), "\(reason)")
    }

    @Test("a zstd frame whose window needs more memory than libzstd's limit is refused with a message, never allocated")
    func zstdWindowLimit() throws {
        let scratch = try Scratch()
        let compressed = scratch.path("disk.zst")
        // A frame header declaring a 2 GiB window (window descriptor 0xA8: 2^(10 + 21)), then one raw block of one byte.
        try Data([0x28, 0xB5, 0x2F, 0xFD, 0x00, 0xA8, 0x09, 0x00, 0x00, 0x41]).write(to: URL(fileURLWithPath: compressed))
        let error = try decompress(.zstd, compressed).error
        guard case let .corrupt(.zstd, _, reason)? = error else {
            Issue.record("expected corrupt zstd, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("memory"), "\(reason)")
    }

    @Test("an xz with an integrity check liblzma cannot verify is refused")
    func xzUnsupportedCheck() throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw")
        try makeRandomFile(original, bytes: 100_000)
        let compressed = try scratch.compress(original, as: .xz)
        // Check type 5 is reserved, with CRC64's 8-byte field (xz's default check, type 4): set in the header and
        // the footer, each with its CRC-32.
        try patch(
            compressed,
            """
            assert data[7] == 4 and data[-3] == 4, 'CRC64'
            data[7] = data[-3] = 5
            data[8:12] = zlib.crc32(data[6:8]).to_bytes(4, 'little')
            data[-12:-8] = zlib.crc32(data[-8:-2]).to_bytes(4, 'little')
            """)
        #expect(try decompress(.xz, compressed).error == .corrupt(.xz, offset: 12, reason: "liblzma: an integrity check type it cannot verify"))
    }

    @Test(
        "every bit flip tried, and every cut, is refused with a message or decodes to the original: never another image",
        arguments: [CompressedContainer.xz, .bzip2])
    func damaged(container: CompressedContainer) throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw")
        try makeRandomFile(original, bytes: 20_000)
        let compressed = try scratch.compress(original, as: container)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: compressed)))
        let expected = try Data(contentsOf: URL(fileURLWithPath: original))
        // Every header, index and footer byte, and a sample of the data between.
        let ends = Array(0..<96) + Array((bytes.count - 96)..<bytes.count)
        let positions = ends + (0..<64).map { _ in Int.random(in: 96..<(bytes.count - 96)) }
        let damaged = scratch.path("damaged")
        for (index, position) in positions.enumerated() {
            var flipped = bytes
            flipped[position] ^= 1 << (index % 8)
            try Data(flipped).write(to: URL(fileURLWithPath: damaged))
            let outcome = try decompress(container, damaged, into: scratch.path("out-\(index)"))
            if let error = outcome.error {
                #expect(!error.description.isEmpty)
            } else {
                #expect(try Data(contentsOf: URL(fileURLWithPath: outcome.output)) == expected, "bit \(index % 8) of byte \(position) flipped")
            }
        }
        for length in stride(from: 0, to: bytes.count, by: 997) + [bytes.count - 1] {
            try Data(bytes.prefix(length)).write(to: URL(fileURLWithPath: damaged))
            let error = try decompress(container, damaged, into: scratch.path("cut-\(length)")).error
            #expect(error != nil, "cut at \(length)")
        }
    }

    // MARK: - Detection

    @Test(
        "the legacy .lzma format is recognised and refused: image_decompression does not unpack it, as Glance's does not",
        arguments: ["-0", "-6"])
    func legacyLZMA(level: String) throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw"), compressed = scratch.path("disk.raw.lzma")
        try makeRandomFile(original, bytes: 100_000)
        try Self.succeed(["sh", "-c", "xz --format=lzma \(level) -c '\(original)' > '\(compressed)'"])

        guard case let .refused(refusal) = try inspect(compressed) else {
            Issue.record("expected the .lzma file refused")
            return
        }
        #expect(refusal.format == .lzma)
        #expect(refusal.reason.contains("legacy .lzma format") && refusal.reason.contains("xz"), "\(refusal.reason)")
    }

    @Test("text beginning like a bzip2 header is not bzip2")
    func bzip2LookAlike() throws {
        let scratch = try Scratch()
        let text = scratch.path("text")
        try "BZh91 is not a bzip2 stream\n".write(toFile: text, atomically: true, encoding: .utf8)
        // A raw disk is whole sectors, as qemu reads it.
        #expect(try inspect(text) == .accepted(InspectedImage(format: .raw, virtualSize: (size(of: text) + 511) / 512 * 512)))
    }
}

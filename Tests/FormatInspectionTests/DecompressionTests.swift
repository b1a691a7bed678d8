import FormatInspection
// Decompression of real gzip, zstd, zip, xz and bzip2 files made by the tools people use, compared byte for byte.
import Foundation
import StagingTestSupport
import SystemPackage
import Testing

@Suite("Decompression")
struct DecompressionTests {
    /// One test's files, removed when the test ends.
    final class Scratch {
        let directory = "/tmp/decompression-tests/\(UUID().uuidString.prefix(8))"

        init() throws { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: directory) }

        func path(_ name: String) -> String { directory + "/" + name }

        /// Compresses `original` with `gzip`, `zstd`, Python's `zipfile` (deflate, as `disk.raw`), `xz` or `bzip2`;
        /// returns the result's path.
        func compress(_ original: String, as container: CompressedContainer) throws -> String {
            let output = original + "." + container.rawValue
            switch container {
            case .gzip: try succeed(["sh", "-c", "gzip -c '\(original)' > '\(output)'"])
            case .zstd: try succeed(["zstd", "-q", original, "-o", output])
            case .zip: try makeZip(output, members: ["disk.raw=\(original)"])
            case .xz: try succeed(["sh", "-c", "xz -T1 -c '\(original)' > '\(output)'"])
            case .bzip2: try succeed(["sh", "-c", "bzip2 -c '\(original)' > '\(output)'"])
            }
            return output
        }

        /// A zip made by Python's `zipfile`: each member is `name=source file`, or a directory when the name ends in `/`.
        func makeZip(_ output: String, method: String = "ZIP_DEFLATED", members: [String]) throws {
            let program = """
                import sys, zipfile
                with zipfile.ZipFile(sys.argv[1], 'w', getattr(zipfile, sys.argv[2])) as archive:
                    for spec in sys.argv[3:]:
                        name, _, source = spec.partition('=')
                        if name.endswith('/'):
                            archive.writestr(zipfile.ZipInfo(name), '')
                        else:
                            archive.write(source, name)
                """
            try succeed(["/usr/bin/python3", "-c", program, output, method] + members)
        }
    }

    /// What one decompression returned, where it wrote, and the last progress it reported.
    struct Outcome {
        var result: Result<Int64, DecompressionError>
        var output: String
        var progress: Int64

        var error: DecompressionError? {
            if case let .failure(error) = result { error } else { nil }
        }
    }

    static func succeed(_ arguments: [String]) throws {
        let result = try run(arguments)
        guard result.succeeded else { throw TestSetupError("\(arguments.joined(separator: " ")) failed: \(result)") }
    }

    /// Decompresses `input` into a new file beside it (or into `output`).
    func decompress(_ container: CompressedContainer, _ input: String, into output: String? = nil, limit: Int64 = .max) throws -> Outcome {
        let output = output ?? input + ".out"
        let source = try FileDescriptor.open(input, .readOnly)
        defer { try? source.close() }
        let destination = try FileDescriptor.open(output, .writeOnly, options: [.create], permissions: [.ownerReadWrite])
        defer { try? destination.close() }
        var progress: Int64 = 0
        let result = Result { () throws(DecompressionError) in
            try Decompressor.decompress(container, from: source, to: destination, limit: limit) { progress = $0 }
        }
        return Outcome(result: result, output: output, progress: progress)
    }

    func size(of path: String) throws -> Int64 {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64)
    }

    // MARK: - Byte-exact output

    @Test("a random 8–40 MiB image comes back byte for byte", arguments: CompressedContainer.allCases)
    func roundTrip(container: CompressedContainer) throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw")
        try makeRandomFile(original, bytes: Int.random(in: (8 << 20)...(40 << 20)))
        let compressed = try scratch.compress(original, as: container)

        let outcome = try decompress(container, compressed)
        #expect(try outcome.result.get() == size(of: original))
        #expect(try digest("sha512sum", of: outcome.output) == digest("sha512sum", of: original))
        // Streams are read to the end; a zip only up to the end of its member's data.
        if container == .zip {
            #expect(try outcome.progress > 0 && outcome.progress < size(of: compressed))
        } else {
            #expect(try outcome.progress == size(of: compressed))
        }
    }

    @Test(
        "concatenated gzip members, zstd frames, xz and bzip2 streams decompress as one stream, as `gzip -dc` and the others do",
        arguments: [CompressedContainer.gzip, .zstd, .xz, .bzip2])
    func concatenated(container: CompressedContainer) throws {
        let scratch = try Scratch()
        let first = scratch.path("first"), second = scratch.path("second"), whole = scratch.path("whole")
        try makeRandomFile(first, bytes: 1_500_000)
        try makeRandomFile(second, bytes: 3_000_001)
        let parts = [try scratch.compress(first, as: container), try scratch.compress(second, as: container)]
        try Self.succeed(["sh", "-c", "cat '\(first)' '\(second)' > '\(whole)' && cat '\(parts[0])' '\(parts[1])' > '\(whole).\(container.rawValue)'"])

        let outcome = try decompress(container, whole + "." + container.rawValue)
        #expect(try outcome.result.get() == 4_500_001)
        #expect(try digest("sha512sum", of: outcome.output) == digest("sha512sum", of: whole))
    }

    @Test("a stored (uncompressed) zip member")
    func storedZip() throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw"), archive = scratch.path("stored.zip")
        try makeRandomFile(original, bytes: 3_000_000)
        try scratch.makeZip(archive, method: "ZIP_STORED", members: ["disk.raw=\(original)"])

        let outcome = try decompress(.zip, archive)
        #expect(try outcome.result.get() == 3_000_000)
        #expect(try digest("sha512sum", of: outcome.output) == digest("sha512sum", of: original))
    }

    @Test("a zip64 archive: sizes, offsets and entry count read from the zip64 records")
    func zip64() throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw"), archive = scratch.path("zip64.zip")
        try makeRandomFile(original, bytes: 2_000_000)
        // zipfile writes zip64 records past its limits; lowered, they make a small zip64 archive. The classic record
        // keeps real values, so its fields are then set to "see zip64", as a writer of a >4 GiB archive sets them.
        let program = """
            import struct, sys, zipfile
            zipfile.ZIP64_LIMIT = 0
            zipfile.ZIP_FILECOUNT_LIMIT = 0
            with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as archive:
                archive.write(sys.argv[1], 'disk.raw')
            with open(sys.argv[2], 'r+b') as f:
                f.seek(-22 + 8, 2)
                f.write(struct.pack('<HHII', 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF))
            """
        try Self.succeed(["/usr/bin/python3", "-c", program, original, archive])

        let outcome = try decompress(.zip, archive)
        #expect(try outcome.result.get() == 2_000_000)
        #expect(try digest("sha512sum", of: outcome.output) == digest("sha512sum", of: original))
    }

    // MARK: - Zip archives that are not one plain file

    @Test("a zip with two members is refused, naming them")
    func twoMembers() throws {
        let scratch = try Scratch()
        let one = scratch.path("one"), archive = scratch.path("two.zip")
        try makeRandomFile(one, bytes: 1000)
        try scratch.makeZip(archive, members: ["one.raw=\(one)", "two.raw=\(one)"])

        let error = try decompress(.zip, archive).error
        #expect(error == .zipNotSingleFile(entries: 2, names: ["one.raw", "two.raw"]))
        #expect(error?.description.contains("2 entries ('one.raw', 'two.raw')") == true)
    }

    @Test("an empty zip is refused")
    func emptyZip() throws {
        let scratch = try Scratch()
        let archive = scratch.path("empty.zip")
        try scratch.makeZip(archive, members: [])
        #expect(try decompress(.zip, archive).error == .zipNotSingleFile(entries: 0, names: []))
    }

    @Test("a zip holding only a directory is refused")
    func onlyDirectory() throws {
        let scratch = try Scratch()
        let archive = scratch.path("directory.zip")
        try scratch.makeZip(archive, members: ["images/"])
        #expect(try decompress(.zip, archive).error == .zipMemberIsDirectory(name: "images/"))
    }

    @Test("a zip member compressed with bzip2 is refused, naming the method")
    func unsupportedMethod() throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw"), archive = scratch.path("bzip2.zip")
        try makeRandomFile(original, bytes: 1000)
        try scratch.makeZip(archive, method: "ZIP_BZIP2", members: ["disk.raw=\(original)"])
        #expect(try decompress(.zip, archive).error == .zipUnsupportedMethod(name: "disk.raw", method: 12))
    }

    @Test("an encrypted zip member is refused")
    func encrypted() throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw"), archive = scratch.path("encrypted.zip")
        try makeRandomFile(original, bytes: 1000)
        try scratch.makeZip(archive, members: ["disk.raw=\(original)"])
        // zipfile cannot encrypt: set the encryption flag in the central directory entry, as an encrypting tool does.
        let program = """
            import sys
            data = bytearray(open(sys.argv[1], 'rb').read())
            data[data.rindex(b'PK\\x01\\x02') + 8] |= 1
            open(sys.argv[1], 'wb').write(data)
            """
        try Self.succeed(["/usr/bin/python3", "-c", program, archive])
        #expect(try decompress(.zip, archive).error == .zipMemberEncrypted(name: "disk.raw"))
    }

    @Test("a central directory entry pointing past the archive is refused as corrupt")
    func headerOffsetOutOfRange() throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw"), archive = scratch.path("hostile.zip")
        try makeRandomFile(original, bytes: 1000)
        try scratch.makeZip(archive, members: ["disk.raw=\(original)"])
        let program = """
            import sys
            data = bytearray(open(sys.argv[1], 'rb').read())
            at = data.rindex(b'PK\\x01\\x02') + 42
            data[at:at + 4] = b'\\xfe\\xff\\xff\\xff'
            open(sys.argv[1], 'wb').write(data)
            """
        try Self.succeed(["/usr/bin/python3", "-c", program, archive])
        let error = try decompress(.zip, archive).error
        #expect(error == .corrupt(.zip, offset: 0xFFFF_FFFE, reason: "no local header where the central directory says 'disk.raw' starts"))
    }

    // MARK: - Damaged input

    @Test("a truncated file is refused as truncated, where it ends", arguments: CompressedContainer.allCases)
    func truncated(container: CompressedContainer) throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw")
        try makeRandomFile(original, bytes: 4_000_000)
        let compressed = try scratch.compress(original, as: container)
        let half = try size(of: compressed) / 2
        try Self.succeed(["truncate", "-s", "\(half)", compressed])

        let error = try decompress(container, compressed).error
        #expect(error == .truncated(container, offset: half))
        #expect(error?.description.contains("ends early") == true)
    }

    @Test("one corrupted byte in the middle is refused as corrupt", arguments: CompressedContainer.allCases)
    func corruptByte(container: CompressedContainer) throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw")
        try makeRandomFile(original, bytes: 4_000_000)
        let compressed = try scratch.compress(original, as: container)
        let flip = "import sys; f = open(sys.argv[1], 'r+b'); n = f.seek(0, 2) // 2; f.seek(n); b = f.read(1)[0]; f.seek(n); f.write(bytes([b ^ 0xFF]))"
        try Self.succeed(["/usr/bin/python3", "-c", flip, compressed])

        let error = try decompress(container, compressed).error
        guard case let .corrupt(which, _, reason)? = error else {
            Issue.record("expected a corrupt \(container) stream, got \(String(describing: error))")
            return
        }
        #expect(which == container)
        #expect(!reason.isEmpty)
    }

    @Test("data after the last gzip member is refused, not dropped")
    func gzipTrailingGarbage() throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw")
        try makeRandomFile(original, bytes: 100_000)
        let compressed = try scratch.compress(original, as: .gzip)
        let end = try size(of: compressed)
        try Self.succeed(["sh", "-c", "head -c 512 /dev/zero >> '\(compressed)'"])

        let error = try decompress(.gzip, compressed).error
        #expect(error == .corrupt(.gzip, offset: end, reason: "data after the last gzip member is not another member"))
    }

    // MARK: - Limits and failures

    @Test(
        "64 MiB of zeros with a 1 MiB limit stops as too large, having written at most the limit",
        arguments: CompressedContainer.allCases)
    func bomb(container: CompressedContainer) throws {
        let scratch = try Scratch()
        let zeros = scratch.path("zeros")
        try Self.succeed(["sh", "-c", "head -c \(64 << 20) /dev/zero > '\(zeros)'"])
        let compressed = try scratch.compress(zeros, as: container)

        let outcome = try decompress(container, compressed, limit: 1 << 20)
        #expect(outcome.error == .tooLarge(limit: 1 << 20))
        #expect(try size(of: outcome.output) <= 1 << 20)
    }

    @Test("a failed write is reported with its errno")
    func writeFailure() throws {
        let scratch = try Scratch()
        let original = scratch.path("disk.raw")
        try makeRandomFile(original, bytes: 100_000)
        let compressed = try scratch.compress(original, as: .zstd)
        #expect(try decompress(.zstd, compressed, into: "/dev/full").error == .writeFailed(.noSpace))
    }
}

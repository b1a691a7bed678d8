// The digest lanes produce what one-shot hashing produces, however the bytes are fed.
import Foundation
import StagingTestSupport
import Testing

@testable import ImportCore

@Suite("Digest pipeline")
struct DigestTests {
    static let pipeline = DigestPipeline(algorithms: [.sha512, .md5], depth: 2)

    /// What sha512sum and md5sum say of the same bytes.
    func expected(_ data: Data) -> [DigestAlgorithm: String] {
        [.sha512: referenceDigest("sha512sum", of: data), .md5: referenceDigest("md5sum", of: data)]
    }

    @Test("chunked feeding equals one-shot hashing", arguments: [0, 1, 1000, 1_048_576 + 17])
    func chunked(size: Int) {
        let data = Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        let stream = Self.pipeline.makeStream()
        var offset = 0
        while offset < size {
            let end = min(size, offset + 65_536 + offset % 3)
            stream.feed(data[offset..<end])
            offset = end
        }
        #expect(stream.finish() == expected(data))
    }

    @Test("finishing does not end the stream: later bytes continue the same digest")
    func finishThenContinue() {
        let first = Data(repeating: 1, count: 5000), second = Data(repeating: 2, count: 7000)
        let stream = Self.pipeline.makeStream()
        stream.feed(first)
        #expect(stream.finish() == expected(first))
        stream.feed(second)
        #expect(stream.finish() == expected(first + second))
    }

    @Test("whole-file digesting reads until the reader returns nothing")
    func wholeFile() {
        let data = Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 >> 3) })
        let result = Self.pipeline.digest { offset, count in
            data.subdata(in: Int(offset)..<min(data.count, Int(offset) + count))
        }
        #expect(result == expected(data))
    }

    @Test(
        "every algorithm this OpenSSL computes matches Python's hashlib (Glance's) on the same bytes",
        arguments: DigestAlgorithm.allCases.filter(\.isAvailable))
    func algorithms(algorithm: DigestAlgorithm) throws {
        let data = Data("abc".utf8) + Data((0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let digest = RunningDigest(algorithm)
        digest.update(data)
        let reference = try python(
            "import hashlib,sys; print(hashlib.new(sys.argv[1], bytes.fromhex(sys.argv[2])).hexdigest())",
            arguments: [algorithm.rawValue, data.hexString])
        #expect(digest.finalizeHex() == reference.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "\(reference)")
    }
}

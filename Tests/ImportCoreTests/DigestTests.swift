// The digest lanes produce what one-shot hashing produces, however the bytes are fed.
import Foundation
@testable import ImportCore
import StagingTestSupport
import Testing

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

    @Test("every supported algorithm matches its reference", arguments: DigestAlgorithm.allCases)
    func algorithms(algorithm: DigestAlgorithm) {
        let digest = RunningDigest(algorithm)
        digest.update(Data("abc".utf8))
        let reference: [DigestAlgorithm: String] = [
            .sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            .sha1: "a9993e364706816aba3e25717850c26c9cd0d89d",
            .md5: "900150983cd24fb0d6963f7d28e17f72",
            .sha384: "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
            .sha512: "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ]
        #expect(digest.finalizeHex() == reference[algorithm])
    }
}

// Digests of staged data, computed off the write path by one thread per algorithm.
import CLinux
import COpenSSL
import Foundation
import Synchronization

/// A hash algorithm Glance's `hashing_algorithm` may name, by Python hashlib's name (what Glance records as
/// `os_hash_algo`), and md5, Glance's `checksum`. hashlib's variable-length shake digests are left out: Glance's
/// `hexdigest()` cannot finish them either.
public enum DigestAlgorithm: String, CaseIterable, Sendable {
    case sha512, sha384, sha256, sha224, sha1, md5
    case sha512_224, sha512_256, sha3_224, sha3_256, sha3_384, sha3_512, blake2b, blake2s, sm3, ripemd160

    /// The name OpenSSL's EVP interface knows it by.
    var opensslName: String {
        switch self {
        case .blake2b: return "blake2b512"
        case .blake2s: return "blake2s256"
        default: return rawValue.replacingOccurrences(of: "_", with: "-")
        }
    }

    /// Whether the system OpenSSL computes it (sm3 and ripemd160 depend on its build and providers).
    public var isAvailable: Bool { EVP_get_digestbyname(opensslName) != nil }

    /// The hex digest of `data` in one call (e.g. a cache key that must not hold the secret it stands for).
    public func hex(of data: Data) -> String {
        let digest = RunningDigest(self)
        digest.update(data)
        return digest.finalizeHex()
    }
}

/// One running digest, through the system OpenSSL's EVP interface.
final class RunningDigest {
    private let context: OpaquePointer

    init(_ algorithm: DigestAlgorithm) {
        context = EVP_MD_CTX_new()
        EVP_DigestInit_ex(context, EVP_get_digestbyname(algorithm.opensslName), nil)
    }

    deinit { EVP_MD_CTX_free(context) }

    func update(_ data: Data) {
        data.withUnsafeBytes { bytes in _ = EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) }
    }

    /// The digest of everything so far; the running state is left as it was, so more bytes may follow.
    func finalizeHex() -> String {
        let copy = EVP_MD_CTX_new()
        defer { EVP_MD_CTX_free(copy) }
        EVP_MD_CTX_copy_ex(copy, context)
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(copy, &digest, &length)
        return digest.prefix(Int(length)).map { String(format: "%02x", $0) }.joined()
    }
}

/// The digests of one staged file's bytes, fed in order by the write path and finished at seal.
///
/// Each algorithm's state is touched only by that algorithm's lane thread (jobs for one stream are queued in
/// order on every lane), which is why the class is `@unchecked Sendable`.
public final class DigestStream: @unchecked Sendable {
    fileprivate let states: [RunningDigest]
    fileprivate let pipeline: DigestPipeline
    private let cancelled = Atomic<Bool>(false)

    fileprivate init(pipeline: DigestPipeline) {
        self.pipeline = pipeline
        self.states = pipeline.algorithms.map(RunningDigest.init)
    }

    fileprivate var isCancelled: Bool { cancelled.load(ordering: .relaxed) }

    /// Queues `data` on every lane. Blocks while a lane is too far behind: that is the write path's back-pressure.
    public func feed(_ data: Data) {
        for (index, lane) in pipeline.lanes.enumerated() {
            lane.queue.put(.update(self, index, data))
        }
    }

    /// Waits until every lane has digested what was fed, and returns the hex digests.
    public func finish() -> [DigestAlgorithm: String] {
        let ticket = FinishTicket()
        for (index, lane) in pipeline.lanes.enumerated() {
            lane.queue.put(.finish(self, index, ticket))
        }
        return ticket.wait(for: pipeline.lanes.count)
    }

    /// Stops digesting this stream: queued chunks are dropped by the lanes.
    public func cancel() {
        cancelled.store(true, ordering: .relaxed)
    }
}

/// Collects one result per lane for `DigestStream.finish()`.
private final class FinishTicket: Sendable {
    private let results = Mutex<[DigestAlgorithm: String]>([:])
    private let done = DispatchSemaphore(value: 0)

    func deliver(_ algorithm: DigestAlgorithm, _ hex: String) {
        results.withLock { $0[algorithm] = hex }
        done.signal()
    }

    func wait(for count: Int) -> [DigestAlgorithm: String] {
        for _ in 0..<count { done.wait() }
        return results.withLock { $0 }
    }
}

/// One thread per algorithm, shared by every stream of a staging area, so both digests of a chunk run in
/// parallel on different cores while the FUSE thread that received it is already serving the next request.
public final class DigestPipeline: Sendable {
    fileprivate enum Job: Sendable {
        case update(DigestStream, Int, Data)
        case finish(DigestStream, Int, FinishTicket)
        case stop
    }

    fileprivate final class Lane: Sendable {
        let algorithm: DigestAlgorithm
        let queue: BoundedQueue<Job>

        init(algorithm: DigestAlgorithm, depth: Int) {
            self.algorithm = algorithm
            self.queue = BoundedQueue(capacity: depth)
        }

        func run() {
            while true {
                switch queue.take() {
                case let .update(stream, index, data):
                    if !stream.isCancelled { stream.states[index].update(data) }
                case let .finish(stream, index, ticket):
                    ticket.deliver(algorithm, stream.states[index].finalizeHex())
                case .stop:
                    return
                }
            }
        }
    }

    public let algorithms: [DigestAlgorithm]
    fileprivate let lanes: [Lane]

    /// - Parameters:
    ///   - algorithms: the digests every stream computes (duplicates are computed once).
    ///   - depth: chunks a lane may have queued before `feed` blocks; bounds the memory held for hashing.
    public init(algorithms: [DigestAlgorithm], depth: Int = 8) {
        var unique: [DigestAlgorithm] = []
        for algorithm in algorithms where !unique.contains(algorithm) { unique.append(algorithm) }
        self.algorithms = unique
        self.lanes = unique.map { Lane(algorithm: $0, depth: depth) }
        for lane in lanes {
            Thread {
                clinux_name_thread("digest-\(lane.algorithm.rawValue)")
                lane.run()
            }.start()
        }
    }

    public func makeStream() -> DigestStream { DigestStream(pipeline: self) }

    /// Ends the lane threads once they have drained their queues.
    public func shutdown() {
        for lane in lanes { lane.queue.put(.stop) }
    }

    /// Digests a whole file (when write-time hashing was stale or off), reading it in 1 MiB chunks.
    public func digest(upTo limit: Int64 = .max, of read: (Int64, Int) throws -> Data) rethrows -> [DigestAlgorithm: String] {
        let stream = makeStream()
        var offset: Int64 = 0
        while offset < limit {
            let chunk = try read(offset, Int(min(1 << 20, limit - offset)))
            if chunk.isEmpty { break }
            stream.feed(chunk)
            offset += Int64(chunk.count)
        }
        return stream.finish()
    }
}

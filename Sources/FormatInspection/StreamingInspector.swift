// Streaming inspection on the write path: keeps only the bytes the checks still need, in bounded memory.

/// Incremental mode, fed by the write path with the bytes of each write, in bounded memory. A value type the
/// caller keeps under its own lock.
public struct StreamingInspector: Sendable {
    private let memoryLimit: Int
    private let options: ImageFormatOptions
    private var store = RegionStore()
    /// Regions the checks asked for and do not have yet.
    private var wanted: [ByteRange] = []
    /// How many bytes before the end a check needs (more than the caller's tail gives).
    private var endCount = 0
    /// The last bytes written at the highest offset so far, kept while `endCount` asks for them.
    private var endWindow: [UInt8] = []
    private var highWater: Int64 = 0
    /// Set when a rewrite of kept bytes could not be kept.
    private var stale = false

    public init(memoryLimit: Int = 1 << 20, options: ImageFormatOptions = ImageFormatOptions()) {
        self.memoryLimit = max(memoryLimit, 0)
        self.options = options
        reevaluate()
    }

    /// Cheap: whether any byte of [offset, offset+count) is in a region the checks still need. Lets a caller that does not have the bytes in hand (spliced writes) skip reading them back.
    public func wants(offset: Int64, count: Int) -> Bool {
        guard count > 0, offset >= 0 else { return false }
        if endCount > 0 && offset + Int64(count) > highWater - Int64(endCount) { return true }
        // Kept bytes count too: a rewrite must replace them, or streaming would judge stale bytes.
        return wanted.contains { $0.overlaps(offset, count) } || store.overlaps(offset, count)
    }

    /// Keeps the parts of a write the checks need; writes may come in any order.
    public mutating func feed<Bytes: Collection<UInt8>>(_ bytes: Bytes, at offset: Int64) {
        guard !bytes.isEmpty, offset >= 0 else { return }
        let end = offset + Int64(bytes.count)
        defer { highWater = max(highWater, end) }
        // Most writes are of data no check looks at: do not even copy them.
        guard wants(offset: offset, count: bytes.count) else { return }
        let data = Array(bytes)
        // Regions found while keeping this write may lie in it too (a header followed by what it points
        // to), so keep going until nothing new is asked of it.
        var kept = Set<ByteRange>()
        while true {
            let ranges = (wanted + store.ranges).filter { $0.overlaps(offset, data.count) && !kept.contains($0) }
            if ranges.isEmpty { break }
            for range in ranges {
                kept.insert(range)
                let start = max(range.offset, offset), stop = min(range.end, end)
                let slice = data[Int(start - offset)..<Int(stop - offset)]
                guard store.byteCount + slice.count <= memoryLimit || store.bytes(start, slice.count) != nil else {
                    // Kept bytes this write replaces would now be stale: only whole-file mode can judge.
                    if store.overlaps(start, slice.count) { stale = true }
                    continue
                }
                store.insert(slice, at: start)
            }
            reevaluate()
        }
        updateEndWindow(data, offset: offset, end: end)
    }

    /// What is known so far: `.undetermined`, `.detected(InspectedImage)` as soon as a header has arrived (virtual size from the header; raw's virtual size is provisional), or `.refused(InspectionRefusal)` as soon as the kept bytes prove the image unsafe.
    public var state: StreamingState {
        Evaluation(store: store, size: nil, provisionalSize: highWater, options: options).state
    }

    /// The final verdict once the file is complete, from the kept bytes plus `tail` (the file's last ≤ 512 bytes, which the caller reads; VHD keeps its footer there). Nil when a region the checks need was not kept (it was written before it was known to be needed, or beyond `memoryLimit`): then the caller runs whole-file mode.
    public func finish(size: Int64, tail: [UInt8]) -> InspectionVerdict? {
        guard !stale else { return nil }
        let size = max(size, 0)
        var final = store
        if highWater == size, !endWindow.isEmpty {
            final.insert(endWindow, at: size - Int64(endWindow.count))
        }
        let tail = tail.suffix(Int(min(size, 512)))
        final.insert(tail, at: size - Int64(tail.count))
        return Evaluation(store: final, size: size, provisionalSize: size, options: options).verdict
    }

    // MARK: - Keeping

    /// What the checks need depends only on the kept bytes, so this runs only when they change.
    private mutating func reevaluate() {
        let evaluation = Evaluation(store: store, size: nil, provisionalSize: highWater, options: options)
        wanted = evaluation.missingRegions
        // The caller's tail covers the last 512 bytes; only checks that need more make us keep an end window.
        endCount = evaluation.endCount > 512 ? min(evaluation.endCount, memoryLimit) : 0
        if endWindow.count > endCount { endWindow.removeFirst(endWindow.count - endCount) }
    }

    /// Follows the end of the file as it grows; an earlier write at the end's place makes it unknown.
    private mutating func updateEndWindow(_ data: [UInt8], offset: Int64, end: Int64) {
        guard endCount > 0 else { return }
        if end >= highWater {
            if offset <= highWater, offset >= highWater - Int64(endWindow.count) {
                endWindow.removeLast(Int(highWater - offset))
                endWindow += data
            } else {
                endWindow = data
            }
            if endWindow.count > endCount { endWindow.removeFirst(endWindow.count - endCount) }
        } else if end > highWater - Int64(endWindow.count) {
            // A rewrite inside the window: patch it in place.
            let windowStart = highWater - Int64(endWindow.count)
            for (index, byte) in data.enumerated() where offset + Int64(index) >= windowStart {
                endWindow[Int(offset + Int64(index) - windowStart)] = byte
            }
        }
    }
}

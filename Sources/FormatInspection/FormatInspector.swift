// Whole-file inspection: the authoritative verdict at import, reading only the regions the checks need.

public enum FormatInspector {
    /// Each round reads what the checks asked for; chains of pointers are short (vhdx: four), so this
    /// bound is only reached by a misbehaving `read`.
    static let maximumRounds = 16

    /// Whole-file mode, authoritative: reads only the regions it needs through `read` (offset, count → bytes; fewer bytes at EOF).
    public static func inspect(
        size: Int64, options: ImageFormatOptions = ImageFormatOptions(),
        read: (_ offset: Int64, _ count: Int) throws -> [UInt8]
    ) rethrows -> InspectionVerdict {
        var store = RegionStore()
        var size = max(size, 0)
        for _ in 0..<maximumRounds {
            let evaluation = Evaluation(store: store, size: size, provisionalSize: size, options: options)
            if let verdict = evaluation.verdict { return verdict }
            for range in evaluation.missingRegions where range.offset < size {
                let count = Int(min(Int64(range.count), size - range.offset))
                let bytes = try read(range.offset, count)
                // A short read means the file ended early: believe it, so every check sees the same end.
                if bytes.count < count { size = range.offset + Int64(bytes.count) }
                store.insert(bytes.prefix(count), at: range.offset)
            }
        }
        return .refused(InspectionRefusal(format: nil, reason: "image could not be read consistently; refused"))
    }
}

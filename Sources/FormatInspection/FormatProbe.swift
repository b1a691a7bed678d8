// One format family's recognition and safety checks, and the rules for combining their answers.

/// A format recognised from the bytes, before its safety checks.
struct Detection: Sendable, Equatable {
    var format: ImageFormat
    var virtualSize: Int64
    /// The variant qemu will read it as, where a format has several (a VMDK's create type).
    var subformat: String? = nil
}

/// Recognises one format family and checks an image of it. Both steps read only through the reader, so
/// whole-file and streaming inspection run the same code.
protocol FormatProbe: Sendable {
    /// The format a refusal thrown while detecting is reported as.
    var family: ImageFormat { get }
    /// The format and virtual size when the bytes are this family's, nil when they are not.
    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection?
    /// Throws `.refused` when the image is unsafe. Checks that need only the header run first, so a
    /// refusal is known as early as the bytes allow.
    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop)
}

/// Refuses virtual sizes no real disk has; they are hostile or corrupt headers.
let maximumVirtualSize: Int64 = 1 << 50

/// The virtual size of a disk that is the file itself (raw, a partitioned disk, an ISO), as qemu reads it: the
/// file's size in whole 512-byte sectors, a partial last sector counting as one.
func rawVirtualSize(_ fileSize: Int64) -> Int64 {
    fileSize > Int64.max - 511 ? fileSize : (fileSize + 511) / 512 * 512
}

func checkVirtualSize(_ detection: Detection) throws(ProbeStop) {
    guard detection.virtualSize >= 0, detection.virtualSize <= maximumVirtualSize else {
        throw .refused("\(detection.format.rawValue) image declares an absurd virtual size; refused")
    }
}

/// Every probe's answer on the same kept bytes, and what follows from them.
struct Evaluation {
    static let probes: [any FormatProbe] = [
        QCOW2Probe(), QEDProbe(), VMDKProbe(), VHDProbe(), VHDXProbe(), VDIProbe(), ISOProbe(),
        PartitionTableProbe(), LUKSProbe(), ContainerProbe(),
    ]

    enum Outcome {
        case noMatch
        /// Not yet known whether this family matches.
        case undecided(ProbeStop)
        /// Matched; `problem` once a check refused, `pending` while a check still waits for bytes.
        case matched(Detection, problem: InspectionRefusal?, pending: ProbeStop?)
    }

    let outcomes: [Outcome]
    let provisionalSize: Int64

    init(store: RegionStore, size: Int64?, provisionalSize: Int64, options: ImageFormatOptions) {
        let reader = RegionReader(store: store, size: size, provisionalSize: provisionalSize, options: options)
        self.provisionalSize = provisionalSize
        outcomes = Self.probes.map { probe in
            let detection: Detection
            do throws(ProbeStop) {
                guard let found = try probe.detect(reader) else { return .noMatch }
                detection = found
            } catch {
                if case .refused(let reason) = error {
                    let refusal = InspectionRefusal(format: probe.family, reason: reason)
                    return .matched(Detection(format: probe.family, virtualSize: 0), problem: refusal, pending: nil)
                }
                return .undecided(error)
            }
            do throws(ProbeStop) {
                try probe.check(detection, reader)
                return .matched(detection, problem: nil, pending: nil)
            } catch {
                if case .refused(let reason) = error {
                    let refusal = InspectionRefusal(format: detection.format, reason: reason)
                    return .matched(detection, problem: refusal, pending: nil)
                }
                return .matched(detection, problem: nil, pending: error)
            }
        }
    }

    /// What the checks still wait for.
    var stops: [ProbeStop] {
        outcomes.compactMap {
            switch $0 {
            case .noMatch: nil
            case .undecided(let stop): stop
            case .matched(_, _, let pending): pending
            }
        }
    }

    var missingRegions: [ByteRange] {
        stops.compactMap { if case .missing(let range) = $0 { range } else { nil } }
    }

    /// How many bytes before the end a check needs, when it needs them.
    var endCount: Int {
        stops.reduce(0) { if case .needsEnd(let count) = $1 { max($0, count) } else { $0 } }
    }

    private var matches: [(Detection, InspectionRefusal?)] {
        outcomes.compactMap { if case .matched(let d, let problem, _) = $0 { (d, problem) } else { nil } }
    }

    /// Formats whose disk may itself hold a partition table at its start.
    private static let partitionHolders: Set<ImageFormat> = [.iso, .vhd]

    private var partitionHolderUndecided: Bool {
        zip(Self.probes, outcomes).contains { probe, outcome in
            if Self.partitionHolders.contains(probe.family), case .undecided = outcome { true } else { false }
        }
    }

    /// A bootable (hybrid) ISO also carries an MBR or GPT, and a fixed VHD is a raw disk with a footer
    /// appended; as in Glance, such an image is the ISO or VHD it is. Any other pair of formats is a
    /// polyglot and refused.
    private static func significant(_ matches: [(Detection, InspectionRefusal?)]) -> [(Detection, InspectionRefusal?)] {
        guard matches.contains(where: { partitionHolders.contains($0.0.format) }) else { return matches }
        return matches.filter { $0.0.format != .gpt && $0.0.format != .mbr }
    }

    private static func polyglot(_ matches: [(Detection, InspectionRefusal?)]) -> InspectionRefusal {
        let names = matches.map(\.0.format.rawValue).sorted().joined(separator: ", ")
        return InspectionRefusal(format: nil, reason: "image matches more than one format (\(names)); refused")
    }

    /// The final answer, when nothing is missing.
    var verdict: InspectionVerdict? {
        guard stops.isEmpty else { return nil }
        let found = Self.significant(matches)
        if found.count > 1 { return .refused(Self.polyglot(found)) }
        guard let (detection, problem) = found.first else {
            return .accepted(InspectedImage(format: .raw, virtualSize: rawVirtualSize(provisionalSize)))
        }
        if let problem { return .refused(problem) }
        return .accepted(InspectedImage(format: detection.format, virtualSize: detection.virtualSize, subformat: detection.subformat))
    }

    /// What is known so far, for streaming.
    var state: StreamingState {
        var found = Self.significant(matches)
        // A partition table's problem is moot if the ISO or VHD it may belong to is not known yet.
        if partitionHolderUndecided {
            found = found.map { ($0.0.format == .gpt || $0.0.format == .mbr) ? ($0.0, nil) : $0 }
        }
        if found.count > 1 { return .refused(Self.polyglot(found)) }
        if let (detection, problem) = found.first {
            if let problem { return .refused(problem) }
            return .detected(InspectedImage(format: detection.format, virtualSize: detection.virtualSize, subformat: detection.subformat))
        }
        let waitsOnlyForEnd = stops.allSatisfy { if case .needsEnd = $0 { true } else { false } }
        return waitsOnlyForEnd ? .detected(InspectedImage(format: .raw, virtualSize: rawVirtualSize(provisionalSize))) : .undetermined
    }
}

// Mutations of the oracle's base images, where the inspector's and qemu's readings can part: header fields and
// the sectors of tables set to boundary values, flipped bytes, truncation and extension, vmdk descriptor text.
import Foundation
import StagingTestSupport

@testable import FormatInspection

enum OracleMutation {
    /// Offsets of the sectors that are not all zeros (headers, tables, descriptors and data), at most 4096 of them:
    /// where a mutation lands when it is not in the first or last 4 KiB.
    static func busySectors(_ bytes: [UInt8]) -> [Int] {
        var busy: [Int] = []
        var at = 0
        while at < bytes.count, busy.count < 4096 {
            if bytes[at..<min(bytes.count, at + 512)].contains(where: { $0 != 0 }) { busy.append(at) }
            at += 512
        }
        return busy
    }

    static func boundaries(size: Int) -> [UInt64] {
        let size = UInt64(size)
        return [
            0, 1, 2, 0x1FF, 0x200, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 32, 1 << 50, (1 << 50) + 1,
            1 << 62, .max, .max - 1, size &- 1, size, size + 1, size + 512, size / 2, size / 512,
        ]
    }

    /// A header field: its offset (negative: from the end of the file), width in bytes, and byte order.
    struct Field {
        var offset: Int
        var width: Int
        var bigEndian: Bool
    }

    static func fields(_ list: [(Int, Int)], bigEndian: Bool) -> [Field] { list.map { Field(offset: $0.0, width: $0.1, bigEndian: bigEndian) } }

    /// The fields of each format's headers that say where things are and how big they are (qemu's structs).
    static let headerFields: [ImageFormat: [Field]] = {
        let vhdFooter: [(Int, Int)] = [(8, 4), (12, 4), (16, 8), (28, 4), (40, 8), (48, 8), (56, 2), (58, 1), (59, 1), (60, 4), (64, 4)]
        let vhdxFields: [(Int, Int)] = [(8, 8), (64, 2), (66, 2), (68, 4), (72, 8)]
        let vhdxHeader: [(Int, Int)] = vhdxFields.flatMap { [(64 * 1024 + $0.0, $0.1), (128 * 1024 + $0.0, $0.1)] }
        let vhdxRegionFields: [Int] = [8, 32, 40, 44, 64, 72, 76]
        let vhdxRegions: [(Int, Int)] = vhdxRegionFields.flatMap { [(192 * 1024 + $0, 8), (256 * 1024 + $0, 8)] }
        let vhdFooterCopy: [(Int, Int)] = vhdFooter.map { ($0.0 - 512, $0.1) }
        let luksHeader: [(Int, Int)] = [(6, 2), (104, 4), (108, 4), (164, 4)]
        // Each key slot's state, iterations, key material offset and stripes.
        let luksSlots: [(Int, Int)] = (0..<8).flatMap { (slot: Int) -> [(Int, Int)] in [0, 4, 40, 44].map { (208 + 48 * slot + $0, 4) } }
        let vhdDynamic: [(Int, Int)] = [(520, 8), (528, 8), (536, 4), (540, 4), (544, 4), (552, 8), (1088, 4), (1096, 4), (1104, 8)]
        return [
            .qcow2: fields(
                [
                    (4, 4), (8, 8), (16, 4), (20, 4), (24, 8), (32, 4), (36, 4), (40, 8), (48, 8), (56, 4), (60, 4), (64, 8),
                    (72, 8), (80, 8), (88, 8), (96, 4), (100, 4), (104, 1), (112, 4), (116, 4),
                ], bigEndian: true),
            .qed: fields([(4, 4), (8, 4), (12, 4), (16, 8), (24, 8), (32, 8), (40, 8), (48, 8), (56, 4), (60, 4)], bigEndian: false),
            .vmdk: fields([(4, 4), (8, 4), (12, 8), (20, 8), (28, 8), (36, 8), (44, 4), (48, 8), (56, 8), (64, 8), (72, 1), (77, 2)], bigEndian: false),
            .vhd: fields(vhdFooter + vhdFooterCopy + vhdDynamic, bigEndian: true),
            .vdi: fields(
                [
                    (0x40, 4), (0x44, 4), (0x48, 4), (0x4C, 4), (0x50, 4), (0x154, 4), (0x158, 4), (0x15C, 4), (0x160, 4),
                    (0x164, 4), (0x168, 4), (0x170, 8), (0x178, 4), (0x17C, 4), (0x180, 4), (0x184, 4), (0x1A8, 8),
                ], bigEndian: false),
            .vhdx: fields(vhdxHeader + vhdxRegions, bigEndian: false),
            .iso: fields([(32768 + 80, 4), (32768 + 84, 4), (32768 + 128, 2), (32768 + 130, 2), (32768, 1), (32768 + 2048, 1)], bigEndian: false),
            .gpt: fields(
                [
                    (446 + 4, 1), (446 + 8, 4), (446 + 12, 4), (512 + 24, 8), (512 + 32, 8), (512 + 40, 8), (512 + 48, 8),
                    (512 + 72, 8), (512 + 80, 4), (512 + 84, 4), (1024 + 32, 8), (1024 + 40, 8),
                ], bigEndian: false),
            .luks: fields(luksHeader + luksSlots, bigEndian: true),
            .mbr: fields([(446 + 4, 1), (446 + 8, 4), (446 + 12, 4), (462 + 4, 1), (462 + 8, 4), (462 + 12, 4), (0x10, 1), (0x15, 1)], bigEndian: false),
        ]
    }()

    /// vhd creator applications: qemu sizes a disk by its CHS geometry unless the creator is one of these.
    static let vhdCreators = ["win ", "qem2", "d2v ", "CTXS", "tap\0", "vpc ", "qemu", "vs  "]

    /// Sets one of the format's header fields to a boundary value or a neighbour of its own.
    static func setField(_ bytes: inout [UInt8], format: ImageFormat, _ rng: inout SplitMix) -> String? {
        guard let field = headerFields[format]?.randomElement(using: &rng) else { return nil }
        let at = field.offset < 0 ? bytes.count + field.offset : field.offset
        guard at >= 0, at + field.width <= bytes.count else { return nil }
        if format == .vhd, field.width == 4, (at % 512) == 28, Bool.random(using: &rng) {
            bytes.replaceSubrange(at..<(at + 4), with: Array(vhdCreators.randomElement(using: &rng)!.utf8))
            return "vhd creator at \(at)"
        }
        let indices = (0..<field.width).map { at + (field.bigEndian ? $0 : field.width - 1 - $0) }
        let current = indices.reduce(UInt64(0)) { $0 << 8 | UInt64(bytes[$1]) }
        let value =
            Bool.random(using: &rng)
            ? boundaries(size: bytes.count).randomElement(using: &rng)!
            : current &+ [1, .max, 2, .max - 1, 512, 0 &- 512, current, 7].randomElement(using: &rng)!
        for (index, position) in indices.enumerated() { bytes[position] = UInt8(truncatingIfNeeded: value >> UInt64(8 * (field.width - 1 - index))) }
        return "field \(at) \(field.width * 8)-bit \(current) → \(value & (field.width == 8 ? .max : (1 << UInt64(8 * field.width)) - 1))"
    }

    /// Applies one to three mutations; returns the bytes and what was done, for the report.
    static func mutate(_ base: [UInt8], format: ImageFormat, busy: [Int], _ rng: inout SplitMix) -> ([UInt8], String) {
        var bytes = base
        var done: [String] = []
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            let at = hotOffset(bytes.count, busy: busy, &rng)
            switch Int.random(in: 0..<13, using: &rng) {
            case 10, 11, 12:
                if let field = setField(&bytes, format: format, &rng) { done.append(field) } else { continue }
            case 0, 1:
                guard at < bytes.count else { continue }
                let mask = UInt8.random(in: 1...255, using: &rng)
                bytes[at] ^= mask
                done.append("xor \(at) \(mask)")
            case 2, 3, 4:
                let width = [1, 2, 4, 8].randomElement(using: &rng)!
                let aligned = at - at % width
                let value = boundaries(size: bytes.count).randomElement(using: &rng)!
                let bigEndian = Bool.random(using: &rng)
                for index in 0..<width where aligned + index < bytes.count {
                    let shift = 8 * (bigEndian ? width - 1 - index : index)
                    bytes[aligned + index] = UInt8(truncatingIfNeeded: value >> UInt64(shift))
                }
                done.append("set \(aligned) \(width * 8)-bit \(bigEndian ? "be" : "le") \(value)")
            case 5:
                let cut = [
                    bytes.count - 1, bytes.count - 512, bytes.count / 2, bytes.count - bytes.count % 4096 - 4096,
                    Int.random(in: 0...bytes.count, using: &rng), at,
                ].randomElement(using: &rng)!
                bytes.removeLast(bytes.count - max(0, min(cut, bytes.count)))
                done.append("truncate \(bytes.count)")
            case 6:
                let count = [1, 511, 512, 4096, 65536, Int.random(in: 1...100_000, using: &rng)].randomElement(using: &rng)!
                let random = Bool.random(using: &rng)
                bytes += (0..<count).map { _ in random ? UInt8.random(in: 0...255, using: &rng) : 0 }
                done.append("extend \(count) \(random ? "random" : "zero")")
            case 7:
                // A whole sector zeroed or copied from another (tables moved, headers duplicated).
                let start = at - at % 512
                let from = busy.randomElement(using: &rng) ?? 0
                let zero = Bool.random(using: &rng)
                for index in 0..<512 where start + index < bytes.count {
                    bytes[start + index] = zero ? 0 : (from + index < bytes.count ? base[from + index] : 0)
                }
                done.append(zero ? "zero sector \(start)" : "copy sector \(from) to \(start)")
            default:
                if let edit = descriptorEdit(&bytes, &rng) { done.append(edit) } else { continue }
            }
        }
        // qemu refuses a vhd whose checksums are wrong: half the time, make them right, so qemu reads the fields.
        if format == .vhd, Bool.random(using: &rng) {
            fixVHDChecksums(&bytes)
            done.append("vhd checksums fixed")
        }
        return (bytes, done.isEmpty ? "unchanged" : done.joined(separator: ", "))
    }

    /// Sets the footers' (at 0 and at the end) and the dynamic header's checksums: the one's complement of the sum of
    /// their bytes.
    static func fixVHDChecksums(_ bytes: inout [UInt8]) {
        func fix(_ start: Int, length: Int, checksumAt: Int, cookie: String) {
            guard start >= 0, start + length <= bytes.count, bytes[start..<(start + 8)].elementsEqual(cookie.utf8) else { return }
            let at = start + checksumAt
            bytes.replaceSubrange(at..<(at + 4), with: [0, 0, 0, 0])
            let sum = ~bytes[start..<(start + length)].reduce(UInt32(0)) { $0 &+ UInt32($1) }
            bytes.replaceSubrange(at..<(at + 4), with: (0..<4).map { UInt8(truncatingIfNeeded: sum >> (24 - 8 * $0)) })
        }
        fix(0, length: 512, checksumAt: 64, cookie: "conectix")
        fix(bytes.count - 512, length: 512, checksumAt: 64, cookie: "conectix")
        fix(512, length: 1024, checksumAt: 36, cookie: "cxsparse")
    }

    /// An offset in the first or last 4 KiB, in a busy sector, or anywhere.
    static func hotOffset(_ count: Int, busy: [Int], _ rng: inout SplitMix) -> Int {
        guard count > 0 else { return 0 }
        switch Int.random(in: 0..<8, using: &rng) {
        case 0, 1, 2: return Int.random(in: 0..<min(count, 4096), using: &rng)
        case 3: return max(0, count - Int.random(in: 1...min(count, 4096), using: &rng))
        case 4, 5, 6: return min(count - 1, (busy.randomElement(using: &rng) ?? 0) + Int.random(in: 0..<512, using: &rng))
        default: return Int.random(in: 0..<count, using: &rng)
        }
    }

    /// Edits of an embedded vmdk descriptor (at 512, as qemu writes it), kept in place: what qemu and Glance read there.
    static let descriptorEdits: [(String, String)] = [
        ("createType=\"monolithicSparse\"", "createType=\"monolithicFlat\""),
        ("createType=\"monolithicSparse\"", "createType=\"twoGbMaxExtentSparse\""),
        ("createType=\"monolithicSparse\"", "createType=\"vmfs\""),
        ("createType=\"monolithicSparse\"", "createType=\"streamOptimized\""),
        ("createType=\"streamOptimized\"", "createType=\"monolithicSparse\""),
        ("createType=\"streamOptimized\"", "createType=\"vmfsSparse\""),
        ("parentCID=ffffffff", "parentCID=12345678"),
        ("parentCID=ffffffff", "parentCID=ffffffff\nparentFileNameHint=\"/etc/hostname\""),
        ("parentCID", "parentFileNameHint=\"x\"\n#"),
        (" SPARSE ", " FLAT "), (" SPARSE ", " VMFS "), (" SPARSE ", " ZERO "), (" SPARSE ", " VMFSSPARSE "),
        (" SPARSE \"", " SPARSE \"/etc/"), ("RW ", "RDONLY "), ("RW ", "NOACCESS "), ("RW ", "RW 1"),
        ("\n# The Disk Data Base", "\nRW 8 FLAT \"/etc/hostname\" 0\n# The Disk Data Base"),
        ("\n# The Disk Data Base", "\nRW 8 SPARSE \"other.vmdk\"\n# The Disk Data Base"),
        ("# Extent description", "# Extent description\0"), ("version=1", "version=3"), ("version=1", "version=2"),
        ("ddb.virtualHWVersion", "ddb.parentFileNameHint"), ("\n", "\r\n"), ("=", " = "),
    ]

    static func descriptorEdit(_ bytes: inout [UInt8], _ rng: inout SplitMix) -> String? {
        let marker = [UInt8]("# Disk DescriptorFile".utf8)
        guard bytes.count > 1024, Array(bytes[512..<(512 + marker.count)]) == marker else { return nil }
        let end = min(bytes[512...].firstIndex(of: 0) ?? bytes.count, 512 + 20 * 512)
        var text = String(decoding: bytes[512..<end], as: UTF8.self)
        let (from, to) = descriptorEdits.randomElement(using: &rng)!
        guard let range = text.range(of: from) else { return nil }
        text.replaceSubrange(range, with: to)
        let edited = [UInt8](text.utf8)
        let room = min(bytes.count - 512, 20 * 512)
        guard edited.count <= room else { return nil }
        bytes.replaceSubrange(512..<(512 + room), with: edited + [UInt8](repeating: 0, count: room - edited.count))
        return "descriptor \(from.debugDescription) → \(to.debugDescription)"
    }
}

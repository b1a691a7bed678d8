// qcow2 (versions 2 and 3): virtual size from the header; refuses backing files, external data files
// and features this inspector does not know.

struct QCOW2Probe: FormatProbe {
    var family: ImageFormat { .qcow2 }

    static let magic: [UInt8] = [0x51, 0x46, 0x49, 0xFB]  // "QFI\xfb"
    static let version2HeaderLength = 72
    static let version3HeaderLength = 104
    /// Incompatible feature bits qemu 7.2 knows: 0 dirty, 1 corrupt, 2 external data file, 3 compression type,
    /// 4 extended L2 entries (oslo.utils knows only 0–3; docs/image-safety.md says why bit 4 is accepted).
    static let knownIncompatibleFeatures: UInt64 = 0b1_1111
    static let externalDataFileFeature: UInt64 = 1 << 2
    static let compressionTypeFeature: UInt64 = 1 << 3
    static let extendedL2Feature: UInt64 = 1 << 4
    /// qemu splits an extended-L2 cluster into 32 subclusters of at least 512 bytes (qcow2_do_open).
    static let minimumExtendedL2ClusterBits: UInt32 = 14
    static let dataFileExtension: UInt32 = 0x4441_5441  // "DATA"
    static let cryptoHeaderExtension: UInt32 = 0x0537_BE77
    /// Header extensions beyond this are not read; qemu's own stay far below it.
    static let maximumExtensionArea = 65536

    func detect(_ reader: RegionReader) throws(ProbeStop) -> Detection? {
        let head = try reader.view(0, Head.length)
        guard head.matches(Self.magic) else { return nil }
        // qemu counts whole sectors, dropping a partial last one.
        return Detection(format: .qcow2, virtualSize: Int64(clamping: head.be64(24) / 512 * 512))
    }

    func check(_ detection: Detection, _ reader: RegionReader) throws(ProbeStop) {
        let head = try reader.view(0, Head.length)
        guard head.count >= Self.version2HeaderLength else {
            throw .refused("qcow2 header is truncated (\(head.count) of \(Self.version2HeaderLength) bytes); refused")
        }
        let version = head.be32(4)
        guard version == 2 || version == 3 else { throw .refused("qcow2 version \(version) is not supported; refused") }
        let clusterBits = head.be32(20)
        guard (9...21).contains(clusterBits) else {
            throw .refused("qcow2 cluster_bits \(clusterBits) is out of range (9–21); refused")
        }
        let clusterSize = 1 << Int(clusterBits)
        try checkVirtualSize(detection)
        if head.be64(8) != 0 { throw .refused("qcow2 image has a backing file (backing_file_offset \(head.be64(8))); refused") }
        // Encrypted images are self-contained and qemu-img writes them (AES, or LUKS in the file): their metadata
        // is plain and checked as any other's. A LUKS one needs its crypto header extension: without it
        // qemu-img 7.2 crashes (SIGSEGV; the differential oracle found it).
        let cryptMethod = head.be32(32)
        guard cryptMethod <= 2 else { throw .refused("qcow2 crypt_method \(cryptMethod) is not none (0), AES (1) or LUKS (2); refused") }

        var headerLength = Self.version2HeaderLength
        var features: UInt64 = 0
        if version == 3 {
            guard head.count >= Self.version3HeaderLength else {
                throw .refused("qcow2 version 3 header is truncated (\(head.count) of \(Self.version3HeaderLength) bytes); refused")
            }
            features = head.be64(72)
            if features & Self.externalDataFileFeature != 0 {
                throw .refused("qcow2 image has an external data file (incompatible_features 0x\(String(features, radix: 16))); refused")
            }
            if features & ~Self.knownIncompatibleFeatures != 0 {
                throw .refused("qcow2 image has unknown incompatible features (incompatible_features 0x\(String(features, radix: 16))); refused")
            }
            if features & Self.extendedL2Feature != 0, clusterBits < Self.minimumExtendedL2ClusterBits {
                throw .refused(
                    "qcow2 cluster_bits \(clusterBits) is below \(Self.minimumExtendedL2ClusterBits), which extended L2 entries (incompatible_features 0x\(String(features, radix: 16))) need; refused"
                )
            }
            let declared = Int(head.be32(100))
            guard declared >= Self.version3HeaderLength, declared <= clusterSize, declared % 8 == 0 else {
                throw .refused("qcow2 header length \(declared) is invalid; refused")
            }
            headerLength = declared
            // qemu reads the compression type (byte 104) only from a header long enough to hold it.
            let compressionType = declared > Self.version3HeaderLength && head.count > 104 ? head[104] : 0
            guard compressionType <= 1 else { throw .refused("qcow2 compression_type \(compressionType) is not zlib (0) or zstd (1); refused") }
            guard (compressionType == 1) == (features & Self.compressionTypeFeature != 0) else {
                throw .refused(
                    "qcow2 compression_type \(compressionType) disagrees with incompatible_features 0x\(String(features, radix: 16)) (bit 3 is set exactly for zstd); refused"
                )
            }
        }
        let cryptoHeader = try checkExtensions(from: headerLength, clusterSize: clusterSize, reader)
        if cryptMethod == 2 {
            try checkCryptoHeader(cryptoHeader, clusterSize: clusterSize, reader)
        } else if cryptoHeader != nil {
            throw .refused("qcow2 image has a crypto header extension but crypt_method \(cryptMethod), not LUKS (2); refused")
        }
        try checkTables(head, clusterBits: Int(clusterBits), extendedL2: features & Self.extendedL2Feature != 0, reader)
    }

    /// The LUKS header of an encrypted image, as qemu's qcow2_read_extensions and its LUKS driver find it: named by
    /// the crypto header extension, cluster-aligned, inside the file, beginning with LUKS's magic.
    private func checkCryptoHeader(_ location: (offset: UInt64, length: UInt64)?, clusterSize: Int, _ reader: RegionReader) throws(ProbeStop) {
        guard let (offset, length) = location else {
            throw .refused(
                "qcow2 image is LUKS-encrypted (crypt_method 2) but has no crypto header extension (0x\(String(Self.cryptoHeaderExtension, radix: 16))); refused"
            )
        }
        guard offset % UInt64(clusterSize) == 0, offset <= UInt64(Int64.max), length > 0, length <= UInt64(Int64.max) - offset else {
            throw .refused("qcow2 crypto header at offset \(offset) with length \(length) is not a cluster-aligned region of a file; refused")
        }
        let magic = try reader.read(Int64(offset), 6)
        guard magic == [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE] else {
            throw .refused("qcow2 crypto header at offset \(offset) is not a LUKS header (or lies past the end of the file); refused")
        }
        if try reader.read(Int64(offset + length) - 1, 1).isEmpty {
            throw .refused("qcow2 crypto header at offset \(offset) with length \(length) runs past the end of the file; refused")
        }
    }

    /// Walks the header extensions in the first cluster: a data-file extension names another file. Returns where
    /// the crypto header extension places the LUKS header, if there is one.
    private func checkExtensions(from start: Int, clusterSize: Int, _ reader: RegionReader) throws(ProbeStop) -> (offset: UInt64, length: UInt64)? {
        var cryptoHeader: (offset: UInt64, length: UInt64)?
        let area = min(clusterSize, Self.maximumExtensionArea)
        let header = try reader.view(0, area)
        var at = start
        while true {
            guard at + 8 <= header.count else {
                if header.count < area {
                    throw .refused("qcow2 header extension at offset \(at) runs past the end of the file (\(header.count) bytes); refused")
                }
                throw .refused("qcow2 header extensions run past \(area) bytes; refused")
            }
            let type = header.be32(at), length = Int(header.be32(at + 4))
            // qemu's qcow2_read_extensions: an extension's data, even the end marker's, ends within the first cluster.
            guard length <= clusterSize - (at + 8) else {
                throw .refused(
                    "qcow2 header extension 0x\(String(type, radix: 16)) at offset \(at) has length \(length), past the first cluster (\(clusterSize) bytes); refused"
                )
            }
            if type == 0 { return cryptoHeader }
            if type == Self.cryptoHeaderExtension {
                // qemu's qcow2_read_extensions: exactly an offset and a length.
                guard length == 16 else { throw .refused("qcow2 crypto header extension at offset \(at) has length \(length), not 16; refused") }
                cryptoHeader = (header.be64(at + 8), header.be64(at + 16))
            }
            if type == Self.dataFileExtension {
                throw .refused("qcow2 image has an external data file (header extension 0x\(String(type, radix: 16)) at offset \(at)); refused")
            }
            // Extension data is padded to a multiple of 8 bytes.
            at += 8 + (length + 7) / 8 * 8
        }
    }

    /// The tables qemu reads at open, with qemu's own bounds (qcow2_do_open), must lie inside the file; the L1 table
    /// must cover the virtual size.
    private func checkTables(_ head: ByteView, clusterBits: Int, extendedL2: Bool, _ reader: RegionReader) throws(ProbeStop) {
        let clusterSize = 1 << clusterBits
        let version = head.be32(4)
        let refcountOrder = version == 3 ? head.be32(96) : 4
        guard refcountOrder <= 6 else { throw .refused("qcow2 refcount_order \(refcountOrder) is above 6 (64-bit entries); refused") }
        let l1Entries = UInt64(head.be32(36))
        guard l1Entries <= Self.maximumL1Bytes / 8 else {
            throw .refused("qcow2 l1_size \(l1Entries) is above qemu's limit (\(Self.maximumL1Bytes / 8) entries); refused")
        }
        // An L2 table of one cluster maps 2^(cluster_bits - 3) clusters (- 4 with extended L2 entries, twice as long).
        let l1Shift = 2 * clusterBits - (extendedL2 ? 4 : 3)
        let needed = (head.be64(24) + (1 << UInt64(l1Shift)) - 1) >> UInt64(l1Shift)
        guard l1Entries >= needed else {
            throw .refused("qcow2 l1_size \(l1Entries) is too small for the virtual size \(head.be64(24)) (\(needed) entries); refused")
        }
        let refcountClusters = UInt64(head.be32(56))
        guard refcountClusters > 0 else { throw .refused("qcow2 refcount_table_clusters is 0: the image has no reference count table; refused") }
        guard refcountClusters <= Self.maximumRefcountTableBytes / UInt64(clusterSize) else {
            throw .refused(
                "qcow2 refcount_table_clusters \(refcountClusters) is above qemu's limit (\(Self.maximumRefcountTableBytes / UInt64(clusterSize))); refused")
        }
        let snapshots = UInt64(head.be32(60))
        guard snapshots <= Self.maximumSnapshots else {
            throw .refused("qcow2 nb_snapshots \(snapshots) is above qemu's limit (\(Self.maximumSnapshots)); refused")
        }
        let size = try reader.fileSize()
        let tables: [(name: String, field: String, offset: UInt64, bytes: UInt64?, present: Bool)] = [
            ("L1 table", "l1_table_offset", head.be64(40), Checked.multiply(l1Entries, 8), l1Entries > 0),
            ("refcount table", "refcount_table_offset", head.be64(48), Checked.multiply(refcountClusters, UInt64(clusterSize)), true),
            ("snapshot table", "snapshots_offset", head.be64(64), Checked.multiply(snapshots, Self.snapshotHeaderLength), snapshots > 0),
        ]
        // qemu's qcow2_validate_table checks every table's alignment and bounds, present or not.
        for table in tables {
            guard table.offset % UInt64(clusterSize) == 0, let offset = Checked.int64(table.offset),
                let bytes = table.bytes.flatMap(Checked.int64), let end = Checked.add(offset, bytes),
                !table.present || (offset >= clusterSize && offset < size && end <= size)
            else {
                throw .refused("qcow2 \(table.name) (\(table.field) \(table.offset)) lies outside the file, in the header's cluster or is misaligned; refused")
            }
        }
    }

    /// qemu's bounds: QCOW_MAX_L1_SIZE, QCOW_MAX_REFTABLE_SIZE, QCOW_MAX_SNAPSHOTS, and the fixed part of a
    /// snapshot header (each entry is at least that long).
    static let maximumL1Bytes: UInt64 = 32 << 20
    static let maximumRefcountTableBytes: UInt64 = 8 << 20
    static let maximumSnapshots: UInt64 = 65536
    static let snapshotHeaderLength: UInt64 = 40
}

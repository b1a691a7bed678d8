// Hostile and broken images are refused, with a reason naming the format and the problem, in both modes.
import Foundation
import StagingTestSupport
import Testing

@testable import FormatInspection

@Suite("FormatInspector refusals")
struct FormatInspectorRefusalTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        /// Shell run in a fresh workspace; it leaves the image in `img`.
        var script: String
        /// Python run afterwards to patch `img`, when needed.
        var patch: String?
        var format: ImageFormat?
        var reason: String
        var description: String { name }
    }

    /// Python helpers for patches: read, patch fields, write back.
    static let prelude = """
        import struct
        d = bytearray(open('img', 'rb').read())
        def save(): open('img', 'wb').write(d)

        """

    static let textDescriptor = """
        # Disk DescriptorFile
        version=1
        CID=12345678
        parentCID=ffffffff
        createType="monolithicFlat"

        # Extent description
        RW 2048 FLAT "/etc/passwd" 0

        ddb.virtualHWVersion = "4"
        """

    static let cases: [Case] = [
        Case(
            name: "qcow2 with a backing file",
            script: "qemu-img create -q -f raw base.raw 64M && qemu-img create -q -f qcow2 -b base.raw -F raw img",
            format: .qcow2, reason: "qcow2 image has a backing file (backing_file_offset 528); refused"),
        Case(
            name: "qcow2 with an external data file",
            script: "qemu-img create -q -f qcow2 -o data_file=img.data img 64M",
            format: .qcow2, reason: "qcow2 image has an external data file (incompatible_features 0x4); refused"),
        Case(
            name: "qcow2 with only a data-file header extension",
            script: "qemu-img create -q -f qcow2 -o data_file=img.data img 64M",
            patch: "d[72:80] = struct.pack('>Q', 0); save()",
            format: .qcow2, reason: "qcow2 image has an external data file (header extension 0x44415441 at offset 112); refused"),
        Case(
            name: "qcow2 with an unknown incompatible feature",
            script: "qemu-img create -q -f qcow2 img 64M",
            patch: "d[72:80] = struct.pack('>Q', 1 << 5); save()",
            format: .qcow2, reason: "qcow2 image has unknown incompatible features (incompatible_features 0x20); refused"),
        Case(
            name: "qcow2 with extended L2 entries in clusters too small for 32 subclusters",
            script: "qemu-img create -q -f qcow2 -o extended_l2=on img 64M",
            patch: "d[20:24] = struct.pack('>I', 13); save()",
            format: .qcow2, reason: "qcow2 cluster_bits 13 is below 14, which extended L2 entries (incompatible_features 0x10) need; refused"),
        Case(
            name: "qcow2 with absurd cluster_bits",
            script: "qemu-img create -q -f qcow2 img 64M",
            patch: "d[20:24] = struct.pack('>I', 40); save()",
            format: .qcow2, reason: "qcow2 cluster_bits 40 is out of range (9–21); refused"),
        Case(
            name: "qcow2 with an absurd virtual size",
            script: "qemu-img create -q -f qcow2 img 64M",
            patch: "d[24:32] = struct.pack('>Q', (1 << 64) - 1); save()",
            format: .qcow2, reason: "qcow2 image declares an absurd virtual size; refused"),
        Case(
            name: "qcow2 whose L1 table lies beyond the file",
            script: "qemu-img create -q -f qcow2 img 64M",
            patch: "d[40:48] = struct.pack('>Q', 1 << 40); save()",
            format: .qcow2, reason: "qcow2 L1 table (l1_table_offset 1099511627776) lies outside the file, in the header's cluster or is misaligned; refused"),
        Case(
            name: "qcow2 whose snapshot table lies beyond the file",
            script: "qemu-img create -q -f qcow2 img 64M",
            patch: "d[60:64] = struct.pack('>I', 1); d[64:72] = struct.pack('>Q', 1 << 40); save()",
            format: .qcow2,
            reason: "qcow2 snapshot table (snapshots_offset 1099511627776) lies outside the file, in the header's cluster or is misaligned; refused"),
        Case(
            name: "qcow2 with a refcount table longer than the file",
            script: "qemu-img create -q -f qcow2 img 64M",
            patch: "d[56:60] = struct.pack('>I', 100); save()",
            format: .qcow2,
            reason: "qcow2 refcount table (refcount_table_offset 65536) lies outside the file, in the header's cluster or is misaligned; refused"),
        Case(
            name: "dynamic vhd whose block table lies beyond the file",
            script: "qemu-img create -q -f vpc img 64M",
            patch: "d[512+16:512+24] = struct.pack('>Q', 1 << 40); save()",
            format: .vhd, reason: "vhd block table (table_offset 1099511627776, 33 entries) lies outside the file; refused"),
        Case(
            name: "dynamic vhd whose block table cannot cover the disk",
            script: "qemu-img create -q -f vpc img 64M",
            patch: "d[512+28:512+32] = struct.pack('>I', 1); save()",
            format: .vhd, reason: "vhd max_table_entries 1 of 2097152 bytes do not cover the disk (67125248 bytes); refused"),
        Case(
            name: "qcow2 with 128-bit refcounts",
            script: "qemu-img create -q -f qcow2 img 64M",
            patch: "d[96:100] = struct.pack('>I', 7); save()",
            format: .qcow2, reason: "qcow2 refcount_order 7 is above 6 (64-bit entries); refused"),
        Case(
            name: "qcow2 with more snapshots than qemu opens",
            script: "qemu-img create -q -f qcow2 img 64M",
            patch: "d[60:64] = struct.pack('>I', 65537); save()",
            format: .qcow2, reason: "qcow2 nb_snapshots 65537 is above qemu's limit (65536); refused"),
        Case(
            name: "qcow2 with a truncated header",
            script: "qemu-img create -q -f qcow2 full 64M && head -c 40 full > img",
            format: .qcow2, reason: "qcow2 header is truncated (40 of 72 bytes); refused"),
        Case(
            name: "qcow2 version 1",
            script: "qemu-img create -q -f qcow2 img 64M",
            patch: "d[4:8] = struct.pack('>I', 1); save()",
            format: .qcow2, reason: "qcow2 version 1 is not supported; refused"),
        Case(
            name: "qed with a backing file",
            script: "qemu-img create -q -f raw base.raw 64M && qemu-img create -q -f qed -b base.raw -F raw img",
            format: .qed, reason: "qed image has a backing file (features 0x5, backing_filename_offset 64); refused"),
        Case(
            name: "vmdk descriptor file naming /etc/passwd",
            script: "printf '%s\\n' '\(textDescriptor.replacingOccurrences(of: "\n", with: "' '"))' > img",
            format: .vmdk, reason: "vmdk descriptor file names another file (/etc/passwd) for its data; refused"),
        Case(
            name: "vmdk descriptor file from qemu (monolithicFlat)",
            script: "qemu-img create -q -f vmdk -o subformat=monolithicFlat img 64M",
            format: .vmdk, reason: "vmdk descriptor file names another file (img-flat) for its data; refused"),
        Case(
            name: "vmdk descriptor file whose create type comes after the first sector",
            script: "printf '%600s\\ncreateType=\"monolithicSparse\"\\n' '#' > img",
            format: .vmdk, reason: "vmdk descriptor file keeps its data in other files; refused"),
        Case(
            name: "monolithicSparse vmdk whose embedded extent names /etc/passwd",
            script: "qemu-img create -q -f vmdk img 64M",
            patch: """
                start = 512; end = d.index(b'\\0', start)
                text = bytes(d[start:end]).replace(b'"img"', b'"/etc/passwd"')
                d[start:start + len(text)] = text; save()
                """,
            format: .vmdk, reason: "vmdk extent names another file (/etc/passwd); refused"),
        Case(
            name: "vmdk sparse with a monolithicFlat create type",
            script: "qemu-img create -q -f vmdk img 64M",
            patch: """
                start = 512; end = d.index(b'\\0', start)
                text = bytes(d[start:end]).replace(b'monolithicSparse', b'vmfs')
                d[start:end] = text + bytes(end - start - len(text)); save()
                """,
            format: .vmdk, reason: "vmdk create type vmfs is not supported; refused"),
        Case(
            name: "vmdk with its descriptor elsewhere",
            script: "qemu-img create -q -f vmdk img 64M",
            patch: "d[28:36] = struct.pack('<Q', 1 << 60); save()",
            format: .vmdk, reason: "vmdk embedded descriptor is not at sector 1; refused"),
        Case(
            name: "ISO with a qcow2 header in its system area",
            script: "qemu-img create -q -f qcow2 q 64M && python3 -c \"$(cat iso.py)\"",
            format: nil, reason: "image matches more than one format (iso, qcow2); refused"),
        Case(
            name: "vhd differencing disk",
            script: "qemu-img create -q -f vpc img 64M",
            patch:
                "d[60:64] = struct.pack('>I', 4); d[-452:-448] = struct.pack('>I', 4); d[64:68] = struct.pack('>I', (struct.unpack('>I', d[64:68])[0] - 1) & 0xffffffff); save()",
            format: .vhd, reason: "vhd image is a differencing disk (disk type 4: it has a parent); refused"),
        Case(
            name: "vhd dynamic disk naming a parent",
            script: "qemu-img create -q -f vpc img 64M",
            patch: "d[512 + 40] = 1; save()",
            format: .vhd, reason: "vhd image names a parent disk (parent_uuid or a parent locator entry is set); refused"),
        Case(
            name: "vhdx with a parent locator",
            script: "qemu-img create -q -f vhdx img 64M",
            patch: """
                import uuid
                region = d.index(b'regi', 192 * 1024)
                guid = uuid.UUID('8B7CA206-4790-4B9A-B8FE-575F050F886E').bytes_le
                entry = next(region + 16 + 32 * i for i in range(8) if d[region + 16 + 32 * i:region + 32 + 32 * i] == guid)
                meta = struct.unpack('<Q', d[entry + 16:entry + 24])[0]
                count = struct.unpack('<H', d[meta + 10:meta + 12])[0]
                entry = meta + 32 + 32 * count
                d[entry:entry + 16] = uuid.UUID('A8D35F2D-B30B-454D-ABF7-D3D84834AB0C').bytes_le
                d[meta + 10:meta + 12] = struct.pack('<H', count + 1); save()
                """,
            format: .vhdx, reason: "vhdx image has a parent locator (differencing disk); refused"),
        Case(
            name: "vhdx with an absurd region count",
            script: "qemu-img create -q -f vhdx img 64M",
            patch: "region = d.index(b'regi', 192 * 1024); d[region + 8:region + 12] = struct.pack('<I', 1 << 30); save()",
            format: .vhdx, reason: "vhdx region table has 1073741824 entries; refused"),
        Case(
            name: "vdi differencing image",
            script: "qemu-img create -q -f vdi img 64M",
            patch: "d[0x4C:0x50] = struct.pack('<I', 4); save()",
            format: .vdi, reason: "vdi image type 4 (undo or differencing) is not supported; refused"),
        Case(
            name: "luks version 2",
            script: "python3 -c \"import struct; open('img','wb').write(b'LUKS\\xba\\xbe' + struct.pack('>H', 2) + bytes(16384 - 8))\"",
            format: .luks, reason: "luks version 2 is not supported; refused"),
        Case(
            name: "luks with a truncated header",
            script: "python3 -c \"import struct; open('img','wb').write(b'LUKS\\xba\\xbe' + struct.pack('>H', 1) + bytes(292))\"",
            format: .luks, reason: "luks header is truncated (300 of 592 bytes); refused"),
        // What qemu 7.2 refuses at open, found by the differential oracle.
        Case(
            name: "qed with a one-cluster L1 table, as qemu-img writes it and cannot open",
            script: "qemu-img create -q -f qed -o table_size=1 img 24M",
            format: .qed,
            reason:
                "qed l1_table_offset 65536 (table_size 1, header_size 1) does not leave the whole L1 table after the header and inside the file (131072 bytes in whole clusters); refused"
        ),
        Case(
            name: "vhdx cut short: a BAT entry places a block past the end",
            script: "head -c 3000000 /dev/urandom > raw && qemu-img convert -f raw -O vhdx raw img && truncate -s 8M img",
            format: .vhdx, reason: "vhdx BAT entry 0 puts a block at offset 8388608, past the end of the file (8388608 bytes); refused"),
        Case(
            name: "dynamic vhd cut short: a block past the end",
            script: "head -c 3000000 /dev/urandom > raw && qemu-img convert -f raw -O vpc raw img && truncate -s 1M img",
            format: .vhd, reason: "vhd block table entry 1 puts a block at bytes up to 4197376, past the end of the file (1048576 bytes); refused"),
        Case(
            name: "LUKS-encrypted qcow2 without its crypto header extension (qemu-img 7.2 crashes on it)",
            script: "qemu-img create -q -f qcow2 --object secret,id=s,data=abc -o encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10 img 16M",
            patch: "d[112:116] = struct.pack('>I', 0x12345678); save()",
            format: .qcow2, reason: "qcow2 image is LUKS-encrypted (crypt_method 2) but has no crypto header extension (0x537be77); refused"),
        Case(
            name: "LUKS-encrypted qcow2 whose crypto header is not LUKS",
            script: "qemu-img create -q -f qcow2 --object secret,id=s,data=abc -o encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10 img 16M",
            patch: "d[0x40000:0x40004] = b'XXXX'; save()",
            format: .qcow2, reason: "qcow2 crypto header at offset 262144 is not a LUKS header (or lies past the end of the file); refused"),
        Case(
            name: "luks key slot with a wrong stripe count",
            script: "qemu-img create -q -f luks --object secret,id=s,data=abc -o key-secret=s,iter-time=10 img 1M",
            patch: "d[208 + 44:208 + 48] = struct.pack('>I', 3999); save()",
            format: .luks, reason: "luks key slot 0 has 3999 stripes, not 4000; refused"),
        Case(
            name: "vdi with 4 KiB sectors",
            script: "qemu-img create -q -f vdi img 64M",
            patch: "d[0x168:0x16C] = struct.pack('<I', 4096); save()",
            format: .vdi, reason: "vdi sector_size 4096 is not 512; refused"),
        Case(
            name: "mbr with an invalid boot flag",
            script: "qemu-img create -q -f raw img 8M && echo 'start=2048, size=4096, type=83' | sfdisk -q --label dos img",
            patch: "d[446] = 0x42; save()",
            format: .mbr, reason: "mbr partition 1 has an invalid boot flag; refused"),
        Case(
            name: "mbr partition reaching beyond the file",
            script: "qemu-img create -q -f raw img 8M && echo 'start=2048, size=4096, type=83' | sfdisk -q --label dos img",
            patch: "d[446 + 12:446 + 16] = struct.pack('<I', 1 << 30); save()",
            format: .mbr, reason: "mbr partition 1 lies outside the file; refused"),
        Case(
            name: "gpt protective MBR with an extra partition",
            script: "qemu-img create -q -f raw img 8M && echo 'start=2048, size=4096' | sfdisk -q --label gpt img",
            patch: "d[462 + 4] = 0x83; d[462 + 8:462 + 16] = struct.pack('<II', 100, 10); save()",
            format: .gpt, reason: "gpt protective MBR defines other partitions; refused"),
        Case(
            name: "gpt partition beyond the disk",
            script: "qemu-img create -q -f raw img 8M && echo 'start=2048, size=4096' | sfdisk -q --label gpt img",
            patch: "d[1024 + 40:1024 + 48] = struct.pack('<Q', 1 << 40); save()",
            format: .gpt, reason: "gpt partition 1 lies outside the disk; refused"),
        Case(
            name: "gpt header claiming a larger disk",
            script: "qemu-img create -q -f raw img 8M && echo 'start=2048, size=4096' | sfdisk -q --label gpt img",
            patch: "d[512 + 48:512 + 56] = struct.pack('<Q', 1 << 40); save()",
            format: .gpt,
            reason: "gpt header describes a disk larger than the file (alternate_lba 16383, last_usable_lba 1099511627776, the file ends at LBA 16383); refused"
        ),
    ]

    @Test("refused in whole-file mode and in streaming mode", arguments: cases)
    func refuses(_ testCase: Case) throws {
        let workspace = try ImageWorkspace()
        let qcowSystemArea = "open('q', 'rb').read(32768)"
        try isoScript(name: "img", blocks: 64, systemArea: qcowSystemArea)
            .write(toFile: workspace.path("iso.py"), atomically: true, encoding: .utf8)
        try workspace.sh(testCase.script)
        if let patch = testCase.patch { try workspace.python(Self.prelude + patch) }
        let bytes = try workspace.bytes("img")
        let expected = InspectionVerdict.refused(InspectionRefusal(format: testCase.format, reason: testCase.reason))
        #expect(inspectWhole(bytes) == expected)
        let (_, streamed) = inspectStreaming(bytes, maximumChunk: 100_000)
        #expect(streamed == expected)
    }

    @Test("streaming refuses as soon as the header proves it")
    func earlyRefusal() throws {
        let workspace = try ImageWorkspace()
        try workspace.sh("qemu-img create -q -f raw base.raw 64M && qemu-img create -q -f qcow2 -b base.raw -F raw img")
        let bytes = try workspace.bytes("img")
        var inspector = StreamingInspector()
        inspector.feed(bytes.prefix(511), at: 0)
        #expect(inspector.state == .undetermined)
        inspector.feed(bytes[511..<512], at: 511)
        #expect(inspector.state == .refused(InspectionRefusal(format: .qcow2, reason: "qcow2 image has a backing file (backing_file_offset 528); refused")))
    }

    @Test("a bootable ISO that also carries an MBR is an ISO")
    func hybridISO() throws {
        let workspace = try ImageWorkspace()
        let mbr = "bytes(446) + bytes([0x80, 0, 1, 0, 0x17, 0, 1, 0]) + struct.pack('<II', 0, 64 * 4) + bytes(48) + b'\\x55\\xaa'"
        try workspace.python(isoScript(name: "img", blocks: 64, systemArea: mbr))
        let bytes = try workspace.bytes("img")
        let expected = InspectionVerdict.accepted(InspectedImage(format: .iso, virtualSize: 64 * 2048))
        #expect(inspectWhole(bytes) == expected)
        #expect(inspectStreaming(bytes).1 == expected)
    }

    @Test("refusals read as sentences")
    func description() {
        let refusal = InspectionRefusal(format: .qcow2, reason: "qcow2 image has a backing file; refused")
        #expect("\(refusal)" == "qcow2 image has a backing file; refused")
    }
}

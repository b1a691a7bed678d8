// What the differential oracle found, one case each: images qemu-img writes or reads that the inspector refused or
// sized differently from qemu.
import Foundation
import StagingTestSupport
import Testing

@testable import FormatInspection

@Suite("Inspector oracle findings")
struct OracleFindingsTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        /// Shell run in a fresh workspace; it leaves the image in `img`.
        var script: String
        var format: ImageFormat
        /// qemu's driver for `qemu-img info -f`.
        var driver: String
        var description: String { name }
    }

    static let cases: [Case] = [
        // qemu's block layer counts whole sectors: a raw file of 3000000 bytes is a disk of 3000320.
        Case(name: "raw file whose size is not a multiple of 512", script: "head -c 3000000 /dev/urandom > img", format: .raw, driver: "raw"),
        Case(
            name: "GPT disk with a partial last sector",
            script: "qemu-img create -q -f raw img 4M && echo 'start=2048, size=100' | sfdisk -q --label gpt img && head -c 100 /dev/zero >> img",
            format: .gpt, driver: "raw"),
        // qemu reads an ISO as raw: an EFI system partition appended after the volume (as Ubuntu's installers have)
        // is part of the disk, whatever the volume descriptor's size says.
        Case(
            name: "ISO with an EFI partition appended after the volume, in a GPT",
            script:
                "mkdir tree && echo hi > tree/hi && head -c 1474560 /dev/zero > efi.img && xorriso -as mkisofs -quiet -append_partition 2 0xef efi.img -appended_part_as_gpt -o img tree",
            format: .iso, driver: "raw"),
        Case(
            name: "ISO with an EFI partition appended after the volume, in an MBR",
            script:
                "mkdir tree && echo hi > tree/hi && head -c 1474560 /dev/zero > efi.img && xorriso -as mkisofs -quiet -append_partition 2 0xef efi.img -o img tree",
            format: .iso, driver: "raw"),
        Case(
            name: "ISO padded to a partial sector",
            script: "mkdir tree && echo hi > tree/hi && xorriso -as mkisofs -quiet -o img tree && head -c 100 /dev/zero >> img",
            format: .iso, driver: "raw"),
        // Header sizes that are not whole sectors: qemu drops qcow2's partial last sector and rounds vdi's up.
        Case(
            name: "qcow2 whose size field is not a multiple of 512",
            script:
                "qemu-img create -q -f qcow2 img 10M && python3 -c \"import struct; d = bytearray(open('img', 'rb').read()); d[24:32] = struct.pack('>Q', 10485759); open('img', 'wb').write(d)\"",
            format: .qcow2, driver: "qcow2"),
        Case(
            name: "vdi whose disk size is not a multiple of 512",
            script:
                "qemu-img create -q -f vdi -o static=on img 6M && python3 -c \"import struct; d = bytearray(open('img', 'rb').read()); d[0x170:0x178] = struct.pack('<Q', 12290); open('img', 'wb').write(d)\"",
            format: .vdi, driver: "vdi"),
        // qemu sizes a vhd by its CHS geometry unless its creator is Hyper-V's, qemu's force_size ("qem2"), Disk2vhd's
        // or Xen's, or the geometry is the largest: footers whose current size says otherwise (checksums made right).
        Case(
            name: "dynamic vhd by qemu whose current size disagrees with its geometry",
            script:
                "qemu-img create -q -f vpc img 5000192 && python3 -c \"\(vhdPatch)patch(0, 48, struct.pack('>Q', 65535)); patch(len(d) - 512, 48, struct.pack('>Q', 65535)); save()\"",
            format: .vhd, driver: "vpc"),
        Case(
            name: "fixed vhd by qemu whose geometry has fewer heads",
            script: "qemu-img create -q -f vpc -o subformat=fixed img 4M && python3 -c \"\(vhdPatch)patch(len(d) - 512, 58, bytes([3])); save()\"",
            format: .vhd, driver: "vpc"),
        Case(
            name: "vhd by Hyper-V (creator 'win ') with a current size of no whole sectors",
            script:
                "qemu-img create -q -f vpc -o force_size=on img 5000192 && python3 -c \"\(vhdPatch)patch(0, 28, b'win '); patch(0, 48, struct.pack('>Q', 5000193)); patch(len(d) - 512, 28, b'win '); patch(len(d) - 512, 48, struct.pack('>Q', 5000193)); save()\"",
            format: .vhd, driver: "vpc"),
        // The metadata's virtual disk size (no checksum covers it), with a partial last sector qemu drops.
        Case(
            name: "vhdx whose virtual disk size is not a multiple of 512",
            script: "qemu-img create -q -f vhdx img 16M && python3 -c \"\(vhdxSize((16 << 20) + 100))\"", format: .vhdx, driver: "vhdx"),
    ]

    /// Images qemu-img refuses to open that the inspector accepted once: it must refuse them too.
    static let refusedCases: [Case] = [
        // A virtual disk size of 0 (the fuzzer moved the item's offset onto zeros): qemu's 32-bit BAT entry count
        // wraps to 2^32 - 1 >> chunk bits, which no BAT holds, and vhdx_open fails with EINVAL.
        Case(
            name: "vhdx whose virtual disk size is 0", script: "qemu-img create -q -f vhdx -o block_size=32M img 24M && python3 -c \"\(vhdxSize(0))\"",
            format: .vhdx, driver: "vhdx")
    ]

    /// Python that sets a vhdx's virtual disk size: finds the metadata region in the region table at 192 KiB, then
    /// the virtual disk size item by its GUID.
    static func vhdxSize(_ size: Int) -> String {
        "import struct, uuid; d = bytearray(open('img', 'rb').read()); r = 192 * 1024; "
            + "meta = [struct.unpack('<Q', d[r + 16 + 32 * i + 16:r + 16 + 32 * i + 24])[0] for i in range(struct.unpack('<I', d[r + 8:r + 12])[0]) "
            + "if d[r + 16 + 32 * i:r + 32 + 32 * i] == uuid.UUID('8b7ca206-4790-4b9a-b8fe-575f050f886e').bytes_le][0]; "
            + "item = [meta + struct.unpack('<I', d[meta + 32 + 32 * i + 16:meta + 32 + 32 * i + 20])[0] for i in range(struct.unpack('<H', d[meta + 10:meta + 12])[0]) "
            + "if d[meta + 32 + 32 * i:meta + 48 + 32 * i] == uuid.UUID('2fa54224-cd1b-4876-b211-5dbed83bf4b8').bytes_le][0]; "
            + "d[item:item + 8] = struct.pack('<Q', \(size)); open('img', 'wb').write(d)"
    }

    /// Python helpers to patch a vhd footer field at `start` and put its checksum right.
    static let vhdPatch =
        "import struct; d = bytearray(open('img', 'rb').read()); "
        + "exec('def patch(start, at, value):\\n d[start + at:start + at + len(value)] = value\\n d[start + 64:start + 68] = bytes(4)\\n "
        + "d[start + 64:start + 68] = struct.pack(\\'>I\\', ~sum(d[start:start + 512]) & 0xffffffff)'); "
        + "exec('def save():\\n open(\\'img\\', \\'wb\\').write(d)'); "

    @Test("accepted with qemu's virtual size", arguments: cases)
    func acceptedWithQemuSize(_ testCase: Case) throws {
        let workspace = try ImageWorkspace()
        try workspace.sh(testCase.script)
        let bytes = try workspace.bytes("img")
        let expected = InspectionVerdict.accepted(
            InspectedImage(format: testCase.format, virtualSize: try workspace.qemuVirtualSize("img", format: testCase.driver)))
        #expect(inspectWhole(bytes) == expected)
        #expect(inspectStreaming(bytes).1 == expected)
    }

    @Test("refused, as qemu refuses to open it", arguments: refusedCases)
    func refusedAsQemuRefuses(_ testCase: Case) throws {
        let workspace = try ImageWorkspace()
        try workspace.sh(testCase.script)
        #expect(!(try run(["qemu-img", "info", "-f", testCase.driver, workspace.path("img")])).succeeded, "qemu-img opens it: the case is wrong")
        let bytes = try workspace.bytes("img")
        guard case .refused = inspectWhole(bytes) else { Issue.record("whole-file mode accepted it: \(inspectWhole(bytes))"); return }
        guard case .refused? = inspectStreaming(bytes).1 else {
            Issue.record("streaming accepted it: \(String(describing: inspectStreaming(bytes).1))"); return
        }
    }
}

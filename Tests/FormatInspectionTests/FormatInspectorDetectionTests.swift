// Every format the inspector knows is detected, with qemu's virtual size, in whole-file and streaming mode.
import Foundation
import StagingTestSupport
import Testing

@testable import FormatInspection

@Suite("FormatInspector detection")
struct FormatInspectorDetectionTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var script: String
        var format: ImageFormat
        /// The virtual size: from qemu-img (given its format name) when nil.
        var expectedSize: Int64?
        var qemuFormat: String?
        var description: String { name }
    }

    static let mib: Int64 = 1 << 20

    static let cases: [Case] = [
        Case(name: "qcow2 v3", script: "qemu-img create -q -f qcow2 img 64M", format: .qcow2, qemuFormat: "qcow2"),
        Case(name: "qcow2 v2", script: "qemu-img create -q -f qcow2 -o compat=0.10 img 64M", format: .qcow2, qemuFormat: "qcow2"),
        Case(
            name: "qcow2 encrypted with LUKS",
            script: "qemu-img create -q -f qcow2 --object secret,id=s,data=abc -o encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10 img 16M",
            format: .qcow2, qemuFormat: "qcow2"),
        Case(
            name: "qcow2 encrypted with AES",
            script: "qemu-img create -q -f qcow2 --object secret,id=s,data=abc -o encrypt.format=aes,encrypt.key-secret=s img 16M",
            format: .qcow2, qemuFormat: "qcow2"),
        Case(name: "qed", script: "qemu-img create -q -f qed img 64M", format: .qed, qemuFormat: "qed"),
        Case(name: "vmdk monolithicSparse", script: "qemu-img create -q -f vmdk img 64M", format: .vmdk, qemuFormat: "vmdk"),
        Case(
            name: "vmdk streamOptimized", script: "qemu-img create -q -f vmdk -o subformat=streamOptimized img 64M",
            format: .vmdk, qemuFormat: "vmdk"),
        Case(
            name: "vmdk streamOptimized with data",
            script: "head -c 3000000 /dev/urandom > data && qemu-img convert -O vmdk -o subformat=streamOptimized -f raw data img",
            format: .vmdk, qemuFormat: "vmdk"),
        Case(name: "vhd dynamic", script: "qemu-img create -q -f vpc img 64M", format: .vhd, qemuFormat: "vpc"),
        Case(name: "vhd fixed", script: "qemu-img create -q -f vpc -o subformat=fixed img 8M", format: .vhd, qemuFormat: "vpc"),
        Case(
            name: "vhd fixed holding a partitioned disk",
            script:
                "qemu-img create -q -f raw disk 8M && echo 'start=2048, size=4096' | sfdisk -q --label gpt disk && qemu-img convert -O vpc -o subformat=fixed disk img",
            format: .vhd, qemuFormat: "vpc"),
        Case(name: "vhdx", script: "qemu-img create -q -f vhdx img 64M", format: .vhdx, qemuFormat: "vhdx"),
        Case(name: "vdi", script: "qemu-img create -q -f vdi img 64M", format: .vdi, qemuFormat: "vdi"),
        Case(
            name: "luks v1",
            // qemu times its key derivation and sometimes fails to on a busy machine: try again.
            script: "qemu-img create -q -f luks --object secret,id=s,data=pw -o key-secret=s,iter-time=50 img 4M",
            format: .luks, expectedSize: 4 * mib),
        Case(name: "raw", script: "qemu-img create -q -f raw img 4M", format: .raw, qemuFormat: "raw"),
        Case(
            name: "raw with data", script: "head -c 1000000 /dev/urandom | tr -d '\\000' > img; truncate -s 2M img",
            format: .raw, qemuFormat: "raw"),
        Case(
            name: "gpt", script: "qemu-img create -q -f raw img 8M && echo 'start=2048, size=4096' | sfdisk -q --label gpt img",
            format: .gpt, qemuFormat: "raw"),
        Case(
            name: "mbr", script: "qemu-img create -q -f raw img 8M && echo 'start=2048, size=4096, type=83' | sfdisk -q --label dos img",
            format: .mbr, qemuFormat: "raw"),
        Case(name: "iso", script: "python3 -c \"$(cat iso.py)\"", format: .iso, expectedSize: 40 * 2048),
        Case(name: "gzip", script: "head -c 100000 /dev/urandom | gzip -c > img", format: .gzip),
        Case(name: "zstd", script: "head -c 100000 /dev/urandom | zstd -q -c > img", format: .zstd),
        Case(name: "zip", script: "head -c 1000 /dev/urandom > member && python3 -m zipfile -c img member", format: .zip),
        Case(name: "xz", script: "head -c 100000 /dev/urandom | xz -T1 -c > img", format: .xz),
        Case(name: "bzip2", script: "head -c 100000 /dev/urandom | bzip2 -c > img", format: .bzip2),
    ]

    func make(_ testCase: Case, in workspace: ImageWorkspace) throws -> (bytes: [UInt8], size: Int64) {
        try isoScript(name: "img", blocks: 40).write(toFile: workspace.path("iso.py"), atomically: true, encoding: .utf8)
        try workspace.sh(testCase.script)
        let bytes = try workspace.bytes("img")
        let size: Int64
        if let expected = testCase.expectedSize {
            size = expected
        } else if let qemuFormat = testCase.qemuFormat {
            size = try workspace.qemuVirtualSize("img", format: qemuFormat)
        } else {
            size = Int64(bytes.count)
        }
        return (bytes, size)
    }

    @Test("whole-file and streaming mode detect the format and its virtual size", arguments: cases)
    func detects(_ testCase: Case) throws {
        let workspace = try ImageWorkspace()
        let (bytes, size) = try make(testCase, in: workspace)
        // A sparse VMDK's create type, as qemu reads it off the header: the compressed one is streamOptimized.
        let createType = testCase.format == .vmdk ? (testCase.name.contains("streamOptimized") ? "streamOptimized" : "monolithicSparse") : nil
        let expected = InspectionVerdict.accepted(InspectedImage(format: testCase.format, virtualSize: size, subformat: createType))
        #expect(inspectWhole(bytes) == expected)
        for seed in 1...3 as ClosedRange<UInt64> {
            let (_, verdict) = inspectStreaming(bytes, maximumChunk: 150_000, seed: seed)
            #expect(verdict == expected, "streaming, seed \(seed)")
            // Out of order, streaming may not have kept what it needs; then it says so instead of guessing.
            let (_, shuffled) = inspectStreaming(bytes, maximumChunk: 150_000, shuffled: true, seed: seed)
            #expect(shuffled == nil || shuffled == expected, "shuffled streaming, seed \(seed)")
        }
    }

    @Test("whole-file mode reads only the regions it needs")
    func readsLittle() throws {
        let workspace = try ImageWorkspace()
        try workspace.sh("qemu-img create -q -f raw img 64M")
        var read = 0
        let size: Int64 = 64 << 20
        let verdict = FormatInspector.inspect(size: size) { _, count in
            read += count
            return [UInt8](repeating: 0, count: count)
        }
        #expect(verdict == .accepted(InspectedImage(format: .raw, virtualSize: size)))
        #expect(read < 256 * 1024)
    }

    @Test(
        "streaming detects a header as soon as it arrives",
        arguments: [
            ("qemu-img create -q -f qcow2 img 64M", ImageFormat.qcow2, Int64(64 << 20)),
            ("qemu-img create -q -f vmdk img 64M", .vmdk, 64 << 20),
            ("qemu-img create -q -f vdi img 64M", .vdi, 64 << 20),
            ("qemu-img create -q -f vpc img 64M", .vhd, 67_125_248),
            ("qemu-img create -q -f qed img 64M", .qed, 64 << 20),
        ])
    func earlyDetection(script: String, format: ImageFormat, size: Int64) throws {
        let workspace = try ImageWorkspace()
        try workspace.sh(script)
        let bytes = try workspace.bytes("img")
        var inspector = StreamingInspector()
        #expect(inspector.state == .undetermined)
        #expect(inspector.wants(offset: 0, count: 512))
        inspector.feed(bytes.prefix(8192), at: 0)
        #expect(inspector.state == .detected(InspectedImage(format: format, virtualSize: size, subformat: format == .vmdk ? "monolithicSparse" : nil)))
    }

    @Test("streaming reports raw provisionally, and does not want bytes far into a raw image")
    func provisionalRaw() {
        var inspector = StreamingInspector()
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        inspector.feed(zeros, at: 0)
        #expect(inspector.state == .detected(InspectedImage(format: .raw, virtualSize: 1 << 20)))
        #expect(!inspector.wants(offset: 1 << 20, count: 1 << 20))
        inspector.feed(zeros, at: 1 << 20)
        #expect(inspector.finish(size: 2 << 20, tail: Array(zeros.suffix(512))) == .accepted(InspectedImage(format: .raw, virtualSize: 2 << 20)))
    }

    @Test("disk formats as Glance names them")
    func diskFormats() {
        #expect(ImageFormat.gpt.diskFormat == "raw")
        #expect(ImageFormat.mbr.diskFormat == "raw")
        #expect(ImageFormat.qcow2.diskFormat == "qcow2")
        #expect(ImageFormat.zstd.diskFormat == nil)
        #expect(ImageFormat.allCases.filter(\.isCompressionContainer) == [.gzip, .zstd, .zip, .xz, .bzip2])
    }
}

@Suite("FormatInspector streaming rewrites")
struct FormatInspectorRewriteTests {
    @Test("a rewrite of kept bytes replaces them: streaming judges the bytes the file ends with")
    func rewrite() throws {
        let workspace = try ImageWorkspace()
        try workspace.sh("qemu-img create -q -f qcow2 img 64M")
        var bytes = try workspace.bytes("img")
        var inspector = StreamingInspector()
        inspector.feed(bytes, at: 0)
        #expect(inspector.state == .detected(InspectedImage(format: .qcow2, virtualSize: 64 << 20)))
        let zeros = [UInt8](repeating: 0, count: 4096)
        #expect(inspector.wants(offset: 0, count: zeros.count))
        inspector.feed(zeros, at: 0)
        bytes.replaceSubrange(0..<zeros.count, with: zeros)
        let verdict = inspector.finish(size: Int64(bytes.count), tail: Array(bytes.suffix(512)))
        // qemu-img's qcow2 is not a whole number of sectors; as raw, qemu counts the partial last one.
        #expect(verdict == .accepted(InspectedImage(format: .raw, virtualSize: (Int64(bytes.count) + 511) / 512 * 512)))
        #expect(verdict == inspectWhole(bytes))
    }
}

// vmdk images crafted so that qemu-img 7.2 would open other host files are refused, naming the field; the
// images qemu-img itself writes are accepted with qemu's virtual size.
import Foundation
import StagingTestSupport
import Testing

@testable import FormatInspection

@Suite("VMDK probe")
struct VMDKProbeTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        /// Shell run in a fresh workspace; it leaves the image in `img`.
        var script = "qemu-img create -q -f vmdk img 1M"
        /// Python run afterwards to patch `img`, with `prelude`'s helpers.
        var patch: String?
        var reason: String
        var description: String { name }
    }

    /// Helpers for patches: `own` is qemu's embedded descriptor, `descriptor` writes a new one over it,
    /// `field` sets a header field, `sector` fills 512 bytes without a NUL. qemu writes its random CID with
    /// as many digits as it needs: a fixed one keeps offsets in messages fixed.
    static let prelude = #"""
        import re, struct
        d = bytearray(open('img', 'rb').read())
        own = re.sub(rb'\nCID=[0-9a-f]+\n', b'\nCID=12345678\n', bytes(d[512:d.index(b'\0', 512)]), count=1)
        def save(): open('img', 'wb').write(d)
        def field(offset, value): d[offset:offset + 8] = struct.pack('<Q', value)
        def descriptor(text):
            d[512:512 + 20 * 512] = text + bytes(20 * 512 - len(text)); save()
        def before(anchor, text): return own.replace(anchor, text + anchor, 1)
        def sector(text): return text + b'#' + b' ' * (510 - len(text)) + b'\n'
        def footer(capacity):
            # header says "grain directory in the footer"; footer = header with the real one, then end-of-stream
            copy = bytearray(d[:512]); copy[12:20] = struct.pack('<Q', capacity)
            field(56, (1 << 64) - 1)
            d.extend(struct.pack('<QII', 1, 0, 3) + bytes(496) + copy + bytes(512)); save()

        """#

    /// What qemu-img 7.2 does with each is in the comment; the report's cases A–G, plus variants with a real
    /// capacity, where qemu ignores the descriptor but Glance's rules still apply.
    static let refusals: [Case] = [
        // A: qemu opens /etc/hostname as the backing file.
        Case(
            name: "A: parentFileNameHint naming a host file",
            patch: #"descriptor(before(b'createType', b'parentFileNameHint="/etc/hostname"\n'))"#,
            reason: #"vmdk descriptor names a backing file (parentFileNameHint="/etc/hostname"); refused"#),
        // A3: qemu opens the sibling file as the backing file.
        Case(
            name: "A3: relative parentFileNameHint with a parentCID",
            patch: #"descriptor(before(b'createType', b'parentFileNameHint="sibling.vmdk"\n').replace(b'parentCID=ffffffff', b'parentCID=dcf5e297'))"#,
            reason: #"vmdk descriptor names a backing file (parentFileNameHint="sibling.vmdk"); refused"#),
        // qemu's strstr finds the hint inside a ddb line too.
        Case(
            name: "A: parentFileNameHint inside a ddb line",
            patch: #"descriptor(before(b'createType', b'ddb.parentFileNameHint="/etc/hostname"\n'))"#,
            reason: #"vmdk descriptor names a backing file (parentFileNameHint="/etc/hostname"); refused"#),
        Case(
            name: "A: parentFileNameHint in any case, in a comment",
            patch: #"descriptor(before(b'createType', b'# PARENTFILENAMEHINT\n'))"#,
            reason: "vmdk descriptor names a backing file (PARENTFILENAMEHINT); refused"),
        // B: qemu reads 10240 bytes whatever desc_size says, and opens /etc/hostname as the backing file.
        Case(
            name: "B: parentFileNameHint past desc_size",
            patch: #"field(36, 1); descriptor(sector(own) + b'parentFileNameHint="/etc/hostname"\n')"#,
            reason: #"vmdk descriptor names a backing file (parentFileNameHint="/etc/hostname"); refused"#),
        Case(
            name: "parentCID naming a parent",
            patch: "descriptor(own.replace(b'parentCID=ffffffff', b'parentCID=1234abcd'))",
            reason: "vmdk descriptor field parentCID is 1234abcd, not ffffffff (the image expects a parent); refused"),
        Case(
            name: "no parentCID (qemu cannot open it)",
            patch: "descriptor(own.replace(b'parentCID=ffffffff', b'# no parent'))",
            reason: "vmdk descriptor has no parentCID field; refused"),
        // C, D, E, F: with capacity 0 qemu parses the descriptor as a descriptor file and opens its extents.
        Case(
            name: "C: capacity 0, tab-separated VMFS extent naming /etc/hostname",
            patch:
                #"field(12, 0); descriptor(own.replace(b'createType', b'# createType="monolithicFlat"\ncreateType', 1) + b'RW\t8\tVMFS\t"/etc/hostname"\t=\n')"#,
            reason: "vmdk header capacity is 0: qemu would read the descriptor as a descriptor file naming other files; refused"),
        Case(
            name: "D: capacity 0, FLAT extent after a CRLF comment",
            patch: #"field(12, 0); descriptor(before(b'createType', b'xcreateType="twoGbMaxExtentFlat"\n') + b'# note\r\nRW 8 FLAT "/etc/hostname" 0\n')"#,
            reason: "vmdk header capacity is 0: qemu would read the descriptor as a descriptor file naming other files; refused"),
        Case(
            name: "E: capacity 0, ddbcreateType and a sibling extent",
            patch: #"field(12, 0); descriptor(before(b'createType', b'ddbcreateType="vmfsSparse"\n').replace(b'"img"', b'"sibling.vmdk"'))"#,
            reason: "vmdk header capacity is 0: qemu would read the descriptor as a descriptor file naming other files; refused"),
        Case(
            name: "F: capacity 0, extent past desc_size",
            patch:
                #"field(12, 0); field(36, 1); descriptor(sector(before(b'createType', b'#createType="monolithicFlat"\n')) + b'RW 8 FLAT "/etc/hostname" 0\n')"#,
            reason: "vmdk header capacity is 0: qemu would read the descriptor as a descriptor file naming other files; refused"),
        Case(
            name: "C': tab-separated extent line naming /etc/hostname",
            patch: #"descriptor(own + b'RW\t8\tVMFS\t"/etc/hostname"\t=\n')"#,
            reason: "vmdk extent names another file (/etc/hostname); refused"),
        Case(
            name: "D': CRLF comment hiding a FLAT extent line",
            patch: #"descriptor(own + b'# note\r\nRW 8 FLAT "/etc/hostname" 0\n')"#,
            reason: "vmdk extent names another file (/etc/hostname); refused"),
        Case(
            name: "D': a second createType inside another word",
            patch: #"descriptor(before(b'createType', b'xcreateType="twoGbMaxExtentFlat"\n'))"#,
            reason: "vmdk descriptor mentions createType 2 times (qemu reads the first, anywhere); refused"),
        Case(
            name: "E': ddbcreateType before createType",
            patch: #"descriptor(before(b'createType', b'ddbcreateType="vmfsSparse"\n'))"#,
            reason: "vmdk descriptor mentions createType 2 times (qemu reads the first, anywhere); refused"),
        Case(
            name: "C': a createType in a comment",
            patch: #"descriptor(before(b'createType', b'# createType="monolithicFlat"\n'))"#,
            reason: "vmdk descriptor mentions createType 2 times (qemu reads the first, anywhere); refused"),
        Case(
            name: "createType not on a line of its own",
            patch: #"descriptor(own.replace(b'createType="monolithicSparse"', b'xcreateType="monolithicSparse"'))"#,
            reason: #"vmdk descriptor line xcreateType="monolithicSparse" is not createType="…"; refused"#),
        Case(
            name: "F': extent line past desc_size",
            patch: #"field(36, 1); descriptor(sector(own) + b'RW 8 FLAT "/etc/hostname" 0\n')"#,
            reason: "vmdk descriptor text is 540 bytes, more than its desc_size of 1 sectors holds; refused"),
        Case(
            name: "a form feed in the descriptor",
            patch: #"descriptor(own.replace(b'# Extent description', b'# Extent\x0cdescription'))"#,
            reason: "vmdk descriptor byte 0x0C at offset 615 is not printable ASCII, tab, CR or LF; refused"),
        Case(
            name: "a vertical tab in the descriptor",
            patch: #"descriptor(own.replace(b'RW 2048', b'RW\x0b2048'))"#,
            reason: "vmdk descriptor byte 0x0B at offset 630 is not printable ASCII, tab, CR or LF; refused"),
        // G: qemu takes the footer's header: 1 TiB where the header says 1 MiB.
        Case(
            name: "G: footer capacity larger than the header's",
            script: "qemu-img create -q -f vmdk -o subformat=streamOptimized img 1M",
            patch: "footer(1 << 31)",
            reason: "vmdk footer capacity 2147483648 differs from the header's 2048; refused"),
        Case(
            name: "G: footer in a file whose size is not a multiple of 512",
            script: "qemu-img create -q -f vmdk -o subformat=streamOptimized img 1M",
            patch: "footer(2048); d.extend(b'x'); save()",
            reason: "vmdk file size 67073 is not a multiple of 512, so qemu would read its footer elsewhere; refused"),
        Case(
            name: "qemu-img create -b base.vmdk",
            script: "qemu-img create -q -f vmdk base.vmdk 1M && qemu-img create -q -f vmdk -b base.vmdk -F vmdk img",
            reason: #"vmdk descriptor names a backing file (parentFileNameHint="base.vmdk"); refused"#),
        Case(
            name: "qemu-img monolithicFlat",
            script: "qemu-img create -q -f vmdk -o subformat=monolithicFlat img 1M",
            reason: "vmdk descriptor file names another file (img-flat) for its data; refused"),
        Case(
            name: "qemu-img twoGbMaxExtentSparse",
            script: "qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse img 1M",
            reason: "vmdk descriptor file names another file (img-s001) for its data; refused"),
        Case(
            name: "qemu-img twoGbMaxExtentFlat",
            script: "qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentFlat img 1M",
            reason: "vmdk descriptor file names another file (img-f001) for its data; refused"),
    ]

    /// Self-contained images as qemu-img writes them, and the crafted ones qemu reads as such.
    static let acceptances: [Case] = [
        Case(name: "monolithicSparse 1M", reason: ""),
        Case(name: "monolithicSparse 64M", script: "qemu-img create -q -f vmdk img 64M", reason: ""),
        Case(name: "monolithicSparse of an odd size", script: "qemu-img create -q -f vmdk img 1000001", reason: ""),
        Case(name: "monolithicSparse 10G", script: "qemu-img create -q -f vmdk img 10G", reason: ""),
        Case(name: "streamOptimized 1M", script: "qemu-img create -q -f vmdk -o subformat=streamOptimized img 1M", reason: ""),
        Case(name: "streamOptimized 10G", script: "qemu-img create -q -f vmdk -o subformat=streamOptimized img 10G", reason: ""),
        Case(
            name: "streamOptimized converted from data",
            script: "head -c 3000000 /dev/urandom > data && qemu-img convert -f raw -O vmdk -o subformat=streamOptimized data img",
            reason: ""),
        Case(
            name: "monolithicSparse converted from data",
            script: "head -c 3000000 /dev/urandom > data && qemu-img convert -f raw -O vmdk data img", reason: ""),
        Case(
            name: "descriptor with CRLF line endings",
            patch: #"descriptor(own.replace(b'\n', b'\r\n'))"#, reason: ""),
        Case(
            name: "streamOptimized with its grain directory in a footer",
            script: "qemu-img create -q -f vmdk -o subformat=streamOptimized img 1M", patch: "footer(2048)", reason: ""),
    ]

    func make(_ testCase: Case) throws -> (ImageWorkspace, [UInt8]) {
        let workspace = try ImageWorkspace()
        try workspace.sh(testCase.script)
        if let patch = testCase.patch { try workspace.python(Self.prelude + patch) }
        return (workspace, try workspace.bytes("img"))
    }

    /// Whole-file mode, and streaming in order; out of order, streaming may not have kept what it needs, and
    /// then it says so instead of guessing.
    func expectInBothModes(_ bytes: [UInt8], _ expected: InspectionVerdict) {
        #expect(inspectWhole(bytes) == expected)
        #expect(inspectStreaming(bytes, maximumChunk: 4096).1 == expected)
        let shuffled = inspectStreaming(bytes, maximumChunk: 4096, shuffled: true).1
        #expect(shuffled == nil || shuffled == expected)
    }

    @Test("crafted and non-self-contained vmdks are refused in both modes, naming the field", arguments: refusals)
    func refuses(_ testCase: Case) throws {
        let (_, bytes) = try make(testCase)
        let expected = InspectionVerdict.refused(InspectionRefusal(format: .vmdk, reason: testCase.reason))
        expectInBothModes(bytes, expected)
    }

    @Test("qemu-made self-contained vmdks are accepted with qemu's virtual size", arguments: acceptances)
    func accepts(_ testCase: Case) throws {
        let (workspace, bytes) = try make(testCase)
        let size = try workspace.qemuVirtualSize("img", format: "vmdk")
        // qemu reads the create type off a sparse file's header: streamOptimized is the compressed one.
        let createType = testCase.script.contains("streamOptimized") ? "streamOptimized" : "monolithicSparse"
        let expected = InspectionVerdict.accepted(InspectedImage(format: .vmdk, virtualSize: size, subformat: createType))
        expectInBothModes(bytes, expected)
    }
}

import FormatInspection
// Glance's [image_format] options, read from the operator's file and applied to images qemu-img makes.
import Foundation
import StagingTestSupport
import Testing

@testable import ImportCore

@Suite("[image_format] options")
struct ImageFormatOptionsTests {
    func imports(_ text: String) throws -> ImportConfiguration {
        var ini = INIFile()
        try ini.merge(text: "[DEFAULT]\nnode_staging_uri = file:///var/lib/glance/staging\n" + text, file: "glance-api.conf")
        return try StagingConfiguration(ini: ini).imports
    }

    /// What the inspector makes of a file qemu-img wrote.
    func inspected(_ workspace: ImageWorkspace, _ create: String, _ name: String) throws -> InspectedImage {
        try workspace.sh(create)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: workspace.path(name))))
        guard case let .accepted(image) = inspectWhole(bytes) else { throw TestSetupError("\(name) was not accepted") }
        return image
    }

    @Test("Glance's defaults: both sparse VMDK create types, formats must match")
    func defaults() throws {
        let options = try imports("").imageFormat
        #expect(Set(options.vmdkAllowedTypes) == ["streamOptimized", "monolithicSparse"])
        #expect(options.requireImageFormatMatch)
        #expect(throws: ConfigurationError.self) { try imports("[image_format]\nrequire_image_format_match = perhaps\n") }
    }

    @Test("vmdk_allowed_types = streamOptimized refuses a monolithicSparse image qemu-img made, naming the option")
    func vmdkAllowedTypes() throws {
        let workspace = try ImageWorkspace()
        let configured = try imports("[image_format]\nvmdk_allowed_types = streamOptimized\n")
        let expectation = FormatExpectation(diskFormat: "vmdk", allowsCompression: false, imports: configured)
        let sparse = try inspected(workspace, "qemu-img create -q -f vmdk -o subformat=monolithicSparse sparse.vmdk 64M", "sparse.vmdk")
        #expect(sparse.subformat == "monolithicSparse")
        let refusal = try #require(expectation.mismatch(sparse))
        #expect(refusal.reason.contains("monolithicSparse") && refusal.reason.contains("vmdk_allowed_types"), "\(refusal.reason)")
        let stream = try inspected(workspace, "qemu-img create -q -f vmdk -o subformat=streamOptimized stream.vmdk 64M", "stream.vmdk")
        #expect(stream.subformat == "streamOptimized")
        #expect(expectation.mismatch(stream) == nil)
    }

    @Test("require_image_format_match = false lets a qcow2 through under disk_format raw; its safety checks still apply")
    func formatMatchOptional() throws {
        let workspace = try ImageWorkspace()
        let qcow2 = try inspected(workspace, "qemu-img create -q -f qcow2 disk.qcow2 64M", "disk.qcow2")
        let strict = FormatExpectation(diskFormat: "raw", allowsCompression: false, imports: try imports(""))
        #expect(strict.mismatch(qcow2)?.reason.contains("disk_format is raw") == true)
        let lenient = FormatExpectation(
            diskFormat: "raw", allowsCompression: false,
            imports: try imports("[image_format]\nrequire_image_format_match = false\n"))
        #expect(lenient.mismatch(qcow2) == nil)
        // A backing file is refused by the inspector itself, whatever the expectation says.
        try workspace.sh("qemu-img create -q -f qcow2 -b /etc/hostname -F raw backed.qcow2")
        let backed = [UInt8](try Data(contentsOf: URL(fileURLWithPath: workspace.path("backed.qcow2"))))
        guard case .refused = inspectWhole(backed) else { Issue.record("a qcow2 with a backing file was accepted"); return }
    }

    @Test("gpt_safety_checks_nonfatal = mbr lets a GPT disk with a bad protective-MBR boot flag through; a table outside the file stays refused")
    func mbrChecksNonfatal() throws {
        let workspace = try ImageWorkspace()
        try workspace.sh("truncate -s 8M disk.img && printf 'label: gpt\\n,4M\\n' | sfdisk -q disk.img")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: workspace.path("disk.img"))))
        bytes[446] = 0x01  // the protective entry's boot flag: neither 0x00 nor 0x80
        let relaxed = try imports("[image_format]\ngpt_safety_checks_nonfatal = mbr\n").imageFormat
        let read = { (offset: Int64, count: Int) -> [UInt8] in Array(bytes[Int(offset)..<min(bytes.count, Int(offset) + count)]) }
        guard case let .refused(refusal) = FormatInspector.inspect(size: Int64(bytes.count), read: read) else {
            Issue.record("a bad boot flag was accepted by default")
            return
        }
        #expect(refusal.reason.contains("invalid boot flag"), "\(refusal.reason)")
        #expect(
            FormatInspector.inspect(size: Int64(bytes.count), options: relaxed, read: read)
                == .accepted(InspectedImage(format: .gpt, virtualSize: Int64(bytes.count))))
        var streaming = StreamingInspector(options: relaxed)
        streaming.feed(bytes, at: 0)
        #expect(
            streaming.finish(size: Int64(bytes.count), tail: Array(bytes.suffix(512)))
                == .accepted(InspectedImage(format: .gpt, virtualSize: Int64(bytes.count))))
        // Cut to 2 MiB, the partition lies outside the file: not one of oslo's checks, and never relaxed.
        let cut = Array(bytes.prefix(2 << 20))
        let cutRead = { (offset: Int64, count: Int) -> [UInt8] in Array(cut[min(cut.count, Int(offset))..<min(cut.count, Int(offset) + count)]) }
        guard case .refused = FormatInspector.inspect(size: Int64(cut.count), options: relaxed, read: cutRead) else {
            Issue.record("a partition outside the file was accepted")
            return
        }
        #expect(throws: ConfigurationError.self) { try imports("[image_format]\ngpt_safety_checks_nonfatal = everything\n") }
    }
}

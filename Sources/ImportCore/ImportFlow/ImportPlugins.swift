// Glance's import plugins as flow steps. Each writes its output as an intermediate beside the staged data,
// re-inspects it, and makes it the data to store; its revert removes that output.
import FormatInspection
import Foundation
import SystemPackage

extension ImportFlow {
    static func pluginStep(_ plugin: ImportPlugin) -> any ImportStep {
        switch plugin {
        case .imageDecompression: return DecompressImage()
        case .imageConversion: return ConvertImage()
        case .injectImageMetadata: return InjectImageMetadata()
        case .noOp: return NoOpPlugin()
        }
    }
}

/// `image_decompression`: unpacks a gzip, zstd, xz, bzip2 or single-member zip image; its contents must then be a safe
/// image of the declared disk_format. Data that is not compressed, or an image whose container_format says it is
/// meant to stay compressed, passes through untouched (Glance's rules).
struct DecompressImage: ImportStep {
    let name = "image-decompression"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        guard context.containerFormat != "compressed", let format = context.inspection?.format,
            let container = CompressedContainer(rawValue: format.rawValue)
        else { return }
        let output = context.imageID + ".uncompressed"
        let source = try context.staging.openForImport(context.dataName, imageID: context.imageID)
        defer { try? source.close() }
        let (target, allowance) = try context.createOutput(
            output, bound: context.imports.imageSizeCap, boundName: "image_size_cap", plugin: .imageDecompression)
        defer { try? target.close() }
        do {
            let size = try Decompressor.decompress(container, from: source, to: target, limit: allowance.bytes) {
                context.action.reportProgress(bytesDone: $0)
            }
            context.settleOutput(output, allowance, size: size)
        } catch .tooLarge(let limit) {
            throw .pluginFailed(
                plugin: .imageDecompression, imageID: context.imageID,
                reason: "the decompressed image would be larger than \(limit) bytes, what \(allowance.limitedBy) allows; refused")
        } catch {
            throw .pluginFailed(plugin: .imageDecompression, imageID: context.imageID, reason: error.description)
        }
        guard let declared = context.diskFormat else { return }
        // Compressed twice is refused: the contents must be the image itself.
        try context.adopt(output, expectation: FormatExpectation(diskFormat: declared, allowsCompression: false, imports: context.imports))
    }

    func revert(_ context: ImportContext) {
        context.removeOutput(context.imageID + ".uncompressed")
    }
}

/// `image_conversion`: converts to `[image_conversion] output_format` with qemu-img in its sandbox, the source
/// format pinned to what the inspector found. It never runs on data the inspector refused: that step failed before it.
struct ConvertImage: ImportStep {
    let name = "image-conversion"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        let target = context.plugins.conversionOutputFormat
        guard let inspected = context.inspection else {
            throw .pluginFailed(plugin: .imageConversion, imageID: context.imageID, reason: "the data was not inspected; refusing to run qemu-img on it")
        }
        if inspected.format.diskFormat == target { return }
        guard let driver = QemuImg.driver(for: inspected.format) else {
            throw .pluginFailed(plugin: .imageConversion, imageID: context.imageID, reason: "\(inspected.format.rawValue) images cannot be converted")
        }
        let output = context.imageID + "." + target
        let source = try context.staging.openForImport(context.dataName, imageID: context.imageID)
        defer { try? source.close() }
        // A converted image holds the virtual disk plus its format's metadata: nothing it writes needs more.
        let needed = inspected.virtualSize.addingReportingOverflow(inspected.virtualSize / 8 + (64 << 20))
        let cap = context.imports.imageSizeCap
        let (bound, boundName) =
            needed.overflow || needed.partialValue > cap
            ? (cap, "image_size_cap") : (needed.partialValue, "the converted image's bound (virtual size + 1/8 + 64 MiB)")
        let (converted, allowance) = try context.createOutput(output, bound: bound, boundName: boundName, plugin: .imageConversion)
        defer { try? converted.close() }
        do {
            try QemuImg.convert(
                source, sourceDriver: driver, into: converted, targetDriver: target, maxOutputBytes: allowance.bytes,
                sandbox: QemuSandbox(configuration: context.imports.sandbox))
        } catch .fileTooLarge(let limit) {
            throw .pluginFailed(
                plugin: .imageConversion, imageID: context.imageID,
                reason: "the converted image would be larger than \(limit) bytes, what \(allowance.limitedBy) allows; refused")
        } catch {
            throw .pluginFailed(plugin: .imageConversion, imageID: context.imageID, reason: error.description)
        }
        let written: Int64
        do { written = try context.staging.intermediateSize(converted) } catch {
            throw .pluginFailed(plugin: .imageConversion, imageID: context.imageID, reason: "the converted image cannot be read: \(error)")
        }
        context.settleOutput(output, allowance, size: written)
        try context.adopt(output, expectation: FormatExpectation(diskFormat: target, allowsCompression: false, imports: context.imports))
    }

    func revert(_ context: ImportContext) {
        context.removeOutput(context.imageID + "." + context.plugins.conversionOutputFormat)
    }
}

/// `inject_image_metadata`: sets `[inject_metadata_properties] inject` on the image, unless the importing user
/// has one of `ignore_user_roles`. The properties are written with the activation, so a failed import sets none.
struct InjectImageMetadata: ImportStep {
    let name = "inject-image-metadata"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        guard !context.roles.contains(where: context.plugins.injectIgnoreUserRoles.contains) else { return }
        context.injectedProperties.merge(context.plugins.injectProperties) { $1 }
    }

    func revert(_ context: ImportContext) {
        context.injectedProperties = [:]
    }
}

/// `no_op`: Glance's example plugin; it only logs.
struct NoOpPlugin: ImportStep {
    let name = "no-op"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        context.logger.info("no_op import plugin ran", metadata: ["task.id": "\(context.taskID)", "image.id": "\(context.imageID)"])
    }

    func revert(_ context: ImportContext) {}
}

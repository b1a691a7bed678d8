// Glance's import plugins as flow steps. Each writes its output as an intermediate beside the staged data,
// re-inspects it, and makes it the data to store; its revert removes that output.
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

/// `image_decompression`: unpacks a gzip, zstd or single-member zip image; its contents must then be a safe
/// image of the declared disk_format. Data that is not compressed, or an image whose container_format says it is
/// meant to stay compressed, passes through untouched (Glance's rules).
struct DecompressImage: ImportStep {
    let name = "image-decompression"

    func execute(_ context: ImportContext) throws(ImportFailure) {
        guard context.containerFormat != "compressed", let format = context.inspection?.format,
              let container = CompressedContainer(rawValue: format.rawValue) else { return }
        let output = context.imageID + ".uncompressed"
        context.intermediates.append(output)
        let source = try context.staging.openForImport(context.dataName, imageID: context.imageID)
        defer { try? source.close() }
        let target = try context.staging.createIntermediate(output)
        defer { try? target.close() }
        do {
            _ = try Decompressor.decompress(container, from: source, to: target, limit: context.controller.configuration.imports.imageSizeCap) {
                context.controller.reportProgress(context.lease, bytesDone: $0)
            }
        } catch {
            throw .pluginFailed(plugin: .imageDecompression, imageID: context.imageID, reason: error.description)
        }
        guard let declared = context.diskFormat else { return }
        // Compressed twice is refused: the contents must be the image itself.
        try context.adopt(output, expectation: FormatExpectation(diskFormat: declared, allowsCompression: false))
    }

    func revert(_ context: ImportContext) {
        context.staging.removeIntermediate(context.imageID + ".uncompressed")
    }
}

/// `image_conversion`: converts to `[image_conversion] output_format` with qemu-img, the source format pinned to
/// what the inspector found. It never runs on data the inspector refused: that step failed before it.
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
        context.intermediates.append(output)
        try? context.staging.createIntermediate(output).close()
        do {
            try QemuImg.convert(source: context.staging.externalPath(of: context.dataName), sourceDriver: driver,
                                target: context.staging.externalPath(of: output), targetDriver: target)
        } catch {
            throw .pluginFailed(plugin: .imageConversion, imageID: context.imageID, reason: error.description)
        }
        try context.adopt(output, expectation: FormatExpectation(diskFormat: target, allowsCompression: false))
    }

    func revert(_ context: ImportContext) {
        context.staging.removeIntermediate(context.imageID + "." + context.plugins.conversionOutputFormat)
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
        context.controller.logger.info("no_op import plugin ran", metadata: ["task.id": "\(context.taskID)", "image.id": "\(context.imageID)"])
    }

    func revert(_ context: ImportContext) {}
}

// Glance's import plugins (`[image_import_opts] image_import_plugins`) and the options of each.
import Foundation

/// A plugin Glance's import flow may run between staging and the store, by Glance's name for it.
public enum ImportPlugin: String, Sendable, CaseIterable {
    case imageDecompression = "image_decompression"
    case imageConversion = "image_conversion"
    case injectImageMetadata = "inject_image_metadata"
    case noOp = "no_op"
}

/// The plugins to run, in the configured order, and their options.
public struct PluginConfiguration: Sendable, Equatable {
    public var plugins: [ImportPlugin] = []
    /// `[image_conversion] output_format`: what `image_conversion` converts to.
    public var conversionOutputFormat = "raw"
    /// `[inject_metadata_properties] ignore_user_roles`: callers with any of these roles get no injected properties.
    public var injectIgnoreUserRoles = ["admin"]
    /// `[inject_metadata_properties] inject`: the properties `inject_image_metadata` sets.
    public var injectProperties: [String: String] = [:]

    /// Glance's choices for `output_format`.
    public static let conversionFormats = ["raw", "qcow2", "vmdk"]

    public init() {}

    public func enabled(_ plugin: ImportPlugin) -> Bool { plugins.contains(plugin) }

    init(_ reader: OptionReader) throws(ConfigurationError) {
        plugins = try reader.list(
            "image_import_opts", "image_import_plugins", default: [],
            expected: "a list of \(ImportPlugin.allCases.map(\.rawValue).joined(separator: ", "))", ImportPlugin.init(rawValue:))
        conversionOutputFormat = try reader.value(
            "image_conversion", "output_format", default: conversionOutputFormat, expected: Self.conversionFormats.joined(separator: ", ")
        ) { Self.conversionFormats.contains($0) ? $0 : nil }
        injectIgnoreUserRoles = try reader.list(
            "inject_metadata_properties", "ignore_user_roles", default: injectIgnoreUserRoles, expected: "a list of role names"
        ) { $0 }
        // oslo.config's DictOpt: `key:value,key2:value2`.
        let pairs = try reader.list(
            "inject_metadata_properties", "inject", default: [], expected: "key:value pairs separated by commas, e.g. property1:value1,property2:value2"
        ) { item -> (String, String)? in
            let parts = item.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return parts.count == 2 && !parts[0].isEmpty ? (parts[0], parts[1]) : nil
        }
        injectProperties = Dictionary(pairs, uniquingKeysWith: { $1 })
    }
}

// Where Glance's configuration puts staging and the image store, in both of its forms: single-store
// (`node_staging_uri`, `[glance_store] filesystem_store_datadir`) and multi-store (`enabled_backends`, whose
// staging area is `[os_glance_staging_store]` and whose images go to `[glance_store] default_backend`).
import Foundation

/// The multi-store layout of an operator's glance-api.conf, when `[DEFAULT] enabled_backends` is set.
public struct GlanceStoreConfiguration: Sendable, Equatable {
    /// The backend images are stored in (`default_backend`): its id, as `/v2/info/stores` lists it.
    public var defaultBackend: String
    /// Its `filesystem_store_datadir`.
    public var storeDirectory: String
    /// `[os_glance_staging_store] filesystem_store_datadir`: the staging directory the mount shows.
    public var stagingDirectory: String?
    /// The other backends, which StagingFS does not store into (logged at start).
    public var otherBackends: [String]
    /// The default backend's `store_description`, for `/v2/info/stores`.
    public var description: String?

    /// nil for a single-store configuration.
    init?(_ reader: OptionReader) throws(ConfigurationError) {
        guard let backends = reader.ini.entry("DEFAULT", "enabled_backends") else { return nil }
        // `id:type` pairs, comma-separated (oslo.config's DictOpt).
        var types: [(id: String, type: String)] = []
        for pair in backends.value.split(separator: ",") {
            let parts = pair.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw .invalidValue(
                    option: "[DEFAULT] enabled_backends", value: backends.value, file: backends.file, line: backends.line,
                    expected: "id:type pairs separated by commas, e.g. fast:file, cheap:file")
            }
            types.append((parts[0], parts[1]))
        }
        let defaultEntry = reader.ini.entry("glance_store", "default_backend")
        guard let chosen = defaultEntry?.value ?? (types.count == 1 ? types[0].id : nil) else {
            throw .missingOption(
                option: "[glance_store] default_backend",
                hint: "with several enabled_backends, name the one images are stored in (as Glance requires)")
        }
        guard let backend = types.first(where: { $0.id == chosen }) else {
            throw .invalidValue(
                option: "[glance_store] default_backend", value: chosen, file: defaultEntry?.file, line: defaultEntry?.line,
                expected: "one of the enabled_backends ids: \(types.map(\.id).joined(separator: ", "))")
        }
        guard backend.type == "file" else {
            throw .invalidValue(
                option: "[DEFAULT] enabled_backends", value: backends.value, file: backends.file, line: backends.line,
                expected: "a file backend as the default_backend: StagingFS stores images on a filesystem, not in \(backend.type)")
        }
        guard let directory = reader.ini.entry(chosen, "filesystem_store_datadir")?.value else {
            throw .missingOption(option: "[\(chosen)] filesystem_store_datadir", hint: "say where the \(chosen) backend keeps its images")
        }
        defaultBackend = chosen
        storeDirectory = directory
        stagingDirectory = reader.ini.entry("os_glance_staging_store", "filesystem_store_datadir")?.value
        otherBackends = types.map(\.id).filter { $0 != chosen }
        description = reader.ini.entry(chosen, "store_description")?.value
    }
}

// The typed configuration StagingFS runs with, read from glance-api.conf-style files.
import FormatInspection
import Foundation

/// Limits on what one project may hold in staging. Zero means unlimited.
public struct StagingQuota: Sendable, Equatable {
    public var bytes: Int64
    public var files: Int

    public init(bytes: Int64 = 0, files: Int = 0) {
        self.bytes = bytes
        self.files = files
    }

    public static let unlimited = StagingQuota()
}

/// What the import controller needs: Glance's import, task, executor and store options, and our API socket.
public struct ImportConfiguration: Sendable, Equatable {
    /// `[DEFAULT] enable_image_import` (the seed's option; true unless turned off).
    public var enableImageImport = true
    /// `[DEFAULT] enabled_import_methods`, as far as StagingFS implements them.
    public var enabledImportMethods = ["glance-direct", "web-download"]
    /// Glance's methods the configuration enables that StagingFS does not implement: accepted, not advertised.
    public var unimplementedImportMethods: [String] = []
    /// `[DEFAULT] enabled_backends`: Glance's multi-store layout; nil for single-store.
    public var stores: GlanceStoreConfiguration?
    /// `[task] task_time_to_live`, in hours.
    public var taskTimeToLive: Double = 48
    /// `[taskflow_executor] engine_mode` (serial runs one import at a time) and `max_workers`.
    public var parallel = true
    public var maxWorkers = 10
    /// `[glance_store] filesystem_store_datadir`.
    public var storeDirectory = "/var/lib/glance/images"
    /// `[stagingfs] socket_path`; nil: `<state_dir>/api.sock`.
    public var socketPath: String?
    /// `[database] connection` as a SQLite path; nil: `<state_dir>/catalog.sqlite` (unless `databaseURL` is set).
    public var databasePath: String?
    /// `[database] connection` as a PostgreSQL URL (validated by `PostgresURL`): the catalog several nodes share.
    public var databaseURL: String?
    /// `[oslo_policy] policy_file`, resolved against the directory of the file that named it; nil: Glance's defaults.
    public var policyFile: String?
    /// `[DEFAULT] image_size_cap`: the largest image (after decompression or conversion) an import may store.
    public var imageSizeCap: Int64 = 1 << 40
    /// `[stagingfs] max_virtual_size`: the largest virtual disk an image's data may describe (Glance has none).
    public var maxVirtualSize: Int64 = 1 << 40
    /// Glance's `[image_format]` options.
    public var imageFormat = ImageFormatOptions()
    /// `[image_import_opts] image_import_plugins` and the plugins' own sections.
    public var plugins = PluginConfiguration()
    /// `[import_filtering_opts]` and web-download's limits.
    public var webDownload = WebDownloadConfiguration()
    /// `[stagingfs] qemu_img_*`: the sandbox qemu-img runs in.
    public var sandbox = SandboxConfiguration()
    /// `[DEFAULT] bind_host`, `bind_port`, `cert_file`, `key_file`, and how TCP requests are authenticated.
    public var tcp = TCPListenerConfiguration()

    public init() {}

    public var workers: Int { parallel ? maxWorkers : 1 }
}

/// Everything the staging mount needs to know. Built from `[DEFAULT]`, `[stagingfs]`, `[identity:NAME]` and
/// `[quota:PROJECT_ID]` sections; see docs/configuration.md for every option.
public struct StagingConfiguration: Sendable, Equatable {
    /// Glance's `node_staging_uri`: the backing directory whose files the mount shows.
    public var backingDirectory: String
    /// Glance's `hashing_algorithm` (recorded on the image as `os_hash_algo`).
    public var hashingAlgorithm: DigestAlgorithm
    public var mountpoint: String?
    public var stateDirectory: String
    public var identityMap: IdentityMap
    /// Hash as the bytes arrive (true) or leave hashing to import time, as Glance does (false).
    public var hashOnWrite: Bool
    /// Inspect the image format as the bytes arrive (refusing unsafe or mismatched images at the write), or only at import.
    public var inspectOnWrite = true
    /// Records `writing` durably at the start of every write generation (docs/architecture.md, invariant 2). Only
    /// the hidden `--unsafe-skip-write-generation-records` flag turns it off, for benchmarks/staging-throughput to
    /// measure what it costs; without it a crash can leave a `staged` record of bytes since overwritten.
    public var recordsWriteGenerations = true
    public var defaultQuota: StagingQuota
    public var projectQuotas: [String: StagingQuota]
    /// Bytes of the backing filesystem that staging must leave free.
    public var freeSpaceReserve: Int64
    public var fuseThreads: Int
    public var imports = ImportConfiguration()
    /// `[stagingfs] node_id`: this daemon among the nodes sharing the staging area and the catalog; stable
    /// across restarts. Default: the host name and the mountpoint.
    public var nodeID: String?
    /// `[stagingfs] lease_seconds`: how long a node's hold on an import task lasts without being renewed.
    public var leaseSeconds: Double = 30

    /// The node id in effect.
    public var node: String {
        nodeID ?? "\(ProcessInfo.processInfo.hostName):\(mountpoint ?? backingDirectory)"
    }

    public var socketPath: String { imports.socketPath ?? stateDirectory + "/api.sock" }
    public var databasePath: String { imports.databasePath ?? stateDirectory + "/catalog.sqlite" }
    /// Where the catalog lives, for people: the PostgreSQL URL without its password, or the SQLite path.
    public var databaseDescription: String {
        guard let url = imports.databaseURL else { return databasePath }
        return (try? PostgresURL(url).description) ?? "postgresql://…"
    }

    public init(
        backingDirectory: String = "/tmp/staging",
        hashingAlgorithm: DigestAlgorithm = .sha512,
        mountpoint: String? = nil,
        stateDirectory: String = "/var/lib/stagingfs",
        identityMap: IdentityMap = IdentityMap(serviceUID: getuid(), rules: []),
        hashOnWrite: Bool = true,
        defaultQuota: StagingQuota = .unlimited,
        projectQuotas: [String: StagingQuota] = [:],
        freeSpaceReserve: Int64 = 0,
        fuseThreads: Int = 4
    ) {
        self.backingDirectory = backingDirectory
        self.hashingAlgorithm = hashingAlgorithm
        self.mountpoint = mountpoint
        self.stateDirectory = stateDirectory
        self.identityMap = identityMap
        self.hashOnWrite = hashOnWrite
        self.defaultQuota = defaultQuota
        self.projectQuotas = projectQuotas
        self.freeSpaceReserve = freeSpaceReserve
        self.fuseThreads = fuseThreads
    }

    public func quota(forProject project: String) -> StagingQuota {
        // The project id byte for byte: a canonically equivalent id is another project (NameTable.swift).
        guard let entry = projectQuotas.index(forKey: project).map({ projectQuotas[$0] }),
            ExactText(entry.key) == ExactText(project)
        else { return defaultQuota }
        return entry.value
    }

    /// Builds the configuration from parsed files; anything malformed names its file, line and option.
    public init(ini: INIFile) throws(ConfigurationError) {
        self.init()
        let reader = OptionReader(ini: ini)
        if let uri = ini.entry("DEFAULT", "node_staging_uri") {
            backingDirectory = try Self.path(fromStagingURI: uri)
        }
        // Multi-store Glance stages in [os_glance_staging_store] and ignores node_staging_uri: so does StagingFS.
        if ini.entry("DEFAULT", "enabled_backends") != nil, let staging = ini.entry("os_glance_staging_store", "filesystem_store_datadir") {
            backingDirectory = staging.value
        }
        hashingAlgorithm = try reader.value(
            "DEFAULT", "hashing_algorithm", default: .sha512,
            expected:
                "a hashlib algorithm this system's OpenSSL computes: \(DigestAlgorithm.allCases.filter(\.isAvailable).map(\.rawValue).joined(separator: ", "))"
        ) { DigestAlgorithm(rawValue: $0.lowercased()).flatMap { $0.isAvailable ? $0 : nil } }
        mountpoint = ini.entry("stagingfs", "mountpoint")?.value
        stateDirectory = ini.entry("stagingfs", "state_dir")?.value ?? stateDirectory
        hashOnWrite = try reader.bool("stagingfs", "hash_on_write", default: true)
        inspectOnWrite = try reader.bool("stagingfs", "inspect_on_write", default: true)
        fuseThreads = try reader.value("stagingfs", "fuse_threads", default: 4, expected: "a whole number from 1 to 64") {
            Int($0).flatMap { (1...64).contains($0) ? $0 : nil }
        }
        freeSpaceReserve = try reader.size("stagingfs", "free_space_reserve", default: 0)
        nodeID = ini.entry("stagingfs", "node_id")?.value
        leaseSeconds = try reader.value("stagingfs", "lease_seconds", default: leaseSeconds, expected: "a number of seconds from 1 to 3600") {
            Double($0).flatMap { (1...3600).contains($0) ? $0 : nil }
        }
        defaultQuota = StagingQuota(
            bytes: try reader.size("stagingfs", "stage_quota_bytes", default: 0),
            files: try reader.count("stagingfs", "stage_quota_files", default: 0))

        imports = try Self.importConfiguration(reader)

        var serviceUID = getuid()
        if let entry = ini.entry("stagingfs", "service_user") {
            guard let uid = SystemAccounts.uid(ofUser: entry.value) else {
                throw .unknownUser(option: "[stagingfs] service_user", name: entry.value, file: entry.file, line: entry.line)
            }
            serviceUID = uid
        }
        var rules: [IdentityRule] = []
        for section in ini.sectionOrder {
            if section.hasPrefix("identity:") {
                rules.append(try Self.identityRule(section: section, reader: reader))
            } else if section.hasPrefix("quota:") {
                let project = String(section.dropFirst("quota:".count))
                projectQuotas[project] = StagingQuota(
                    bytes: try reader.size(section, "stage_quota_bytes", default: defaultQuota.bytes),
                    files: try reader.count(section, "stage_quota_files", default: defaultQuota.files))
            }
        }
        // User rules win over group rules whatever their order in the file.
        let userRules = rules.filter { if case .uid = $0.match { return true } else { return false } }
        identityMap = IdentityMap(serviceUID: serviceUID, rules: userRules + rules.filter { !userRules.contains($0) })
        imports.tcp = try TCPListenerConfiguration(reader, identities: Dictionary(rules.map { ($0.name, $0.identity) }) { first, _ in first })
    }

    private static func importConfiguration(_ reader: OptionReader) throws(ConfigurationError) -> ImportConfiguration {
        var imports = ImportConfiguration()
        imports.enableImageImport = try reader.bool("DEFAULT", "enable_image_import", default: true)
        let implemented = ["glance-direct", "web-download"]
        let methods = try reader.list(
            "DEFAULT", "enabled_import_methods", default: imports.enabledImportMethods,
            expected: "a list of Glance's import methods: glance-direct, web-download, copy-image, glance-download"
        ) { (implemented + ["copy-image", "glance-download"]).contains($0) ? $0 : nil }
        imports.enabledImportMethods = methods.filter(implemented.contains)
        imports.unimplementedImportMethods = methods.filter { !implemented.contains($0) }
        imports.imageSizeCap = try reader.size("DEFAULT", "image_size_cap", default: imports.imageSizeCap)
        imports.plugins = try PluginConfiguration(reader)
        imports.webDownload = try WebDownloadConfiguration(reader, sizeCap: imports.imageSizeCap)
        imports.sandbox = try SandboxConfiguration(reader)
        imports.maxVirtualSize = try reader.size("stagingfs", "max_virtual_size", default: imports.maxVirtualSize)
        imports.imageFormat = try ImageFormatOptions(reader)
        // "inf" parses as a Double: an expiry no date can hold is refused here, not where it is first formatted.
        imports.taskTimeToLive = try reader.value("task", "task_time_to_live", default: 48, expected: "a number of hours from 0 to 876000 (100 years)") {
            Double($0).flatMap { (0...876_000).contains($0) ? $0 : nil }
        }
        imports.parallel = try reader.value("taskflow_executor", "engine_mode", default: true, expected: "serial or parallel") {
            ["serial": false, "parallel": true][$0.lowercased()]
        }
        imports.maxWorkers = try reader.value("taskflow_executor", "max_workers", default: 10, expected: "a whole number from 1 to 256") {
            Int($0).flatMap { (1...256).contains($0) ? $0 : nil }
        }
        if let datadir = reader.ini.entry("glance_store", "filesystem_store_datadir") { imports.storeDirectory = datadir.value }
        imports.stores = try GlanceStoreConfiguration(reader)
        if let stores = imports.stores { imports.storeDirectory = stores.storeDirectory }
        imports.socketPath = reader.ini.entry("stagingfs", "socket_path")?.value
        if let policy = reader.ini.entry("oslo_policy", "policy_file"), !policy.value.isEmpty {
            imports.policyFile =
                policy.value.hasPrefix("/")
                ? policy.value
                : URL(fileURLWithPath: policy.file).deletingLastPathComponent().appendingPathComponent(policy.value).path
        }
        if let connection = reader.ini.entry("database", "connection") {
            if connection.value.hasPrefix("sqlite:///") {
                imports.databasePath = String(connection.value.dropFirst("sqlite:///".count))
            } else if PostgresURL.isPostgres(connection.value) {
                do { _ = try PostgresURL(connection.value) } catch {
                    // The value may hold a password: show only the scheme.
                    throw .invalidValue(
                        option: "[database] connection", value: "postgresql://…", file: connection.file, line: connection.line,
                        expected: "postgresql://user[:password]@host[:port]/dbname (\(error))")
                }
                imports.databaseURL = connection.value
            } else {
                throw .invalidValue(
                    option: "[database] connection", value: connection.value, file: connection.file, line: connection.line,
                    expected: "sqlite:////absolute/path/catalog.sqlite or postgresql://user[:password]@host[:port]/dbname")
            }
        }
        return imports
    }

    /// `file:///var/lib/glance/staging` → `/var/lib/glance/staging`. Only file URIs can be mounted over.
    public static func path(fromStagingURI entry: INIEntry) throws(ConfigurationError) -> String {
        let value = entry.value
        guard value.hasPrefix("file://"), let url = URL(string: value), url.isFileURL, !url.path.isEmpty else {
            throw .invalidValue(
                option: "[DEFAULT] node_staging_uri", value: value, file: entry.file, line: entry.line,
                expected: "a file:// URI naming a local or shared directory, e.g. file:///var/lib/glance/staging")
        }
        return url.path
    }

    private static func identityRule(section: String, reader: OptionReader) throws(ConfigurationError) -> IdentityRule {
        let name = String(section.dropFirst("identity:".count))
        guard let matchEntry = reader.ini.entry(section, "match") else {
            throw .missingOption(option: "[\(section)] match", hint: "say which callers this identity is for: uid:N, user:NAME, gid:N or group:NAME")
        }
        let parts = matchEntry.value.split(separator: ":", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
        let invalid = ConfigurationError.invalidValue(
            option: "[\(section)] match", value: matchEntry.value, file: matchEntry.file,
            line: matchEntry.line, expected: "uid:N, user:NAME, gid:N or group:NAME")
        guard parts.count == 2, !parts[1].isEmpty else { throw invalid }
        let match: IdentityRule.Match
        var defaultUserID = name
        switch parts[0] {
        case "uid":
            guard let uid = UInt32(parts[1]) else { throw invalid }
            match = .uid(uid)
        case "user":
            guard let uid = SystemAccounts.uid(ofUser: parts[1]) else {
                throw .unknownUser(option: "[\(section)] match", name: parts[1], file: matchEntry.file, line: matchEntry.line)
            }
            match = .uid(uid)
            defaultUserID = parts[1]
        case "gid":
            guard let gid = UInt32(parts[1]) else { throw invalid }
            match = .gid(gid)
        case "group":
            guard let gid = SystemAccounts.gid(ofGroup: parts[1]) else {
                throw .unknownUser(option: "[\(section)] match", name: parts[1], file: matchEntry.file, line: matchEntry.line)
            }
            match = .gid(gid)
        default:
            throw invalid
        }
        guard let project = reader.ini.entry(section, "project_id"), !project.value.isEmpty else {
            throw .missingOption(option: "[\(section)] project_id", hint: "every identity belongs to one project")
        }
        // The project's free-named files live in a directory named after it (StagedName.swift): one path component.
        guard StagedName.directoryName(ofProject: project.value).utf8.count <= StagedName.maximumLength else {
            throw .invalidValue(
                option: "[\(section)] project_id", value: project.value, file: project.file, line: project.line,
                expected: "a project id of at most 255 bytes once bytes outside [A-Za-z0-9_.-] are written %XX (Keystone's are 32)")
        }
        let roles = (reader.ini.entry(section, "roles")?.value ?? "member")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let userID = reader.ini.entry(section, "user_id")?.value ?? defaultUserID
        return IdentityRule(name: name, match: match, identity: Identity(userID: userID, projectID: project.value, roles: roles))
    }
}

/// Typed reads of single options, with oslo.config's spellings of booleans and our size suffixes.
struct OptionReader {
    let ini: INIFile

    func value<T>(_ section: String, _ key: String, default fallback: T, expected: String, _ parse: (String) -> T?) throws(ConfigurationError) -> T {
        guard let entry = ini.entry(section, key) else { return fallback }
        guard let parsed = parse(entry.value) else {
            throw .invalidValue(option: "[\(section)] \(key)", value: entry.value, file: entry.file, line: entry.line, expected: expected)
        }
        return parsed
    }

    /// oslo.config's ListOpt: comma-separated, optionally in brackets with quoted items (`['a', 'b']`, as Glance's
    /// sample files write them); every item must pass `parse`.
    func list<T>(_ section: String, _ key: String, default fallback: [T], expected: String, _ parse: (String) -> T?) throws(ConfigurationError) -> [T] {
        try value(section, key, default: fallback, expected: expected) { text in
            let items = text.trimmingCharacters(in: CharacterSet(charactersIn: "[] ")).split(separator: ",")
                .map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " '\"")) }.filter { !$0.isEmpty }
            let parsed = items.compactMap(parse)
            return parsed.count == items.count ? parsed : nil
        }
    }

    func bool(_ section: String, _ key: String, default fallback: Bool) throws(ConfigurationError) -> Bool {
        try value(section, key, default: fallback, expected: "true or false", Self.parseBool)
    }

    func size(_ section: String, _ key: String, default fallback: Int64) throws(ConfigurationError) -> Int64 {
        try value(section, key, default: fallback, expected: "a size in bytes, optionally with K, M, G or T (powers of 1024), e.g. 10G", Self.parseSize)
    }

    func count(_ section: String, _ key: String, default fallback: Int) throws(ConfigurationError) -> Int {
        try value(section, key, default: fallback, expected: "a whole number, 0 for no limit") { Int($0).flatMap { $0 >= 0 ? $0 : nil } }
    }

    static func parseBool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: return nil
        }
    }

    static func parseSize(_ text: String) -> Int64? {
        var digits = text.trimmingCharacters(in: .whitespaces).uppercased()
        for suffix in ["IB", "B"] where digits.hasSuffix(suffix) && digits.count > suffix.count {
            digits.removeLast(suffix.count)
            break
        }
        let units: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var multiplier: Int64 = 1
        if let last = digits.last, let unit = units[last] {
            multiplier = unit
            digits.removeLast()
        }
        guard let number = Int64(digits), number >= 0 else { return nil }
        let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }
}

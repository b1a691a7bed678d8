// The `stagingfs` daemon: mounts Glance's staging area as a FUSE filesystem.
import ArgumentParser
import Foundation
import ImportAPI
import ImportCore
import Logging
import PostgresCatalog
import StagingFS
import WebDownload

@main
struct StagingFSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stagingfs",
        abstract: "Glance's staging area (node_staging_uri) as a permission-checked, quota-bounded, hashing FUSE filesystem.",
        subcommands: [Mount.self, ShowConfig.self],
        defaultSubcommand: Mount.self)
}

/// Options shared by every subcommand: where the configuration comes from, and flags that override it.
struct ConfigurationOptions: ParsableArguments {
    @Option(name: .customLong("config-file"), help: "A glance-api.conf-style file; repeat to merge several, later ones win (as oslo.config).")
    var configFiles: [String] = []

    @Option(help: "Where to mount the staging area ([stagingfs] mountpoint).")
    var mountpoint: String?

    @Option(help: "The backing directory (overrides [DEFAULT] node_staging_uri).")
    var backingDir: String?

    @Option(help: "Where the catalog of staged files lives ([stagingfs] state_dir).")
    var stateDir: String?

    @Option(help: "The image store directory (overrides [glance_store] filesystem_store_datadir).")
    var storeDir: String?

    @Option(help: "The API's Unix socket ([stagingfs] socket_path).")
    var socketPath: String?

    @Option(help: "The glance service user, by name or uid ([stagingfs] service_user).")
    var serviceUser: String?

    @Option(help: "Hash staged data as it is written: true or false ([stagingfs] hash_on_write).")
    var hashOnWrite: Bool?

    @Option(help: "Inspect the image format as it is written: true or false ([stagingfs] inspect_on_write).")
    var inspectOnWrite: Bool?

    @Option(help: "FUSE worker threads ([stagingfs] fuse_threads).")
    var fuseThreads: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    /// For benchmarks/staging-throughput only: measures what invariant 2 costs by not paying it.
    @Flag(help: ArgumentHelp("Do not record write generations durably (breaks crash consistency; for benchmarks only).", visibility: .hidden))
    var unsafeSkipWriteGenerationRecords = false

    func load() throws(ConfigurationError) -> StagingConfiguration {
        var ini = try INIFile(paths: configFiles)
        var overrides: [String] = []
        if let mountpoint { overrides.append("mountpoint = \(mountpoint)") }
        if let stateDir { overrides.append("state_dir = \(stateDir)") }
        if let serviceUser { overrides.append("service_user = \(serviceUser)") }
        if let hashOnWrite { overrides.append("hash_on_write = \(hashOnWrite)") }
        if let inspectOnWrite { overrides.append("inspect_on_write = \(inspectOnWrite)") }
        if let fuseThreads { overrides.append("fuse_threads = \(fuseThreads)") }
        if let socketPath { overrides.append("socket_path = \(socketPath)") }
        if !overrides.isEmpty {
            try ini.merge(text: "[stagingfs]\n" + overrides.joined(separator: "\n"), file: "<command line>")
        }
        if let storeDir {
            try ini.merge(text: "[glance_store]\nfilesystem_store_datadir = \(storeDir)", file: "<command line>")
        }
        if let backingDir {
            let absolute = URL(fileURLWithPath: backingDir).standardizedFileURL.path
            try ini.merge(text: "[DEFAULT]\nnode_staging_uri = file://\(absolute)", file: "<command line>")
        }
        var configuration = try StagingConfiguration(ini: ini)
        configuration.recordsWriteGenerations = !unsafeSkipWriteGenerationRecords
        return configuration
    }

    func makeLogger() -> Logger {
        var logger = Logger(label: "stagingfs")
        logger.logLevel = logLevel
        return logger
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Prints an error for people and leaves with its exit code.
func fail(_ message: CustomStringConvertible, _ code: ExitCode) -> ExitCode {
    FileHandle.standardError.write(Data("stagingfs: error: \(message)\n".utf8))
    return code
}

extension StagingFSCommand {
    struct Mount: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mount the staging area and serve it in the foreground until SIGINT or SIGTERM.")

        @OptionGroup var options: ConfigurationOptions

        func run() throws {
            // A client that goes away while the API answers must cost an EPIPE, never the daemon.
            signal(SIGPIPE, SIG_IGN)
            let logger = options.makeLogger()
            raiseDescriptorLimit(logger)
            let configuration: StagingConfiguration
            do { configuration = try options.load() } catch { throw fail(error, DaemonExit.configuration) }
            if !configuration.recordsWriteGenerations {
                logger.critical("--unsafe-skip-write-generation-records: a crash can leave staged records of bytes since overwritten; benchmarks only")
            }
            // Without a mountpoint, the mount goes on top of the backing directory itself, so that an unmodified
            // glance-api keeps using its node_staging_uri path and every access passes through StagingFS.
            let mountpoint = configuration.mountpoint ?? configuration.backingDirectory
            // A crashed run's stale mount must go first: it may cover the backing directory.
            do { try FuseMount.cleanStaleMount(at: mountpoint, logger: logger) } catch { throw fail(error, DaemonExit.mount) }
            let area: StagingArea
            let controller: ImportController
            let closeCatalog: () -> Void
            do {
                try FileManager.default.createDirectory(atPath: configuration.stateDirectory, withIntermediateDirectories: true)
                let backing = try BackingDirectory(path: configuration.backingDirectory)
                let catalog: any StagedFileCatalog & ImageCatalog & ClusterCatalog
                if let url = configuration.imports.databaseURL {
                    let postgres = try PostgresCatalog(url: url, logger: logger)
                    closeCatalog = postgres.shutdown
                    catalog = postgres
                } else {
                    let lock: CatalogLock
                    do { lock = try CatalogLock(catalogPath: configuration.databasePath) } catch { throw fail(error, DaemonExit.storage) }
                    catalog = try SQLiteCatalog(path: configuration.databasePath)
                    closeCatalog = lock.release
                }
                let policy: PolicyEngine
                do { policy = try PolicyEngine(file: configuration.imports.policyFile, logger: logger) } catch {
                    throw fail(error, DaemonExit.configuration)
                }
                let access = PolicyStagingAccess(engine: policy) { try? catalog.image($0) }
                area = try StagingArea(configuration: configuration, backing: backing, catalog: catalog, policy: access, logger: logger)
                let store = try FilesystemImageStore(path: configuration.imports.storeDirectory)
                controller = ImportController(
                    configuration: configuration, catalog: catalog, staging: area, store: store, policy: policy,
                    downloader: WebDownloader(), logger: logger)
            } catch let exit as ExitCode {
                throw exit
            } catch {
                throw fail(String(describing: error), DaemonExit.storage)
            }
            defer {
                controller.shutdown()
                area.shutdown()
                closeCatalog()
            }
            logAcceptedButUnused(configuration.imports, logger: logger)
            controller.recover()
            let api = APIServer(controller: controller, socketPath: configuration.socketPath, logger: logger)
            do { try api.start() } catch {
                throw fail("cannot listen on the API socket \(configuration.socketPath): \(error); check [stagingfs] socket_path", DaemonExit.storage)
            }
            defer { api.stop() }
            let tcp = try startTCPListener(controller: controller, configuration: configuration, logger: logger)
            defer { tcp?.stop() }
            // Finished tasks expire after [task] task_time_to_live hours: purge them hourly.
            let purge = DispatchSource.makeTimerSource(queue: .global())
            purge.schedule(deadline: .now() + 3600, repeating: 3600)
            purge.setEventHandler { controller.purgeExpiredTasks() }
            purge.resume()
            defer { purge.cancel() }
            let mount: FuseMount
            do {
                mount = try FuseMount(
                    fileSystem: StagingFileSystem(area: area, logger: logger), mountpoint: mountpoint,
                    threads: configuration.fuseThreads, logger: logger)
            } catch {
                throw fail(error, DaemonExit.mount)
            }
            let signals = [SIGINT, SIGTERM].map { number in
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler {
                    logger.info("signal received; unmounting", metadata: ["signal": "\(number)"])
                    mount.stop()
                }
                source.resume()
                return source
            }
            defer { signals.forEach { $0.cancel() } }
            let notifier = ServiceNotifier(logger: logger)
            defer { notifier.stopping() }
            do { try mount.run { notifier.ready(mountpoint: mountpoint) } } catch { throw fail(error, DaemonExit.mount) }
        }
    }

    struct ShowConfig: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show-config",
            abstract: "Print the configuration the daemon would run with, or what is wrong with it.")

        @OptionGroup var options: ConfigurationOptions

        func run() throws {
            let configuration: StagingConfiguration
            do { configuration = try options.load() } catch { throw fail(error, DaemonExit.configuration) }
            print("backing_dir = \(configuration.backingDirectory)")
            print("mountpoint = \(configuration.mountpoint ?? configuration.backingDirectory + " (on top of the backing directory)")")
            print("state_dir = \(configuration.stateDirectory)")
            print("hashing_algorithm = \(configuration.hashingAlgorithm.rawValue)")
            print("hash_on_write = \(configuration.hashOnWrite)")
            print("inspect_on_write = \(configuration.inspectOnWrite)")
            print("service_uid = \(configuration.identityMap.serviceUID)")
            print("fuse_threads = \(configuration.fuseThreads)")
            print("socket_path = \(configuration.socketPath)")
            print("database = \(configuration.databaseDescription)")
            print("filesystem_store_datadir = \(configuration.imports.storeDirectory)")
            print("enable_image_import = \(configuration.imports.enableImageImport)")
            print("policy_file = \(configuration.imports.policyFile ?? "(none: Glance's defaults)")")
            print(
                "enabled_import_methods = \(configuration.imports.enabledImportMethods.joined(separator: ","))"
                    + (configuration.imports.unimplementedImportMethods.isEmpty
                        ? "" : " (not implemented, not advertised: \(configuration.imports.unimplementedImportMethods.joined(separator: ",")))"))
            if let stores = configuration.imports.stores {
                print(
                    "enabled_backends: images go to \(stores.defaultBackend) (\(stores.storeDirectory)); unused: \(stores.otherBackends.joined(separator: ","))"
                )
            }
            print("image_import_plugins = \(configuration.imports.plugins.plugins.map(\.rawValue).joined(separator: ","))")
            print("image_conversion output_format = \(configuration.imports.plugins.conversionOutputFormat)")
            print(
                "inject_metadata_properties = \(configuration.imports.plugins.injectProperties.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")), ignore_user_roles = \(configuration.imports.plugins.injectIgnoreUserRoles.joined(separator: ","))"
            )
            print("image_size_cap = \(configuration.imports.imageSizeCap)")
            print("task_time_to_live = \(configuration.imports.taskTimeToLive)")
            print("engine_mode = \(configuration.imports.parallel ? "parallel" : "serial"), max_workers = \(configuration.imports.maxWorkers)")
            print("free_space_reserve = \(configuration.freeSpaceReserve)")
            print("stage_quota_bytes = \(configuration.defaultQuota.bytes)")
            print("stage_quota_files = \(configuration.defaultQuota.files)")
            for (project, quota) in configuration.projectQuotas.sorted(by: { $0.key < $1.key }) {
                print("quota[\(project)] = \(quota.bytes) bytes, \(quota.files) files")
            }
            for rule in configuration.identityMap.rules {
                print("identity[\(rule.name)] = \(rule.match) -> \(rule.identity)")
            }
        }
    }
}

/// Every open staged file and API connection holds a descriptor: the soft limit (often 1024) goes up to the hard
/// one, so that many open files, or idle connections up to the API's caps, never make FUSE operations fail with
/// EMFILE.
func raiseDescriptorLimit(_ logger: Logger) {
    var limit = rlimit()
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    guard getrlimit(resource, &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    let before = limit.rlim_cur
    limit.rlim_cur = limit.rlim_max
    if setrlimit(resource, &limit) == 0 {
        logger.info("raised the open-file limit", metadata: ["limit.before": "\(before)", "limit.now": "\(limit.rlim_cur)"])
    } else {
        logger.warning("could not raise the open-file limit", metadata: ["limit.now": "\(before)", "errno": "\(errno)"])
    }
}

/// What an operator's glance-api.conf asks for that StagingFS accepts but does not do: said once, at start.
private func logAcceptedButUnused(_ imports: ImportConfiguration, logger: Logger) {
    if !imports.unimplementedImportMethods.isEmpty {
        logger.warning(
            "enabled_import_methods lists methods StagingFS does not implement: they are not advertised, and importing with them is refused",
            metadata: ["import.methods": "\(imports.unimplementedImportMethods.joined(separator: ","))"])
    }
    if let stores = imports.stores, !stores.otherBackends.isEmpty {
        logger.warning(
            "enabled_backends: images are stored only in the default backend; the others are not used",
            metadata: ["store.default": "\(stores.defaultBackend)", "store.unused": "\(stores.otherBackends.joined(separator: ","))"])
    }
}

/// The TCP listener, when `[paste_deploy] flavor = keystone` or `[stagingfs] tcp_noauth_identity` asks for one.
private func startTCPListener(controller: ImportController, configuration: StagingConfiguration, logger: Logger) throws -> TCPAPIServer? {
    let listener = configuration.imports.tcp
    guard listener.authentication != nil else { return nil }
    let authenticator: RequestAuthenticator
    do {
        guard let configured = try RequestAuthenticator.configured(listener, logger: logger) else { return nil }
        authenticator = configured
    } catch {
        throw fail(error.description, DaemonExit.configuration)
    }
    let server = TCPAPIServer(controller: controller, authenticator: authenticator, logger: logger)
    do { try server.startAndWait() } catch {
        server.stop()
        throw fail(error.description, DaemonExit.storage)
    }
    return server
}

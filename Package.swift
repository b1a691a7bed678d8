// swift-tools-version:6.1
// StagingFS: a FUSE staging area for Glance-style interoperable image import.
import PackageDescription

let package = Package(
    name: "StagingFS",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "stagingfs", targets: ["StagingFSDaemon"]),
        .executable(name: "importctl", targets: ["ImportCtl"]),
        .library(name: "ImportCore", targets: ["ImportCore"]),
        .library(name: "StagingFS", targets: ["StagingFS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // libfuse3's headers only; see shim.h for what Swift cannot import directly.
        .systemLibrary(name: "CFuse", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        // The system OpenSSL's digests (libcrypto): the implementation `openssl dgst` uses, with its CPU dispatch.
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // The system zlib, libzstd, liblzma and libbz2, for decompressing gzip, zstd, zip, xz and bzip2 images before they are stored.
        .systemLibrary(name: "CCompression", providers: [.apt(["zlib1g-dev", "libzstd-dev", "liblzma-dev", "libbz2-dev"])]),
        // Linux calls and constants Glibc's module hides (renameat2, UTIME_*).
        .target(name: "CLinux"),
        // The format inspector: what staged bytes are (qcow2, vmdk, vhdx, iso, gpt…) and whether they are safe,
        // from the bytes alone. Depends on nothing else of ours.
        .target(
            name: "FormatInspection",
            dependencies: ["CCompression", .product(name: "SystemPackage", package: "swift-system")]),
        // The model and rules: configuration, identities, staged files, quotas, hashing, catalog.
        .target(
            name: "ImportCore",
            dependencies: [
                "CLinux", "COpenSSL", "FormatInspection",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]),
        // The PostgreSQL catalog, for several nodes sharing one staging area: the catalog protocols over PostgresNIO.
        .target(
            name: "PostgresCatalog",
            dependencies: [
                "ImportCore", "FormatInspection",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The web-download import method's fetcher: AsyncHTTPClient pinned to the addresses [import_filtering_opts] allows.
        .target(
            name: "WebDownload",
            dependencies: [
                "ImportCore", "CLinux",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        // Glance's JSON shapes as Codable types, shared by the API and importctl.
        .target(name: "GlanceModels"),
        // Keystone token validation as keystonemiddleware's auth_token does it: the identity behind an X-Auth-Token.
        .target(
            name: "KeystoneAuth",
            dependencies: [
                "ImportCore", "GlanceModels",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The Glance v2 API: served by Hummingbird on a Unix socket (SO_PEERCRED identities) and over TCP (Keystone
        // or noauth), a thin adapter over ImportCore.
        .target(
            name: "ImportAPI",
            dependencies: [
                "ImportCore", "CLinux", "GlanceModels", "KeystoneAuth",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        // The FUSE filesystem: a thin adapter over ImportCore.
        .target(
            name: "StagingFS",
            dependencies: [
                "CFuse", "CLinux", "ImportCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        // The daemon's entry point.
        .executableTarget(
            name: "StagingFSDaemon",
            dependencies: [
                "StagingFS", "ImportCore", "ImportAPI", "WebDownload", "PostgresCatalog", "CLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/stagingfs"),
        // The `importctl` command: speaks only the API, over the daemon's Unix socket or over TCP (Keystone tokens).
        .executableTarget(
            name: "ImportCtl",
            dependencies: [
                "GlanceModels",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        // Helpers for tests that start the real daemon on a real mount.
        .target(
            name: "StagingTestSupport",
            dependencies: ["ImportCore", "FormatInspection", "CLinux", .product(name: "SystemPackage", package: "swift-system")],
            path: "Tests/StagingTestSupport"),
        .testTarget(name: "CatalogTests", dependencies: ["ImportCore", "FormatInspection", "PostgresCatalog", "StagingTestSupport"]),
        .testTarget(name: "ImportCoreTests", dependencies: ["ImportCore", "StagingTestSupport"]),
        .testTarget(name: "ImportCtlTests", dependencies: ["StagingTestSupport"]),
        .testTarget(name: "FormatInspectionTests", dependencies: ["FormatInspection", "ImportCore", "StagingTestSupport"]),
        .testTarget(name: "StagingFSTests", dependencies: ["StagingFS", "ImportCore", "StagingTestSupport"]),
        .testTarget(name: "WebDownloadTests", dependencies: ["WebDownload", "ImportCore", "StagingTestSupport"]),
        .testTarget(name: "GlanceModelsTests", dependencies: ["GlanceModels"]),
        .testTarget(name: "KeystoneAuthTests", dependencies: ["KeystoneAuth", "ImportCore", "StagingTestSupport"]),
        .testTarget(name: "ImportAPITests", dependencies: ["ImportAPI", .product(name: "SystemPackage", package: "swift-system")]),
    ],
    swiftLanguageModes: [.v6]
)

// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "edgecache",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "edgecache", targets: ["edgecache"])
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "4.1.0"..<"5.0.0"),
    ],
    targets: [
        // System libraries, through small module maps.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "COpenSSLCrypto", path: "Sources/COpenSSLCrypto"),

        // Pure core: FHIR rules, replication frames, state machines. No NIO, no GRDB.
        .target(name: "EdgeCacheCore", swiftSettings: swiftSettings),

        // Sealing (zlib + AES-256-GCM), keyed hashes, key wrapping; bearer tokens (jwt-kit).
        .target(
            name: "EdgeCacheCrypto",
            dependencies: [
                "CZlib", "COpenSSLCrypto", "EdgeCacheCore",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),

        // SQLite stores: origin (system of record) and edge (sealed cache).
        .target(
            name: "EdgeCacheStore",
            dependencies: ["EdgeCacheCore", "EdgeCacheCrypto", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),

        // HTTP: FHIR API, peer API, mTLS identity.
        .target(
            name: "EdgeCacheHTTP",
            dependencies: [
                "EdgeCacheCore", "EdgeCacheStore", "EdgeCacheCrypto",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),

        // Node assembly: config, origin client, stream follower, services, demo.
        .target(
            name: "EdgeCacheNode",
            dependencies: [
                "EdgeCacheCore", "EdgeCacheCrypto", "EdgeCacheStore", "EdgeCacheHTTP",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),

        // Thin CLI.
        .executableTarget(
            name: "edgecache",
            dependencies: [
                "EdgeCacheNode", "EdgeCacheCore", "EdgeCacheCrypto", "EdgeCacheStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // Benchmarks (figures, never timed tests): tools/bench builds and runs it in release mode.
        .executableTarget(
            name: "edgecache-bench",
            dependencies: [
                "EdgeCacheNode", "EdgeCacheStore", "EdgeCacheCrypto", "EdgeCacheCore", "EdgeCacheHTTP",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Benchmarks/EdgeCacheBench",
            swiftSettings: swiftSettings
        ),

        // Test kit shared by the test targets (signed tokens from real keys).
        .target(
            name: "EdgeCacheTestSupport",
            dependencies: ["EdgeCacheCore", "EdgeCacheCrypto"],
            path: "Tests/EdgeCacheTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "EdgeCacheCoreTests", dependencies: ["EdgeCacheCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "EdgeCacheCryptoTests",
            dependencies: [
                "EdgeCacheCrypto", "EdgeCacheCore", "EdgeCacheTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EdgeCacheStoreTests",
            dependencies: [
                "EdgeCacheStore", "EdgeCacheCrypto", "EdgeCacheCore", "EdgeCacheTestSupport", .product(name: "GRDB", package: "GRDB.swift"),
            ],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EdgeCacheHTTPTests",
            dependencies: [
                "EdgeCacheHTTP", "EdgeCacheCore", .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EdgeCacheNodeTests",
            dependencies: [
                "edgecache", "EdgeCacheNode", "EdgeCacheCore", "EdgeCacheCrypto", "EdgeCacheStore", "EdgeCacheHTTP",
                "EdgeCacheTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)

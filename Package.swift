// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Sightline",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "sightline", targets: ["sightline"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C libraries, found with pkg-config. The shims also hold the few C helpers Swift needs.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CLibWebSockets", pkgConfig: "libwebsockets", providers: [.apt(["libwebsockets-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        // Pure logic: life cycle, live board, statistics. No I/O.
        .target(name: "InteractionModel"),

        // libpq behind a typed Swift API: connections, the store, migrations, the log reader.
        .target(
            name: "InteractionStore",
            dependencies: ["CLibPQ", "InteractionModel", .product(name: "Logging", package: "swift-log")]
        ),

        // libwebsockets behind a small Swift API: one event loop, HTTP, static files, WebSocket.
        .target(
            name: "LWS",
            dependencies: [
                "CLibWebSockets",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),

        // Alerts leaving the server: the outbox in PostgreSQL, Alertmanager and signed webhooks,
        // delivered by one thread over libcurl.
        .target(
            name: "AlertDelivery",
            dependencies: [
                "CCurl", "InteractionModel", "InteractionStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The live service: tailer, board, subscriptions, fan-out, HTTP API.
        .target(
            name: "LiveServer",
            dependencies: [
                "InteractionModel", "InteractionStore", "LWS", "AlertDelivery", "CLibCrypto",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Realistic contact-center traffic through the store (demos, benchmarks).
        .target(name: "Simulation", dependencies: ["InteractionModel", "InteractionStore"]),

        .executableTarget(
            name: "sightline",
            dependencies: [
                "InteractionModel", "InteractionStore", "LiveServer", "Simulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .testTarget(name: "InteractionModelTests", dependencies: ["InteractionModel"]),
        .testTarget(name: "LiveServerTests", dependencies: ["LiveServer", "InteractionModel", "LWS"]),
        .testTarget(name: "LWSTests", dependencies: ["LWS"]),
        .testTarget(name: "AlertDeliveryTests", dependencies: ["AlertDelivery", "InteractionModel"]),
        .testTarget(name: "InteractionStoreTests", dependencies: ["InteractionStore", "InteractionModel", "Simulation"]),
    ],
    swiftLanguageModes: [.v6]
)

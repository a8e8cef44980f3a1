// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "planrun",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "planrun", targets: ["planrun"]),
        .library(name: "PlanRunCore", targets: ["PlanRunCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        .target(
            name: "PlanRunCore",
            dependencies: [
                "CYAML",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Collections", package: "swift-collections"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(
            name: "PlanRunCLI",
            dependencies: [
                "PlanRunCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "planrun",
            dependencies: ["PlanRunCLI"]
        ),
        // Helpers both test targets use.
        .target(
            name: "PlanRunTestSupport",
            dependencies: ["PlanRunCore"],
            path: "Tests/PlanRunTestSupport"
        ),
        .testTarget(
            name: "PlanRunCoreTests",
            dependencies: ["PlanRunCore", "PlanRunTestSupport"]
        ),
        .testTarget(
            name: "PlanRunCLITests",
            dependencies: ["PlanRunCLI", "PlanRunCore", "PlanRunTestSupport"]
        ),
    ]
)

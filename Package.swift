// swift-tools-version:6.0
import PackageDescription

// Layers import downward only: Tensor <- NN <- Models; Data and Checkpoint sit beside them;
// only the CLI (`lth4sa`) wires everything together.
let optimize: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "lth4sa",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "lth4sa", targets: ["lth4sa"]),
        .library(name: "LTH4SA", targets: ["Tensor", "NN", "Models", "Data", "Checkpoint", "Training"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // System libraries: OpenBLAS (OpenMP build) and oneDNN 2.6 (Debian libdnnl-dev).
        .systemLibrary(name: "CKernels", path: "Sources/CKernels"),
        .target(name: "Tensor", dependencies: ["CKernels"], swiftSettings: optimize),
        .target(name: "NN", dependencies: ["Tensor", "CKernels"], swiftSettings: optimize),
        .target(name: "Models", dependencies: ["NN", "Tensor"], swiftSettings: optimize),
        .target(name: "Data", dependencies: ["Tensor"], swiftSettings: optimize),
        .target(name: "Checkpoint", dependencies: ["Tensor"], swiftSettings: optimize),
        // The plugin SDK (C headers in SDK/include/lth4sa), built as a C target for the host.
        .target(name: "LTH4SASDK", path: "SDK", exclude: ["README.md", "examples"], sources: ["src"], publicHeadersPath: "include"),
        .target(name: "PluginHost", dependencies: ["LTH4SASDK", "Models", "NN", "Tensor", "Data", "Search"], swiftSettings: optimize),
        .target(name: "Search", dependencies: ["Models", "NN", "Tensor", "Checkpoint"], swiftSettings: optimize),
        .target(name: "Training", dependencies: ["Models", "NN", "Tensor", "Data", "Checkpoint"], swiftSettings: optimize),
        .executableTarget(
            name: "lth4sa",
            dependencies: [
                "Tensor", "NN", "Models", "Data", "Checkpoint", "Training", "PluginHost", "Search",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: optimize),
        .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "Tensor"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "NN", "Tensor", "Data", "Checkpoint"]),
        .testTarget(name: "DataTests", dependencies: ["Data", "Tensor"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Models", "NN", "Tensor", "Data", "Checkpoint"]),
        .testTarget(name: "PluginHostTests", dependencies: ["PluginHost", "Models", "NN", "Tensor", "Data", "Search"]),
        .testTarget(name: "CLITests", dependencies: ["lth4sa"]),
    ],
    swiftLanguageModes: [.v5]
)

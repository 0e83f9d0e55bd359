// swift-tools-version:6.0
import PackageDescription

// Layers import downward only: Tensor <- NN <- Models; Data and Checkpoint sit beside them;
// Training and Search build on them, PluginHost adapts C plugins, Experiments holds the method
// (pipeline, compare, landscape, reports). The CLI (`lth4sa`) only parses flags, calls
// Experiments and prints. Every library target is a product of its own.
let optimize: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
let libraries = ["Tensor", "Cluster", "NN", "Models", "Data", "Checkpoint", "Training", "Search", "PluginHost", "Experiments", "Terminal"]

let package = Package(
    name: "lth4sa",
    platforms: [.macOS(.v15)],
    products: [.executable(name: "lth4sa", targets: ["lth4sa"])] + libraries.map { .library(name: $0, targets: [$0]) },
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // System libraries: OpenBLAS (OpenMP build) and oneDNN 2.6 (Debian libdnnl-dev).
        .systemLibrary(name: "CKernels", path: "Sources/CKernels"),
        .target(name: "Tensor", dependencies: ["CKernels"], swiftSettings: optimize),
        // C kernels fusing a 1x1 convolution's GEMMs (LIBXSMM 1.17, Debian libxsmm-dev: static
        // library) with the elementwise passes around them.
        .target(name: "FusedKernels", cSettings: [.unsafeFlags(["-O3"])],
                linkerSettings: [.linkedLibrary("xsmm"), .linkedLibrary("dl"), .linkedLibrary("rt"), .linkedLibrary("m")]),
        .target(name: "NN", dependencies: ["Tensor", "CKernels", "FusedKernels"], swiftSettings: optimize),
        .target(name: "Models", dependencies: ["NN", "Tensor"], swiftSettings: optimize),
        .target(name: "Data", dependencies: ["Tensor"], swiftSettings: optimize),
        .target(name: "Checkpoint", dependencies: ["Tensor"], swiftSettings: optimize),
        // The plugin SDK (C headers in SDK/include/lth4sa), built as a C target for the host.
        .target(name: "LTH4SASDK", path: "SDK", exclude: ["README.md", "examples"], sources: ["src"], publicHeadersPath: "include"),
        // C helpers for the process: which plugin call a fatal signal interrupted (recorded by
        // PluginHost, reported by the CLI's handler), C's stdout buffering for the CLI.
        .target(name: "ProcessSupport"),
        .target(name: "PluginHost", dependencies: ["LTH4SASDK", "ProcessSupport", "Models", "NN", "Tensor", "Data", "Search",
                                                   .product(name: "Logging", package: "swift-log")], swiftSettings: optimize),
        .target(name: "Search", dependencies: ["Models", "NN", "Tensor", "Checkpoint", "Cluster"], swiftSettings: optimize),
        // Ranks of an MPI job (Open MPI loaded at run time, only under mpirun) or this process alone.
        .target(name: "Cluster", dependencies: ["Tensor"], swiftSettings: optimize),
        .target(name: "Training", dependencies: ["Models", "NN", "Tensor", "Data", "Checkpoint", "Cluster"], swiftSettings: optimize),
        .target(name: "Experiments", dependencies: ["Tensor", "Cluster", "NN", "Models", "Data", "Checkpoint", "Training", "Search", "PluginHost"],
                swiftSettings: optimize),
        // For programs driving Experiments from a terminal: progress rendering (it prints).
        .target(name: "Terminal", dependencies: ["Tensor", "Cluster", "Training", "Experiments"], swiftSettings: optimize),
        .executableTarget(
            name: "lth4sa",
            dependencies: [
                "Tensor", "Cluster", "NN", "Models", "Data", "Checkpoint", "Training", "PluginHost", "Search", "Experiments", "Terminal", "LTH4SASDK", "ProcessSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: optimize),
        // Fuzzing the file parsers (scripts/fuzz.sh builds it with -sanitize=fuzzer,address -DFUZZING;
        // a normal build gives a corpus replayer).
        .executableTarget(name: "lth4sa-fuzz", dependencies: ["Data", "Checkpoint"], path: "Fuzz", exclude: ["corpus"]),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
        .testTarget(name: "ClusterTests", dependencies: ["Cluster"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "Tensor"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "NN", "Tensor", "Data", "Checkpoint"]),
        .testTarget(name: "DataTests", dependencies: ["Data", "Tensor"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Models", "NN", "Tensor", "Data", "Checkpoint"]),
        .testTarget(name: "PluginHostTests", dependencies: ["PluginHost", "Models", "NN", "Tensor", "Data", "Search", "TestSupport"]),
        .testTarget(name: "ExperimentsTests", dependencies: ["Experiments", "Training", "PluginHost", "Search", "Models", "Tensor", "Checkpoint", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["lth4sa", "TestSupport", "Checkpoint", "Tensor"]),
    ],
    swiftLanguageModes: [.v6]
)

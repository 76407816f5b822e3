// swift-tools-version: 6.1
import PackageDescription

// Kernels are compiled for the host CPU (AVX-512 where present) and optimised even in debug
// builds, so `swift test` exercises the same vectorised code the tool runs.
let kernelSettings: [SwiftSetting] = [
    .unsafeFlags(["-O", "-target-cpu", "native"])
]
let hostCPU: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "native"])]

let package = Package(
    name: "grpo-swift",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "grpo", targets: ["grpo"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Tokenizers", targets: ["Tokenizers"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // MARK: - Math
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .target(name: "Tensors", dependencies: ["CDNNL"], swiftSettings: kernelSettings),

        // MARK: - Files and models
        .target(name: "SafeTensors", swiftSettings: kernelSettings),
        .target(name: "Models", dependencies: ["Tensors", "SafeTensors"], swiftSettings: kernelSettings),
        .target(name: "Tokenizers", swiftSettings: kernelSettings),
        .target(
            name: "Generation", dependencies: ["Models", "Tokenizers", "Tensors"],
            swiftSettings: kernelSettings),

        .target(
            name: "Rewards", dependencies: ["Generation", "Models", "SafeTensors", "Tensors", "Tokenizers"],
            swiftSettings: kernelSettings),

        // MARK: - Processes: MPI, loaded at run time
        .target(name: "Distributed"),

        .target(
            name: "Training",
            dependencies: ["Models", "Tensors", "Tokenizers", "Generation", "Rewards", "Distributed"],
            swiftSettings: kernelSettings),

        // MARK: - Executables
        .executableTarget(
            name: "grpo",
            dependencies: [
                "Models", "SafeTensors", "Tensors", "Tokenizers", "Generation", "Rewards", "Training",
                "Distributed", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: hostCPU),
        .executableTarget(
            name: "grpo-bench", dependencies: ["Generation", "Models", "Tensors", "Tokenizers", "Training"],
            swiftSettings: kernelSettings),

        // MARK: - Tests
        .target(name: "TestSupport", dependencies: ["Tensors"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "TestSupport"], swiftSettings: hostCPU),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors", "TestSupport"]),
        .testTarget(
            name: "ModelsTests", dependencies: ["Models", "Tensors", "SafeTensors", "TestSupport"],
            exclude: ["Fixtures"], swiftSettings: hostCPU),
        .testTarget(
            name: "GenerationTests", dependencies: ["Generation", "Models", "Tensors", "TestSupport"],
            swiftSettings: hostCPU),
        .testTarget(
            name: "TokenizersTests", dependencies: ["Tokenizers", "TestSupport"], exclude: ["Fixtures"],
            swiftSettings: hostCPU),
        .testTarget(
            name: "RewardsTests", dependencies: ["Rewards", "Models", "Tokenizers", "TestSupport"],
            exclude: ["Fixtures"], swiftSettings: hostCPU),
        .testTarget(
            name: "TrainingTests", dependencies: ["Training", "Models", "Rewards", "Tensors", "TestSupport"],
            exclude: ["Fixtures"],
            swiftSettings: hostCPU),
        .testTarget(name: "grpoTests", dependencies: ["grpo", "SafeTensors", "Training", "TestSupport"]),
    ]
)

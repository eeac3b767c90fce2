// swift-tools-version: 6.0
// universeg-worker: few-shot medical image segmentation (UniverSeg) as a Kafka worker daemon.
//
// Layers (dependencies point downwards only):
//   C shims (CRdKafka, COpenBLAS, CLibPNG, CSystemd, CCrypto)   system libraries via pkg-config
//   SegTiming    `Duration.milliseconds` (no dependencies, so any layer can time without the kernels)
//   SegSIMD*     vector kernels, one source built for x86-64, AVX2 and AVX-512 (SegSIMDInterface: their protocol)
//   SegKernels   float32 NCHW kernels over one sgemm entry point; picks the SegSIMD build the CPU runs
//   SegModel     the UniverSeg network, weights container, ensembling, Dice (no I/O, no logging, no async)
//   SegIO        PNG, safetensors, .npy, support-set directories, preprocessing
//   SegEvaluation     few-shot evaluation protocol, baselines, bootstrap
//   SegService   requests, results, support-set store and cache, configuration
//   SegKafka     a thin wrapper over librdkafka
//   SegOperations     journald/stderr logging, systemd notify, Prometheus metrics and endpoint
//   SegDaemon    the Kafka pipeline: bounded executor, in-order commits, watchdog
//   CCurl        libcurl's easy interface, libcurl loaded at the first exchange (dlopen)
//   SegHTTP      bounded HTTP(S) client over CCurl: size limits while reading, transient vs permanent
//   CDcmtk       C API of the DCMTK shim; loads CDcmtkShim (libUniverSegDCMTK.so) at the first call
//   CDcmtkShim   C++ shim over Debian's DCMTK 3.6.7: decode DICOM pixels, write DICOM SEG (dcmseg)
//   SegDICOM     DICOM objects (parse, frames as modality values, slice order) and SEG writing
//   SegDICOMweb  DICOMweb client (QIDO-RS, WADO-RS, STOW-RS) over SegHTTP
//   SegPlatform  versions of the linked C libraries
//   UniverSegWorker   the `universeg-worker` executable and its subcommands
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

// The vector kernels (Winograd transforms, resampling) are compiled three times from one source
// (Sources/SegSIMDPortable; SegSIMDAVX2 and SegSIMDAVX512 hold symbolic links to it): for any
// x86-64 CPU, for AVX2 + FMA (Intel Haswell, 2013, and later; every AMD Zen) and for AVX-512
// (Intel Skylake-SP and later servers, AMD Zen 4 and later). SegKernels runs the best build the
// CPU supports (KernelISA), so one binary runs everywhere and fast on each generation.
func simdSettings(targetCPU: String?, define: String?) -> [SwiftSetting] {
    var settings = swiftSettings
    #if arch(x86_64)
    if let targetCPU { settings.append(.unsafeFlags(["-target-cpu", targetCPU])) }
    if let define { settings.append(.define(define)) }
    #endif
    return settings
}

let package = Package(
    name: "universeg-worker",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "universeg-worker", targets: ["UniverSegWorker"]),
        // libUniverSegDCMTK.so: the DCMTK shim, loaded by the executable at its first DICOM call.
        // It goes beside the executable, or in ../lib/universeg-worker (the Debian package).
        .library(name: "UniverSegDCMTK", type: .dynamic, targets: ["CDcmtkShim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // MARK: C libraries (Debian packages in `providers`)
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLibPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),

        // The DCMTK shim (C++), a shared library of its own that CDcmtk loads at the first DICOM
        // call, so that a process which never touches DICOM does not load DCMTK's 22 libraries.
        // DCMTK's dcmtk.pc is unusable (it requires sndfile, which libdcmtk-dev does not pull in):
        // the libraries are named explicitly instead of through pkg-config.
        .target(
            name: "CDcmtkShim",
            publicHeadersPath: ".",  // no public headers: dcmshim.h belongs to CDcmtk
            cxxSettings: [.headerSearchPath("../CDcmtk/include"), .unsafeFlags(["-std=c++17", "-fvisibility=hidden"])],
            linkerSettings: [
                // No Swift runtime: nothing of the static one is pulled in (see the swiftrt.o note in
                // dcmshim.cpp), and only the libraries the shim uses are recorded as needed.
                .unsafeFlags(["-static-stdlib", "-Xlinker", "--as-needed"]),
                .linkedLibrary("dcmseg"), .linkedLibrary("dcmfg"), .linkedLibrary("dcmiod"),
                .linkedLibrary("dcmjpls"), .linkedLibrary("dcmjpeg"), .linkedLibrary("dcmimage"),
                .linkedLibrary("dcmimgle"), .linkedLibrary("dcmdata"), .linkedLibrary("oflog"), .linkedLibrary("ofstd"),
            ]
        ),
        // dcmshim.h and its loader (C): forwards every call to the shim library once loaded.
        .target(name: "CDcmtk", linkerSettings: [.linkedLibrary("dl")]),

        // MARK: Compute
        .target(name: "SegTiming", swiftSettings: swiftSettings),
        .target(name: "SegSIMDInterface", swiftSettings: swiftSettings),
        .target(name: "SegSIMDPortable", dependencies: ["SegSIMDInterface"],
                swiftSettings: simdSettings(targetCPU: nil, define: nil)),
        .target(name: "SegSIMDAVX2", dependencies: ["SegSIMDInterface"],
                swiftSettings: simdSettings(targetCPU: "haswell", define: "SEGSIMD_AVX2")),
        .target(name: "SegSIMDAVX512", dependencies: ["SegSIMDInterface"],
                swiftSettings: simdSettings(targetCPU: "skylake-avx512", define: "SEGSIMD_AVX512")),
        .target(name: "SegKernels", dependencies: ["COpenBLAS", "SegSIMDInterface", "SegSIMDPortable", "SegSIMDAVX2", "SegSIMDAVX512"],
                swiftSettings: swiftSettings),
        .target(name: "SegModel", dependencies: ["SegKernels"], swiftSettings: swiftSettings),

        // MARK: I/O and platform
        .target(name: "SegIO", dependencies: ["SegModel", "SegKernels", "CLibPNG", "CCrypto"], swiftSettings: swiftSettings),
        .target(name: "SegKafka", dependencies: ["CRdKafka"], swiftSettings: swiftSettings),
        .target(
            name: "SegPlatform",
            dependencies: ["CRdKafka", "CSystemd", "CLibPNG", "SegKernels"],
            swiftSettings: swiftSettings
        ),

        // MARK: HTTP and DICOM
        // libcurl's headers (libcurl4-openssl-dev) at build time; libcurl.so.4 itself is opened at
        // the first HTTP exchange, so the binary does not load it (and its ~25 libraries) at start.
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "SegHTTP", dependencies: ["CCurl"], swiftSettings: swiftSettings),
        .target(name: "SegDICOM", dependencies: ["CDcmtk"], swiftSettings: swiftSettings),
        .target(name: "SegDICOMweb", dependencies: ["SegHTTP"], swiftSettings: swiftSettings),

        // MARK: Operations (journald/stderr logging, systemd notify, Prometheus registry and endpoint)
        .target(
            name: "SegOperations",
            dependencies: ["CSystemd", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),

        // MARK: Service core (requests, results, support-set store and cache, processing)
        .target(
            name: "SegService", dependencies: ["SegModel", "SegIO", "SegTiming", "SegDICOM", "SegDICOMweb", "SegHTTP"],
            swiftSettings: swiftSettings
        ),

        // MARK: Daemon (Kafka pipeline)
        .target(
            name: "SegDaemon",
            dependencies: [
                "SegService", "SegKafka", "SegModel", "SegIO", "SegTiming", "SegOperations",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Evaluation (few-shot protocol, baselines, bootstrap)
        .target(name: "SegEvaluation", dependencies: ["SegModel", "SegIO", "SegKernels", "SegTiming"], swiftSettings: swiftSettings),

        // MARK: Executable
        .executableTarget(
            name: "UniverSegWorker",
            dependencies: [
                "SegModel", "SegIO", "SegKernels", "SegTiming", "SegPlatform", "SegEvaluation", "SegService", "SegDaemon", "SegKafka",
                "SegOperations", .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tests (run optimized: `swift test -c release -Xswiftc -enable-testing`)
        .target(name: "SegTesting", dependencies: ["SegModel", "SegKafka", "SegIO"], path: "Tests/SegTesting", swiftSettings: swiftSettings),
        .testTarget(name: "SegKernelsTests", dependencies: ["SegKernels", "SegSIMDInterface", "SegTesting"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SegModelTests", dependencies: ["SegModel", "SegIO", "SegKernels", "SegTesting"],
            exclude: ["Fixtures"], swiftSettings: swiftSettings
        ),
        .testTarget(name: "SegIOTests", dependencies: ["SegIO", "SegModel", "SegTesting"], swiftSettings: swiftSettings),
        .testTarget(name: "SegHTTPTests", dependencies: ["SegHTTP", "SegTesting"], swiftSettings: swiftSettings),
        .testTarget(name: "SegDICOMTests", dependencies: ["SegDICOM", "SegTesting"], swiftSettings: swiftSettings),
        .testTarget(name: "SegDICOMwebTests", dependencies: ["SegDICOMweb", "SegHTTP", "SegTesting"], swiftSettings: swiftSettings),
        .testTarget(name: "SegKafkaTests", dependencies: ["SegKafka", "SegTesting"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SegServiceTests", dependencies: ["SegService", "SegDICOM", "SegIO", "SegModel", "SegOperations", "SegTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SegEvaluationTests", dependencies: ["SegEvaluation", "SegIO", "SegModel"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SegDaemonTests", dependencies: ["SegDaemon", "SegOperations", "SegService", "SegKafka", "SegTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SegOperationsTests",
            dependencies: ["SegOperations", "SegTesting", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WorkerIntegrationTests",
            dependencies: ["UniverSegWorker", "SegTesting", "SegKafka", "SegIO", "SegModel", "SegOperations", "SegDICOMweb"],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WorkerCLITests", dependencies: ["UniverSegWorker", "SegIO", "SegModel", "SegKernels", "SegPlatform", "SegTesting"],
            swiftSettings: swiftSettings
        ),
    ]
)

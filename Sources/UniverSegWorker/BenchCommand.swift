import ArgumentParser
import Foundation
import SegIO
import SegKernels
import SegModel
import SegPlatform
import SegTiming

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure inference speed: median ms per query, GFLOP/s and peak RSS.",
        discussion: """
            Without --weights, a v1 network (widths 64, 128x128) with seeded random weights is used; \
            speed does not depend on the weight values. GFLOP counts the arithmetic this engine \
            performs; "ref GFLOP/s" divides the arithmetic of the authors' pairwise formulation by \
            the same time.
            """)

    @Option(help: "Weights file (safetensors). Default: random v1 weights.")
    var weights: String?

    @Option(help: "Inputs from a safetensors file with query [1,1,S,S], support_images and support_labels [n,1,S,S].")
    var inputs: String?

    @Option(help: "Support sizes N, comma-separated.")
    var sizes: String = "1,8,16,64"

    @Option(help: "OpenBLAS thread counts, comma-separated.")
    var threads: String = "1,2"

    @Option(help: "Timed repetitions per (N, threads), after one warm-up run.")
    var repeats: Int = 3

    @Flag(help: "Print one JSON object per line instead of a table.")
    var json = false

    @Flag(name: .customLong("no-winograd"), help: "Use im2col + sgemm for every 3x3 convolution (the same as --winograd off).")
    var noWinograd = false

    @Option(help: "3x3 convolutions: f4x4 (Winograd F(4x4,3x3), the default), f2x2 (F(2x2,3x3)) or off (im2col + sgemm).")
    var winograd: String = "f4x4"

    @Flag(name: .customLong("blas-threaded"), help: "Let OpenBLAS thread each sgemm call instead of running independent calls side by side.")
    var blasThreaded = false

    @Option(name: .customLong("save-logits"), help: "Directory to write the logits of each N to, as logits-nN.npy (float32 [S,S]), for comparisons with other runtimes.")
    var saveLogits: String?

    @Flag(help: "Benchmark the kernels (sgemm, im2col, 3x3 convolution) instead of the network.")
    var kernels = false

    func run() throws {
        if kernels { return try KernelBench(threads: try parseList(threads, "--threads"), repeats: repeats).run() }
        let sizeList = try parseList(sizes, "--sizes")
        let threadList = try parseList(threads, "--threads")
        guard repeats >= 1 && repeats <= 1000 else { throw ValidationError("--repeats must be in 1...1000") }
        switch winograd {
        case "f4x4": Winograd.defaultVariant = .f4x4
        case "f2x2": Winograd.defaultVariant = .f2x2
        case "off": break
        default: throw ValidationError("--winograd must be f4x4, f2x2 or off")
        }
        let useWinograd = !noWinograd && winograd != "off"

        let model = try weights.map { try WeightsFile(path: $0).model } ?? UniverSeg.randomlyInitialized(.v1, seed: 1)
        let cfg = model.configuration
        let maxN = sizeList.max() ?? 1
        let (query, support) = try loadInputs(size: cfg.inputSize, entries: maxN)

        if !json {
            print("UniverSeg \(cfg); 3x3 convolutions: \(useWinograd ? Winograd.defaultVariant.rawValue : "im2col"); "
                  + "OpenBLAS \(BLAS.coreName) (\(Platform.openBLASCoreOrigin)); vector kernels \(KernelISA.active.name); "
                  + "\(Platform.availableCores) cores available")
            print("    N  threads   median ms      min ms    GFLOP   GFLOP/s  ref GFLOP/s  peak RSS MiB")
        }
        let session = InferenceSession(model: model)
        session.useWinograd = useWinograd
        let coretypeJSON = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].map { "\"\($0.filter { $0.isLetter || $0.isNumber })\"" } ?? "null"
        for n in sizeList {
            guard n <= support.count else { throw ValidationError("N=\(n) exceeds the \(support.count) support entries of --inputs") }
            let entries = Array(0..<n)
            if let saveLogits {
                try FileManager.default.createDirectory(atPath: saveLogits, withIntermediateDirectories: true)
                let logits = try session.logits(query: query, support: support, entries: entries)
                try FileIO.writeAtomically(NPY.encodeFloat32(logits, shape: [cfg.inputSize, cfg.inputSize]),
                                           to: saveLogits + "/logits-n\(n).npy")
            }
            for t in threadList {
                BLAS.setThreadCount(t, mode: blasThreaded ? .threadedCalls : .independentCalls)
                _ = try session.logits(query: query, support: support, entries: entries)
                var times: [Double] = []
                for _ in 0..<repeats {
                    let start = ContinuousClock.now
                    _ = try session.logits(query: query, support: support, entries: entries)
                    let d = ContinuousClock.now - start
                    times.append(d.milliseconds)
                }
                times.sort()
                let median = times[times.count / 2]
                let flop = 2 * Double(cfg.multiplyAccumulates(supportSize: n, algorithm: .reduced))
                let refFlop = 2 * Double(cfg.multiplyAccumulates(supportSize: n, algorithm: .reference))
                let rss = Double(Platform.peakResidentBytes ?? 0) / 1_048_576
                if json {
                    print("""
                        {"n":\(n),"threads":\(t),"median_ms":\(fmt(median, 2)),"min_ms":\(fmt(times[0], 2)),\
                        "gflop":\(fmt(flop / 1e9, 3)),"gflops":\(fmt(flop / median / 1e6, 2)),\
                        "ref_gflops":\(fmt(refFlop / median / 1e6, 2)),"peak_rss_mib":\(fmt(rss, 1)),\
                        "openblas_core":"\(BLAS.coreName)","openblas_coretype_env":\(coretypeJSON),"kernels":"\(KernelISA.active.rawValue)",\
                        "convolution":"\(useWinograd ? Winograd.defaultVariant.rawValue : "im2col")"}
                        """)
                } else {
                    print(String(format: "%5d  %7d  %10.1f  %10.1f  %7.1f  %8.1f  %11.1f  %12.1f",
                                 n, t, median, times[0], flop / 1e9, flop / median / 1e6, refFlop / median / 1e6, rss))
                }
                fflush(nil)
            }
        }
    }

    private func fmt(_ v: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", v) }

    private func parseList(_ text: String, _ flag: String) throws -> [Int] {
        let values = text.split(separator: ",").compactMap { Int($0) }
        guard !values.isEmpty, values.count == text.split(separator: ",").count, values.allSatisfy({ $0 >= 1 && $0 <= 4096 }) else {
            throw ValidationError("\(flag) must be a comma-separated list of positive integers")
        }
        return values
    }

    /// Inputs from --inputs, or smooth seeded random images with blob labels.
    private func loadInputs(size: Int, entries: Int) throws -> ([Float], SupportTensors) {
        let plane = size * size
        if let inputs {
            let contents = try SafeTensors.parse(try FileIO.read(inputs, maxBytes: 1 << 30))
            guard let q = contents.tensors["query"], q.values.count == plane,
                  let si = contents.tensors["support_images"], let sl = contents.tensors["support_labels"],
                  si.values.count == sl.values.count, si.values.count % plane == 0, !si.values.isEmpty
            else {
                throw ValidationError("--inputs must hold query [1,1,\(size),\(size)] and matching support_images/support_labels")
            }
            let n = si.values.count / plane
            let images = (0..<n).map { Array(si.values[($0 * plane)..<(($0 + 1) * plane)]) }
            let labels = (0..<n).map { Array(sl.values[($0 * plane)..<(($0 + 1) * plane)]) }
            return (q.values, try SupportTensors(images: images, labels: labels, size: size))
        }
        var rng = SeededGenerator(seed: 7)
        func smooth() -> [Float] {
            let fx = 1 + rng.nextUniform() * 4, fy = 1 + rng.nextUniform() * 4, phase = rng.nextUniform() * 6.28
            return (0..<plane).map { p in
                let x = Double(p % size) / Double(size), y = Double(p / size) / Double(size)
                return Float(0.5 + 0.5 * sin(fx * 6.28 * x + phase) * cos(fy * 6.28 * y))
            }
        }
        let query = smooth()
        let images = (0..<entries).map { _ in smooth() }
        let labels = images.map { $0.map { $0 > 0.6 ? Float(1) : 0 } }
        return (query, try SupportTensors(images: images, labels: labels, size: size))
    }
}

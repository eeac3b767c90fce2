import ArgumentParser
import Foundation
import SegEvaluation
import SegIO
import SegKernels
import SegModel
import SegPlatform

struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Segment PNG images with a support set directory.",
        discussion: """
            Writes OUT/<stem>.mask.png (0/255, at each image's original size) and, with --logits, \
            OUT/<stem>.logits.npy (float32, model resolution: raw logits for one pass, the mean \
            probability map when ensembling). Every input is validated before anything is written.
            """)

    @Option(help: "Weights file (safetensors). Default: the shipped weights.")
    var weights: String?

    @Option(help: "Support set directory holding support.json.")
    var support: String

    @Option(help: "Output directory (created if missing).")
    var out: String

    @Option(name: .customLong("support-size"), help: "Entries per support subset (N). Default: every entry, in manifest order.")
    var supportSize: Int?

    @Option(help: "Number of support subsets to average (K).")
    var ensemble: Int = 1

    @Option(help: "Seed of the subset generator.")
    var seed: UInt64 = 0

    @Option(help: "Probability threshold for the mask (foreground where p > threshold).")
    var threshold: Float = 0.5

    @Flag(help: "Also write the model-resolution logits (or mean probabilities) as .npy.")
    var logits = false

    @Option(help: "OpenBLAS threads. Default: the number of available cores.")
    var threads: Int?

    @Option(name: .customLong("ground-truth"), help: "Directory of ground-truth masks named like the images (nonzero = foreground): prints the Dice score of each mask.")
    var groundTruth: String?

    @Argument(help: "PNG images to segment.")
    var images: [String]

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give at least one IMAGE") }
        guard ensemble >= 1 && ensemble <= 1000 else { throw ValidationError("--ensemble must be in 1...1000") }
        if let n = supportSize, n < 1 { throw ValidationError("--support-size must be at least 1") }
        guard threshold.isFinite && threshold >= 0 && threshold < 1 else {
            throw ValidationError("--threshold must be in [0, 1)")
        }
        if let t = threads, !(1...256).contains(t) { throw ValidationError("--threads must be in 1...256") }
        var stems = Set<String>()
        for image in images {
            let stem = Self.stem(of: image)
            guard stems.insert(stem).inserted else {
                throw ValidationError("two images share the output name '\(stem)'")
            }
        }
    }

    static func stem(of path: String) -> String {
        let name = URL(fileURLWithPath: path).lastPathComponent
        return name.lowercased().hasSuffix(".png") ? String(name.dropLast(4)) : name
    }

    func run() throws {
        BLAS.setThreadCount(threads ?? Platform.availableCores)
        // Validate everything before writing anything.
        let weightsFile = try WeightsFile(path: try DefaultWeights.resolve(weights))
        let size = weightsFile.model.configuration.inputSize
        let supportSet = try SupportSetDirectory.load(directory: support, size: size)
        let options = EnsembleOptions(supportSize: supportSize, ensembleCount: ensemble, seed: seed)
        let subsets = try options.subsets(poolSize: supportSet.tensors.count)
        var decoded: [(path: String, image: GrayImage)] = []
        for path in images {
            let bytes = try FileIO.read(path, maxBytes: 256 << 20)
            do {
                decoded.append((path, try PNGCodec.decode(bytes)))
            } catch let error as IOError {
                throw IOError(error.code, "\(path): \(error.message)")
            }
        }
        try createDirectory(out)

        let session = InferenceSession(model: weightsFile.model)
        var scores: [Double] = []
        for (path, image) in decoded {
            let query = Preprocess.image(image, size: size)
            let probabilities: [Float]
            var rawLogits: [Float]? = nil
            if subsets.count == 1 {
                let l = try session.logits(query: query, support: supportSet.tensors, entries: subsets[0])
                rawLogits = l
                probabilities = l.map(Elementwise.sigmoid)
            } else {
                probabilities = try session.probabilities(query: query, support: supportSet.tensors, options: options)
            }
            let mask = Preprocess.mask(probabilities: probabilities, size: size, width: image.width,
                                       height: image.height, threshold: threshold)
            let stem = Self.stem(of: path)
            try FileIO.writeAtomically(try PNGCodec.encodeGray8(mask, width: image.width, height: image.height),
                                       to: "\(out)/\(stem).mask.png")
            if logits {
                try FileIO.writeAtomically(NPY.encodeFloat32(rawLogits ?? probabilities, shape: [size, size]),
                                           to: "\(out)/\(stem).logits.npy")
            }
            let foreground = Double(mask.filter { $0 != 0 }.count) / Double(mask.count)
            var line = "\(stem): \(image.width)x\(image.height), foreground \(String(format: "%.1f", 100 * foreground))%"
            if let dice = try diceAgainstTruth(stem: stem, mask: mask, width: image.width, height: image.height) {
                scores.append(dice)
                line += String(format: ", Dice %.1f", 100 * dice)
            }
            print(line + " -> \(out)/\(stem).mask.png")
        }
        if !scores.isEmpty {
            print(String(format: "mean Dice over %d images: %.1f", scores.count, 100 * scores.reduce(0, +) / Double(scores.count)))
        }
    }

    /// Dice of `mask` against `--ground-truth`/<stem>.png when that file exists.
    private func diceAgainstTruth(stem: String, mask: [UInt8], width: Int, height: Int) throws -> Double? {
        guard let groundTruth else { return nil }
        let path = "\(groundTruth)/\(stem).png"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let truth = try PNGCodec.decode(try FileIO.read(path, maxBytes: 256 << 20))
        guard truth.width == width, truth.height == height else {
            throw IOError(.imageDecode, "\(path): ground truth is \(truth.width)x\(truth.height), the image \(width)x\(height)")
        }
        return SegmentationMetrics.dice(mask.map(Float.init), truth.values)
    }

    private func createDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw IOError(.writeFailed, "\(path): cannot create the output directory")
        }
    }
}

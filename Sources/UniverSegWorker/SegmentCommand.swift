import ArgumentParser
import Foundation
import SegDICOM
import SegIO
import SegKernels
import SegModel
import SegPlatform
import SegService
import SegTiming

struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Segment PNG images or DICOM objects with a support set directory.",
        discussion: """
            Writes OUT/<stem>.mask.png (0/255, at each image's original size) and, with --logits, \
            OUT/<stem>.logits.npy (float32, model resolution: raw logits for one pass, the mean \
            probability map when ensembling). An input that is a DICOM Part-10 file ("DICM" at \
            offset 128, whatever its name) is decoded as `serve` decodes DICOM: every frame, in \
            slice order, through the support set's window when it has one. A single-frame object \
            gets OUT/<stem>.mask.png, a multi-frame one OUT/<stem>.fNNNN.mask.png per frame \
            (NNNN: the frame number in the object, from 0001); both also get OUT/<stem>.seg.dcm, \
            a BINARY DICOM Segmentation over the object. Every input is validated before anything \
            is written.
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

    @Flag(help: "Print where the time went (weights, support set, inputs, inference, output) to standard error.")
    var timings = false

    @Option(name: .customLong("ground-truth"), help: "Directory of ground-truth masks named like the images (nonzero = foreground): prints the Dice score of each mask.")
    var groundTruth: String?

    @Argument(help: "PNG images or DICOM files to segment.")
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
        for suffix in [".png", ".dcm", ".dicom"] where name.count > suffix.count && name.lowercased().hasSuffix(suffix) {
            return String(name.dropLast(suffix.count))
        }
        return name
    }

    /// A decoded input: a PNG image, or a DICOM object with its frames' images in slice order.
    enum Input {
        case png(GrayImage)
        case dicom(bytes: [UInt8], instance: DICOMInstance, frames: [(frame: Int, image: GrayImage)])
    }

    func run() throws {
        BLAS.setThreadCount(threads ?? Platform.availableCores)
        var clock = PhaseClock()
        // Validate everything before writing anything.
        let weightsFile = try WeightsFile(path: try DefaultWeights.resolve(weights))
        let size = weightsFile.model.configuration.inputSize
        clock.lap("weights")
        let supportSet = try SupportSetDirectory.load(directory: support, size: size, threads: Parallel.threadCount)
        clock.lap("support set")
        let options = EnsembleOptions(supportSize: supportSize, ensembleCount: ensemble, seed: seed)
        let subsets = try options.subsets(poolSize: supportSet.tensors.count)
        var decoded: [(path: String, input: Input)] = []
        for path in images {
            let bytes = try FileIO.read(path, maxBytes: 256 << 20)
            do {
                if DICOMSegmenting.isPart10(bytes) {
                    decoded.append((path, try Self.decodeDICOM(bytes, window: supportSet.manifest.window)))
                } else {
                    decoded.append((path, .png(try PNGCodec.decode(bytes))))
                }
            } catch let error as IOError {
                throw IOError(error.code, "\(path): \(error.message)")
            } catch let error as ServiceError {
                throw CLIError("\(path): \(error.reason)")
            }
        }
        try createDirectory(out)
        clock.lap("inputs")

        let session = InferenceSession(model: weightsFile.model)
        var scores: [Double] = []
        /// Segments one image and writes its mask (and logits); returns the 0/255 mask.
        func segmentImage(_ image: GrayImage, name: String) throws -> [UInt8] {
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
            clock.lap("inference")
            try FileIO.writeAtomically(try PNGCodec.encodeGray8(mask, width: image.width, height: image.height),
                                       to: "\(out)/\(name).mask.png")
            if logits {
                try FileIO.writeAtomically(NPY.encodeFloat32(rawLogits ?? probabilities, shape: [size, size]),
                                           to: "\(out)/\(name).logits.npy")
            }
            let foreground = Double(mask.filter { $0 != 0 }.count) / Double(mask.count)
            var line = "\(name): \(image.width)x\(image.height), foreground \(String(format: "%.1f", 100 * foreground))%"
            if let dice = try diceAgainstTruth(stem: name, mask: mask, width: image.width, height: image.height) {
                scores.append(dice)
                line += String(format: ", Dice %.1f", 100 * dice)
            }
            print(line + " -> \(out)/\(name).mask.png")
            return mask
        }

        for (path, input) in decoded {
            let stem = Self.stem(of: path)
            switch input {
            case .png(let image):
                _ = try segmentImage(image, name: stem)
            case .dicom(let bytes, let instance, let frames):
                var masks: [DICOMSegmenting.FrameMask] = []
                for (frame, image) in frames {
                    let name = instance.numberOfFrames == 1 ? stem : stem + String(format: ".f%04d", frame + 1)
                    let mask = try segmentImage(image, name: name)
                    masks.append(.init(ref: .init(instance: 0, frame: frame), width: image.width, height: image.height, mask: mask))
                }
                try writeSEG(bytes: bytes, instance: instance, masks: masks, supportSet: supportSet, weights: weightsFile,
                             to: "\(out)/\(stem).seg.dcm")
            }
        }
        if !scores.isEmpty {
            print(String(format: "mean Dice over %d images: %.1f", scores.count, 100 * scores.reduce(0, +) / Double(scores.count)))
        }
        clock.lap("output")
        if timings { FileHandle.standardError.write(Data((clock.summary + "\n").utf8)) }
    }

    /// Milliseconds per phase, summed over repeated laps of the same phase.
    struct PhaseClock {
        private var last = ContinuousClock.now
        private var phases: [(String, Double)] = []

        mutating func lap(_ phase: String) {
            let now = ContinuousClock.now
            let ms = (now - last).milliseconds
            last = now
            if let i = phases.firstIndex(where: { $0.0 == phase }) { phases[i].1 += ms } else { phases.append((phase, ms)) }
        }

        var summary: String {
            let total = phases.reduce(0) { $0 + $1.1 }
            let started = Platform.processAgeMilliseconds.map { String(format: "process age at exit %.0f ms; ", $0) } ?? ""
            return "timings: " + started + phases.map { "\($0.0) " + String(format: "%.1f ms", $0.1) }.joined(separator: ", ")
                + String(format: "; run %.1f ms", total)
        }
    }

    /// Parses a DICOM object as `serve` does and decodes its frames in slice order (through the
    /// support set's window when it has one), so that nothing is written for a broken object.
    static func decodeDICOM(_ bytes: [UInt8], window: SupportManifest.Window?) throws -> Input {
        let limits = DICOMLimits()
        let instance = try DICOMSegmenting.parse(bytes, limits: limits)
        let frames = try DICOMSegmenting.sliceOrderedFrames([instance], limits: limits).map { ref in
            (frame: ref.frame, image: try DICOMSegmenting.image(instance, frame: ref.frame, window: window))
        }
        return .dicom(bytes: bytes, instance: instance, frames: frames)
    }

    /// The BINARY SEG over one object, described as `serve` describes its SEGs. Its UIDs are
    /// derived from the object's bytes, the weights, the support set and the options, so the same
    /// run gives the same SEG.
    private func writeSEG(bytes: [UInt8], instance: DICOMInstance, masks: [DICOMSegmenting.FrameMask],
                          supportSet: LoadedSupportSet, weights: WeightsFile, to path: String) throws {
        let name = supportSet.manifest.name.flatMap { SegmentationRequest.isValidName($0) ? $0 : nil }
            ?? URL(fileURLWithPath: support).standardizedFileURL.lastPathComponent
        let version = supportSet.manifest.version ?? "local"
        let label = supportSet.manifest.label ?? name
        let identity = [SHA256.hex(bytes), weights.sha256, supportSet.sha256, name, version, "\(seed)", "\(ensemble)",
                        "\(supportSize ?? 0)", "\(threshold)"].joined(separator: "\u{1}")
        let description = DICOMSegmenting.description(
            label: label, weights: weights, supportSetID: name, version: version,
            softwareVersion: "universeg-worker \(WorkerVersion.string)", deviceSerialNumber: ProcessInfo.processInfo.hostName,
            identity: identity)
        do {
            let written = try DICOMSegmenting.writeSEG(sources: [instance], masks: masks, description: description)
            try FileIO.writeAtomically(written.bytes, to: path)
            print("SEG of \(written.frames) frames -> \(path)")
        } catch let error as ServiceError {
            throw CLIError("\(path): \(error.reason)")
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

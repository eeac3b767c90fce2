internal import Foundation
public import SegIO
public import SegModel
internal import SegTiming

/// Turns one request record into a result record: parse and validate, fetch the support set
/// (cached), decode the image, run UniverSeg, encode the mask. Independent of Kafka, so it can
/// be tested and reused by `serve` and `replay`. Every failure becomes a `ServiceError` with a
/// stable code; nothing from the request (pixels, free text) ends up in the reason.
public final class RequestProcessor: Sendable {
    public let weights: WeightsFile
    public let store: SupportSetStore
    public let cache: SupportSetCache
    public let imageLimits: ImageLimits
    public let requestLimits: SegmentationRequest.Limits
    public let workerName: String
    public let dicom: DICOMSettings
    /// Test-only: every inference takes at least this long (it sleeps for the rest), so tests of
    /// long requests do not depend on the machine's speed. Set by `serve` from
    /// UNIVERSEG_TEST_MIN_INFERENCE_MS; nil in production.
    public let minimumInferenceTimeForTesting: Duration?
    /// Test-only: every inference, once computed, waits until this file exists, so a test can hold
    /// a request in flight for as long as it needs (and then release it) on any machine. Set by
    /// `serve` from UNIVERSEG_TEST_INFERENCE_GATE; nil in production.
    public let inferenceGateForTesting: String?
    /// The largest mask PNG a result may carry: base64 makes it 800,000 bytes, which leaves room
    /// for the rest of the result and its copied headers under a 1,000,000-byte record.
    public static let maxMaskPNGBytes = 600_000

    public init(weights: WeightsFile, store: SupportSetStore, cache: SupportSetCache,
                imageLimits: ImageLimits = ImageLimits(maxWidth: 8192, maxHeight: 8192, maxPixels: 40_000_000),
                requestLimits: SegmentationRequest.Limits = .init(), workerName: String,
                minimumInferenceTimeForTesting: Duration? = nil, inferenceGateForTesting: String? = nil,
                dicom: DICOMSettings = DICOMSettings()) {
        self.dicom = dicom
        self.minimumInferenceTimeForTesting = minimumInferenceTimeForTesting
        self.inferenceGateForTesting = inferenceGateForTesting
        self.weights = weights
        self.store = store
        self.cache = cache
        self.imageLimits = imageLimits
        self.requestLimits = requestLimits
        self.workerName = workerName
    }

    /// What this processor depends on, as named in transient errors and in
    /// `universeg_dependency_up{dependency}`.
    public var dependencies: [String] { ["store"] + dicom.servers.keys.sorted().map(DICOMSettings.dependency) }

    public enum Outcome: Sendable {
        /// A result for the results topic.
        case ok(requestID: String, result: SegmentationResult)
        /// A failed request: an error result (when the request had a usable request_id) and the
        /// error for the dead-letter record.
        case failed(requestID: String?, result: SegmentationResult?, error: ServiceError)
        /// A transient failure (`error.dependency` names what is down): no result, no dead
        /// letter; the caller waits and processes the same record again.
        case unavailable(requestID: String?, error: ServiceError)

        public var requestID: String? {
            switch self {
            case .ok(let id, _): id
            case .failed(let id, _, _): id
            case .unavailable(let id, _): id
            }
        }

        /// The same outcome with `"replay": true` in its result.
        public func markedAsReplay() -> Outcome {
            switch self {
            case .ok(let id, var result):
                result.replay = true
                return .ok(requestID: id, result: result)
            case .failed(let id, var result, let error):
                result?.replay = true
                return .failed(requestID: id, result: result, error: error)
            case .unavailable:
                return self
            }
        }
    }

    /// Processes one record value. `session` belongs to the calling thread.
    public func process(value: [UInt8]?, source: SegmentationResult.Source, queuedMs: Double,
                        session: InferenceSession) -> Outcome {
        let start = ContinuousClock.now
        let model = SegmentationResult.Model(name: weights.name, sha256: weights.sha256)
        var requestID: String?
        do {
            let request = try SegmentationRequest.parse(value, limits: requestLimits, requestID: &requestID)
            // Support set.
            let version = try request.supportSetVersion ?? store.latestVersion(of: request.supportSetID)
            let manifestBytes = try store.manifest(id: request.supportSetID, version: version)
            let key = SupportSetCache.Key(id: request.supportSetID, version: version, manifestSHA256: SHA256.hex(manifestBytes))
            let size = weights.model.configuration.inputSize
            let (set, _) = try cache.value(for: key) {
                try store.load(id: request.supportSetID, version: version, manifestBytes: manifestBytes, size: size)
            }
            let ensemble = EnsembleOptions(supportSize: request.options.supportSize,
                                           ensembleCount: request.options.ensemble, seed: request.options.seed)
            let subsets: [[Int]]
            do {
                subsets = try ensemble.subsets(poolSize: set.tensors.count)
            } catch let error as ModelError {
                throw ServiceError(.optionsInvalid, error.message)
            }
            var options = request.options
            options.supportSize = subsets.first?.count
            let supportSet = SegmentationResult.SupportSet(id: request.supportSetID, version: version, sha256: set.sha256,
                                                           sizeUsed: subsets.first?.count ?? 0)
            if request.isDICOM {
                let d = try processDICOM(request, set: set, version: version, ensemble: ensemble, session: session)
                var result = SegmentationResult(
                    requestID: request.requestID, status: "ok",
                    mask: d.singleMask.map { .init(pngBase64: Data($0.png).base64EncodedString(), width: $0.width, height: $0.height) },
                    foregroundFraction: d.foregroundFraction, dice: nil, model: model, supportSet: supportSet, options: options,
                    timingsMs: .init(queue: queuedMs, fetch: (d.fetchedAt - start).milliseconds,
                                     inference: (d.inferredAt - d.fetchedAt).milliseconds,
                                     total: queuedMs + (ContinuousClock.now - start).milliseconds),
                    worker: workerName, source: source, replay: nil, error: nil)
                result.dicomSeg = d.seg
                result.slices = d.slices
                return .ok(requestID: request.requestID, result: result)
            }
            // Image.
            let imageBytes: [UInt8]
            switch request.image {
            case .png(let bytes): imageBytes = bytes
            case .storePath(let path): imageBytes = try store.image(storePath: path)
            case .dicom, .dicomweb: throw ServiceError(.internal, "a DICOM request on the PNG path")
            }
            let image = try decode(imageBytes, field: "image")
            let fetched = ContinuousClock.now
            // Inference.
            let query = Preprocess.image(image, size: size)
            let probabilities = try session.probabilities(query: query, support: set.tensors, options: ensemble)
            let mask = Preprocess.mask(probabilities: probabilities, size: size, width: image.width,
                                       height: image.height, threshold: request.options.threshold)
            let png = try PNGCodec.encodeGray8(mask, width: image.width, height: image.height)
            guard png.count <= Self.maxMaskPNGBytes else {
                // Its result record would be too large to deliver (RecordBounds).
                throw ServiceError(.imageTooLarge, "the mask PNG is \(png.count) bytes, above the \(Self.maxMaskPNGBytes) a result can carry")
            }
            if let minimum = minimumInferenceTimeForTesting {
                let elapsed = ContinuousClock.now - fetched
                if elapsed < minimum { Thread.sleep(forTimeInterval: Double((minimum - elapsed).components.seconds) + Double((minimum - elapsed).components.attoseconds) * 1e-18) }
            }
            if let gate = inferenceGateForTesting {
                while !FileManager.default.fileExists(atPath: gate) { Thread.sleep(forTimeInterval: 0.02) }
            }
            let inferred = ContinuousClock.now
            var dice: Double? = nil
            if let truthBytes = request.groundTruth {
                let truth = try decode(truthBytes, field: "ground_truth")
                guard truth.width == image.width, truth.height == image.height else {
                    throw ServiceError(.invalidRequest, "ground_truth is \(truth.width)x\(truth.height), the image \(image.width)x\(image.height)")
                }
                dice = SegmentationMetrics.dice(mask.map(Float.init), truth.values)
            }
            let result = SegmentationResult(
                requestID: request.requestID, status: "ok",
                mask: .init(pngBase64: Data(png).base64EncodedString(), width: image.width, height: image.height),
                foregroundFraction: Double(mask.lazy.filter { $0 != 0 }.count) / Double(max(mask.count, 1)),
                dice: dice, model: model,
                supportSet: supportSet,
                options: options,
                timingsMs: .init(queue: queuedMs, fetch: (fetched - start).milliseconds, inference: (inferred - fetched).milliseconds,
                                 total: queuedMs + (ContinuousClock.now - start).milliseconds),
                worker: workerName, source: source, replay: nil, error: nil)
            return .ok(requestID: request.requestID, result: result)
        } catch {
            let serviceError: ServiceError
            switch error {
            case let e as ServiceError: serviceError = e
            case let e as ModelError: serviceError = ServiceError(.internal, "model: \(e.message)")
            case let e as IOError: serviceError = ServiceError(.internal, e.message)
            default: serviceError = ServiceError(.internal, "unexpected error")
            }
            if serviceError.isTransient { return .unavailable(requestID: requestID, error: serviceError) }
            let result = requestID.map {
                SegmentationResult(requestID: $0, status: "error", mask: nil, foregroundFraction: nil, dice: nil, model: model,
                                   supportSet: nil, options: nil, timingsMs: nil, worker: workerName, source: source,
                                   replay: nil, error: .init(code: serviceError.code, reason: serviceError.reason))
            }
            return .failed(requestID: requestID, result: result, error: serviceError)
        }
    }

    private func decode(_ bytes: [UInt8], field: String) throws -> GrayImage {
        do {
            return try PNGCodec.decode(bytes, limits: imageLimits)
        } catch let error as IOError {
            throw ServiceError(error.code == .imageTooLarge ? .imageTooLarge : .imageDecode, "\(field): \(error.message)")
        }
    }
}

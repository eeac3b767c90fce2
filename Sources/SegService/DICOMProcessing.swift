internal import Foundation
public import SegDICOM
public import SegDICOMweb
internal import SegIO
internal import SegModel

/// What the DICOM path needs besides the PNG path's parts: the configured DICOMweb servers (by
/// name: a request names one, never a URL), limits, and how the SEG describes its producer.
public struct DICOMSettings: Sendable {
    public var servers: [String: DICOMwebClient]
    public var limits: DICOMLimits
    /// Bytes of all instances of one request together.
    public var maxRequestBytes: Int
    /// SoftwareVersions of the SEG ("universeg-worker 1.2.0").
    public var softwareVersion: String

    public init(servers: [String: DICOMwebClient] = [:], limits: DICOMLimits = DICOMLimits(),
                maxRequestBytes: Int = 256 << 20, softwareVersion: String = "universeg-worker") {
        self.servers = servers
        self.limits = limits
        self.maxRequestBytes = maxRequestBytes
        self.softwareVersion = softwareVersion
    }

    static func dependency(_ server: String) -> String { "dicomweb:\(server)" }
}

/// The DICOM result of one request before it becomes a result record.
struct DICOMOutcome {
    var seg: SegmentationResult.DICOMSeg
    var slices: [SegmentationResult.Slice]
    /// Single-frame requests also carry the PNG mask.
    var singleMask: (png: [UInt8], width: Int, height: Int)?
    var foregroundFraction: Double
    var fetchedAt: ContinuousClock.Instant
    var inferredAt: ContinuousClock.Instant
}

extension RequestProcessor {
    /// Fetches (or decodes) the DICOM input, segments every frame in slice order with the same
    /// support subsets, writes one BINARY SEG and stores it with STOW-RS (or returns it inline).
    func processDICOM(_ request: SegmentationRequest, set: LoadedSupportSet, version: String,
                      ensemble: EnsembleOptions, session: InferenceSession) throws -> DICOMOutcome {
        let limits = dicom.limits
        // Where the SEG goes, checked before anything is fetched or computed.
        var sourceServer: String?
        if case .dicomweb(let reference) = request.image { sourceServer = reference.server }
        let target = request.output.dicomwebServer ?? sourceServer
        if request.output.stow == true && target == nil {
            throw ServiceError(.invalidRequest, "output.stow is true but there is no DICOMweb server to store on (set output.dicomweb_server)")
        }
        let storeClient = try target.flatMap { name in
            request.output.stow == false ? nil
                : try dicomClient(name, field: request.output.dicomwebServer != nil ? "output.dicomweb_server" : "image.dicomweb.server")
        }
        var instances: [DICOMInstance] = []
        switch request.image {
        case .dicom(let bytes):
            instances = [try DICOMSegmenting.parse(bytes, limits: limits)]
        case .dicomweb(let reference):
            let client = try dicomClient(reference.server, field: "image.dicomweb.server")
            let uids = try reference.instanceUIDs ?? Self.web(reference.server) {
                try client.instanceUIDs(study: reference.studyUID, series: reference.seriesUID, limit: limits.maxFrames)
            }
            var total = 0
            for uid in uids {
                let remaining = dicom.maxRequestBytes - total
                guard remaining > 0 else {
                    throw ServiceError(.dicomTooLarge, "the series is above \(dicom.maxRequestBytes) bytes (dicom.max_request_bytes)")
                }
                let bytes = try Self.web(reference.server) {
                    try client.retrieveInstance(study: reference.studyUID, series: reference.seriesUID, instance: uid,
                                                maxBytes: min(limits.maxInstanceBytes, remaining))
                }
                total += bytes.count
                let instance = try DICOMSegmenting.parse(bytes, limits: limits)
                guard instance.studyInstanceUID == reference.studyUID, instance.seriesInstanceUID == reference.seriesUID,
                      instance.sopInstanceUID == uid else {
                    throw ServiceError(.dicomInvalid, "an instance the server returned is not the one requested (study, series or SOP instance UID differs)")
                }
                instances.append(instance)
            }
        case .png, .storePath:
            throw ServiceError(.internal, "processDICOM called for a PNG request")
        }
        let frames = try DICOMSegmenting.sliceOrderedFrames(instances, limits: limits)
        let first = instances[0]
        let fetched = ContinuousClock.now

        // Inference, slice by slice, with the same support subsets for every slice.
        let size = weights.model.configuration.inputSize
        let masks = try DICOMSegmenting.segment(instances, frames: frames, window: set.manifest.window, support: set.tensors,
                                                ensemble: ensemble, threshold: request.options.threshold,
                                                session: session, size: size)
        var slices: [SegmentationResult.Slice] = []
        var foreground = 0, pixels = 0
        for mask in masks {
            let count = mask.foreground
            foreground += count
            pixels += mask.mask.count
            slices.append(.init(sopInstanceUID: instances[mask.ref.instance].sopInstanceUID, frame: mask.ref.frame + 1,
                                foregroundFraction: Double(count) / Double(max(mask.mask.count, 1))))
        }
        let inferred = ContinuousClock.now

        // The SEG. Its UIDs are derived from the request and its inputs, so a redelivered request
        // stores the same instance again instead of a second SEG.
        let label = set.manifest.label ?? request.supportSetID
        let identity = [request.requestID, first.studyInstanceUID, first.seriesInstanceUID, weights.sha256, set.sha256,
                        request.supportSetID, version, "\(request.options.seed)", "\(request.options.ensemble)",
                        "\(request.options.supportSize ?? 0)", "\(request.options.threshold)"].joined(separator: "\u{1}")
        let description = DICOMSegmenting.description(
            label: label, weights: weights, supportSetID: request.supportSetID, version: version,
            softwareVersion: dicom.softwareVersion, deviceSerialNumber: workerName, identity: identity)
        let written = try DICOMSegmenting.writeSEG(sources: instances, masks: masks, description: description)
        var seg = SegmentationResult.DICOMSeg(server: nil, studyUID: written.studyInstanceUID, seriesUID: written.seriesInstanceUID,
                                              sopInstanceUID: written.sopInstanceUID, frames: written.frames, retrieveURL: nil, base64: nil)
        if let storeClient, let target {
            let receipt = try Self.web(target) { try storeClient.store(study: written.studyInstanceUID, instance: written.bytes) }
            seg.server = target
            seg.retrieveURL = receipt.retrieveURL
        } else {
            guard written.bytes.count <= Self.maxInlineSEGBytes else {
                throw ServiceError(.dicomTooLarge, "the SEG is \(written.bytes.count) bytes, above the \(Self.maxInlineSEGBytes) a result can carry; store it on a DICOMweb server instead")
            }
            seg.base64 = Data(written.bytes).base64EncodedString()
        }
        var single: (png: [UInt8], width: Int, height: Int)?
        if let only = masks.first, masks.count == 1 {
            let png = try PNGCodec.encodeGray8(only.mask, width: first.columns, height: first.rows)
            if png.count <= Self.maxMaskPNGBytes { single = (png, first.columns, first.rows) }
        }
        return DICOMOutcome(seg: seg, slices: slices, singleMask: single,
                            foregroundFraction: Double(foreground) / Double(max(pixels, 1)), fetchedAt: fetched, inferredAt: inferred)
    }

    /// The largest SEG a result carries inline (base64 adds a third): leaves room for the rest of
    /// the result under a 1,000,000-byte record.
    static let maxInlineSEGBytes = 600_000

    func dicomClient(_ name: String, field: String) throws -> DICOMwebClient {
        guard let client = dicom.servers[name] else {
            throw ServiceError(.invalidRequest, "\(field) names no configured DICOMweb server")
        }
        return client
    }

    /// Runs a DICOMweb call; a server that is down, slow or failing is a transient failure of
    /// `dicomweb:NAME`, everything else a permanent error of the request.
    static func web<T>(_ server: String, _ call: () throws -> T) throws -> T {
        do {
            return try call()
        } catch let error as DICOMwebError {
            switch error.kind {
            case .unavailable: throw ServiceError.unavailable(DICOMSettings.dependency(server), error.message)
            case .notFound: throw ServiceError(.dicomNotFound, error.message)
            case .tooLarge: throw ServiceError(.dicomTooLarge, error.message)
            case .rejected: throw ServiceError(.dicomStoreRejected, error.message)
            case .invalidResponse, .badRequest: throw ServiceError(.dicomInvalid, error.message)
            }
        }
    }
}

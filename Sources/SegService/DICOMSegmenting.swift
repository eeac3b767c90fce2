internal import Foundation
public import SegDICOM
public import SegIO
public import SegModel

/// The DICOM steps that `serve` (``RequestProcessor``) and the command line (`segment`) share:
/// parsing, slice order, per-frame inference with `Preprocess`, the SEG's description and writing.
public enum DICOMSegmenting {
    /// One frame of one instance (both 0-based).
    public struct FrameRef: Sendable, Hashable {
        public var instance: Int
        public var frame: Int
        public init(instance: Int, frame: Int) {
            self.instance = instance
            self.frame = frame
        }
    }

    /// The mask of one frame at the frame's size (0/255, row-major).
    public struct FrameMask: Sendable {
        public var ref: FrameRef
        public var width: Int
        public var height: Int
        public var mask: [UInt8]
        public var foreground: Int { mask.lazy.filter { $0 != 0 }.count }
        public init(ref: FrameRef, width: Int, height: Int, mask: [UInt8]) {
            self.ref = ref
            self.width = width
            self.height = height
            self.mask = mask
        }
    }

    /// True when `bytes` is a DICOM Part-10 file: "DICM" at offset 128, after the preamble.
    public static func isPart10(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 132 && bytes[128] == 0x44 && bytes[129] == 0x49 && bytes[130] == 0x43 && bytes[131] == 0x4D
    }

    public static func parse(_ bytes: [UInt8], limits: DICOMLimits) throws(ServiceError) -> DICOMInstance {
        do {
            return try DICOMInstance.parse(bytes, limits: limits)
        } catch {
            throw serviceError(error)
        }
    }

    public static func serviceError(_ error: DICOMError) -> ServiceError {
        switch error.kind {
        case .invalid: ServiceError(.dicomInvalid, error.message)
        case .unsupported: ServiceError(.dicomUnsupported, error.message)
        case .tooLarge: ServiceError(.dicomTooLarge, error.message)
        // Not the request's fault: it waits (never a dead letter) until an operator installs
        // the library and restarts the worker.
        case .unavailable: ServiceError.unavailable("dcmtk", error.message)
        }
    }

    /// Every frame of `instances` in slice order (``SliceOrder``), after checking that the
    /// instances form one stack: same Rows/Columns, one frame of reference, at most
    /// `limits.maxFrames` frames.
    public static func sliceOrderedFrames(_ instances: [DICOMInstance], limits: DICOMLimits) throws(ServiceError) -> [FrameRef] {
        guard let first = instances.first else { throw ServiceError(.dicomNotFound, "the series has no instances") }
        guard instances.allSatisfy({ $0.rows == first.rows && $0.columns == first.columns }) else {
            throw ServiceError(.dicomUnsupported, "the instances differ in Rows/Columns (a mixed series); request instance_uids of one size")
        }
        if let frameOfReference = first.frameOfReferenceUID {
            guard instances.allSatisfy({ $0.frameOfReferenceUID == frameOfReference }) else {
                throw ServiceError(.dicomUnsupported, "the instances have different frames of reference (a mixed series)")
            }
        }
        var frames: [FrameRef] = []
        for (i, instance) in instances.enumerated() {
            for f in 0..<instance.numberOfFrames { frames.append(FrameRef(instance: i, frame: f)) }
        }
        guard frames.count <= limits.maxFrames else {
            throw ServiceError(.dicomTooLarge, "\(frames.count) frames, above the \(limits.maxFrames) of dicom.max_frames")
        }
        let order = SliceOrder.order(frames.map { ref in
            let instance = instances[ref.instance]
            return SliceOrder.Slice(position: instance.imagePositions[ref.frame], orientation: instance.imageOrientationPatient,
                                    instanceNumber: instance.instanceNumber)
        })
        return order.map { frames[$0] }
    }

    /// The model input image of one frame: modality values, through `window` when given (the
    /// support set's), as a `GrayImage` that `Preprocess.image` then resizes and min-max scales.
    public static func image(_ instance: DICOMInstance, frame: Int, window: SupportManifest.Window?) throws(ServiceError) -> GrayImage {
        var values: [Float]
        do {
            values = try instance.frame(frame)
        } catch {
            throw serviceError(error)
        }
        if let window { values = DICOMWindow(center: window.center, width: window.width).apply(values) }
        return GrayImage(width: instance.columns, height: instance.rows, values: values)
    }

    /// Segments `frames` one by one with the same support subsets (`ensemble`), as the PNG path
    /// does for one image: `Preprocess.image`, mean probabilities, `Preprocess.mask`.
    public static func segment(_ instances: [DICOMInstance], frames: [FrameRef], window: SupportManifest.Window?,
                               support: SupportTensors, ensemble: EnsembleOptions, threshold: Float,
                               session: InferenceSession, size: Int) throws -> [FrameMask] {
        var masks: [FrameMask] = []
        masks.reserveCapacity(frames.count)
        for ref in frames {
            let instance = instances[ref.instance]
            let image = try image(instance, frame: ref.frame, window: window)
            let probabilities = try session.probabilities(query: Preprocess.image(image, size: size), support: support, options: ensemble)
            let mask = Preprocess.mask(probabilities: probabilities, size: size, width: instance.columns,
                                       height: instance.rows, threshold: threshold)
            masks.append(FrameMask(ref: ref, width: instance.columns, height: instance.rows, mask: mask))
        }
        return masks
    }

    /// How every SEG this program writes describes itself. `identity` names the inputs; the
    /// series and SOP instance UIDs are derived from it, so the same inputs give the same UIDs.
    public static func description(label: String, weights: WeightsFile, supportSetID: String, version: String,
                                   softwareVersion: String, deviceSerialNumber: String, identity: String) -> SegmentationDescription {
        SegmentationDescription(
            segmentLabel: label, algorithmName: "UniverSeg",
            algorithmVersion: lo("\(weights.name) sha256:\(weights.sha256.prefix(16)) \(supportSetID)@\(version)"),
            manufacturer: "universeg-worker", manufacturerModelName: lo("UniverSeg \(weights.name)"),
            softwareVersions: lo(softwareVersion), deviceSerialNumber: lo(deviceSerialNumber),
            seriesDescription: lo("UniverSeg \(label)"), seriesNumber: 9901,
            seriesInstanceUID: DerivedUID.make(identity + "\u{1}series"),
            sopInstanceUID: DerivedUID.make(identity + "\u{1}instance"))
    }

    /// One BINARY SEG over `instances` with a frame per mask (in the masks' order).
    public static func writeSEG(sources instances: [DICOMInstance], masks: [FrameMask],
                                description: SegmentationDescription) throws(ServiceError) -> WrittenSegmentation {
        let frames = masks.map { SegmentationFrame(source: $0.ref.instance, sourceFrame: $0.ref.frame, mask: $0.mask.map { $0 != 0 ? 1 : 0 }) }
        do {
            return try SegmentationWriter.write(sources: instances, frames: frames, description: description)
        } catch {
            throw serviceError(error)
        }
    }

    /// A DICOM LO value: at most 64 characters, no backslash (the value separator) or control characters.
    public static func lo(_ text: String) -> String {
        String(text.filter { $0 != "\\" && !$0.isNewline && $0.asciiValue.map { $0 >= 32 } ?? true }.prefix(64))
    }
}

/// UIDs derived from a name (PS3.5 B.2: the 2.25 root followed by a 128-bit number), so that the
/// same request always produces the same UIDs.
public enum DerivedUID {
    public static func make(_ name: String) -> String {
        let digest = SHA256.digest(Array(name.utf8))
        var value: UInt128 = 0
        for byte in digest.prefix(16) { value = value << 8 | UInt128(byte) }
        return "2.25.\(value)"
    }
}

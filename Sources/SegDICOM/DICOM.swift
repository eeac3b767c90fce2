// DICOM objects over the CDcmtk shim: parsing with limits, frames as modality values, VOI windows, slice order.
internal import CDcmtk
import Foundation

/// The DCMTK shim library (libUniverSegDCMTK.so), loaded at the first DICOM call.
public enum DCMTK {
    /// The DCMTK version the shim was built against; "" when the shim cannot be loaded.
    public static var version: String { String(cString: dcmshim_version()) }

    /// Nil when the shim is loaded (loading it now if need be), else why it cannot be: DICOM
    /// inputs then fail with `DICOMError.Kind.unavailable`.
    public static var loadError: String? { dcmshim_load_error().map { String(cString: $0) } }
}

/// A DICOM input that cannot be used. `message` never contains patient data (it goes to logs and dead letters).
public struct DICOMError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case invalid, unsupported, tooLarge
        /// The DICOM library cannot be loaded: an installation fault, not the input's.
        case unavailable

        /// The error code used in results and dead letters.
        public var code: String {
            switch self {
            case .invalid: "dicom_invalid"
            case .unsupported: "dicom_unsupported"
            case .tooLarge: "dicom_too_large"
            case .unavailable: "dicom_unavailable"
            }
        }
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "\(kind.code): \(message)" }

    /// The error the shim reported in `error` with status `code`.
    init(code: Int32, error: dcmshim_error) {
        let kind: Kind =
            switch code {
            case Int32(DCMSHIM_UNSUPPORTED): .unsupported
            case Int32(DCMSHIM_TOO_LARGE): .tooLarge
            case Int32(DCMSHIM_UNAVAILABLE): .unavailable
            default: .invalid
            }
        var message = error
        let text = withUnsafeBytes(of: &message.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        self.init(kind, text.isEmpty ? "DICOM processing failed" : text)
    }
}

/// Bounds checked before any pixel buffer is allocated.
public struct DICOMLimits: Sendable {
    public var maxFrames = 512
    public var maxRows = 8192
    public var maxColumns = 8192
    public var maxPixelsPerFrame = 40_000_000
    public var maxInstanceBytes = 256 << 20

    public init() {}

    var shim: dcmshim_limits {
        dcmshim_limits(
            max_frames: Int64(maxFrames), max_rows: Int64(maxRows), max_columns: Int64(maxColumns),
            max_pixels_per_frame: Int64(maxPixelsPerFrame), max_instance_bytes: Int64(maxInstanceBytes))
    }
}

/// A string from a fixed-size C character array (a tuple) up to its first NUL.
func cString<T>(_ tuple: T) -> String {
    var copy = tuple
    return withUnsafeBytes(of: &copy) { raw in String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self) }
}

/// Values of a fixed-size C double array (a tuple).
func doubles<T>(_ tuple: T, count: Int) -> [Double] {
    var copy = tuple
    return withUnsafeBytes(of: &copy) { raw in Array(raw.bindMemory(to: Double.self).prefix(count)) }
}

/// The DCMTK object behind a DICOMInstance; DCMTK objects are not thread-safe, so every use holds the lock.
final class ParsedImage: @unchecked Sendable {
    private let pointer: OpaquePointer
    private let lock = NSLock()

    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { dcmshim_image_close(pointer) }

    func withImage<R>(_ body: (OpaquePointer) throws(DICOMError) -> R) throws(DICOMError) -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(pointer)
    }
}

/// One parsed DICOM image object (single- or multi-frame). The parsed DCMTK object (which holds its own copy of the
/// element values) is kept for `frame(_:)`, so an instance costs about twice its size in memory.
public struct DICOMInstance: Sendable {
    /// The Part-10 bytes (kept for SEG writing).
    public let bytes: [UInt8]
    public let sopClassUID: String
    public let sopInstanceUID: String
    public let studyInstanceUID: String
    public let seriesInstanceUID: String
    public let transferSyntaxUID: String
    public let modality: String?
    public let frameOfReferenceUID: String?
    public let rows: Int
    public let columns: Int
    public let numberOfFrames: Int
    public let instanceNumber: Int?
    /// 6 values, from the top level or the shared/per-frame functional groups.
    public let imageOrientationPatient: [Double]?
    /// One entry per frame (3 values) or nil.
    public let imagePositions: [[Double]?]
    public let pixelSpacing: [Double]?
    public let sliceThickness: Double?
    public let photometricInterpretation: String
    public let samplesPerPixel: Int
    public let bitsAllocated: Int
    public let bitsStored: Int
    public let isSigned: Bool

    private let parsed: ParsedImage

    /// Parses `bytes`; attributes are validated against `limits` before any pixel data is decoded.
    public static func parse(_ bytes: [UInt8], limits: DICOMLimits) throws(DICOMError) -> DICOMInstance {
        var shimLimits = limits.shim
        var error = dcmshim_error()
        var pointer: OpaquePointer?
        let code = bytes.withUnsafeBufferPointer { buffer in
            dcmshim_image_open(buffer.baseAddress, buffer.count, &shimLimits, &pointer, &error)
        }
        guard code == Int32(DCMSHIM_OK), let pointer else { throw DICOMError(code: code, error: error) }
        return DICOMInstance(bytes: bytes, parsed: ParsedImage(pointer), pointer: pointer)
    }

    private init(bytes: [UInt8], parsed: ParsedImage, pointer: OpaquePointer) {
        var info = dcmshim_info()
        dcmshim_image_info(pointer, &info)
        self.bytes = bytes
        self.parsed = parsed
        sopClassUID = cString(info.sop_class_uid)
        sopInstanceUID = cString(info.sop_instance_uid)
        studyInstanceUID = cString(info.study_instance_uid)
        seriesInstanceUID = cString(info.series_instance_uid)
        transferSyntaxUID = cString(info.transfer_syntax_uid)
        modality = info.has_modality != 0 ? cString(info.modality) : nil
        frameOfReferenceUID = info.has_frame_of_reference != 0 ? cString(info.frame_of_reference_uid) : nil
        rows = Int(info.rows)
        columns = Int(info.columns)
        numberOfFrames = Int(info.frames)
        instanceNumber = info.has_instance_number != 0 ? Int(info.instance_number) : nil
        imageOrientationPatient = info.has_orientation != 0 ? doubles(info.orientation, count: 6) : nil
        pixelSpacing = info.has_pixel_spacing != 0 ? doubles(info.pixel_spacing, count: 2) : nil
        sliceThickness = info.has_slice_thickness != 0 ? info.slice_thickness : nil
        photometricInterpretation = cString(info.photometric)
        samplesPerPixel = Int(info.samples_per_pixel)
        bitsAllocated = Int(info.bits_allocated)
        bitsStored = Int(info.bits_stored)
        isSigned = info.pixel_representation == 1
        imagePositions = (0..<Int(info.frames)).map { frame in
            var position = [Double](repeating: 0, count: 3)
            guard dcmshim_image_position(pointer, Int32(frame), &position) != 0 else { return nil }
            return position
        }
    }

    /// Modality values of frame `index` (0-based), row-major rows*columns: stored values with RescaleSlope/Intercept
    /// applied (also from functional groups), RGB/YBR_FULL/YBR_FULL_422 converted to luminance (BT.601),
    /// MONOCHROME1 inverted so that larger always means brighter.
    ///
    /// Details: samples are shifted by HighBit + 1 - BitsStored, masked to BitsStored and sign-extended when
    /// PixelRepresentation is 1. MONOCHROME1 is inverted within the stored range (min + max - stored) before the
    /// rescale. Colour frames give the luminance of the stored samples (0.299 R + 0.587 G + 0.114 B, or Y for YBR)
    /// without a rescale. Compressed frames are decoded one at a time.
    public func frame(_ index: Int) throws(DICOMError) -> [Float] {
        guard index >= 0, index < numberOfFrames else {
            throw DICOMError(.invalid, "frame \(index) out of range 0..<\(numberOfFrames)")
        }
        let count = rows * columns
        return try parsed.withImage { (pointer) throws(DICOMError) -> [Float] in
            var error = dcmshim_error()
            var code = Int32(DCMSHIM_OK)
            let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                code = dcmshim_image_frame(pointer, Int32(index), buffer.baseAddress, count, &error)
                if code != Int32(DCMSHIM_OK) {
                    buffer.initialize(repeating: 0)
                }
                initialized = count
            }
            guard code == Int32(DCMSHIM_OK) else { throw DICOMError(code: code, error: error) }
            return values
        }
    }
}

/// A VOI window (center/width).
public struct DICOMWindow: Sendable, Equatable {
    public var center: Double
    public var width: Double

    public init(center: Double, width: Double) {
        self.center = center
        self.width = width
    }

    /// DICOM linear VOI function (PS3.3 C.11.2.1.2.1) mapping to 0...1.
    /// A width below 1 is treated as 1 (the standard requires width >= 1).
    public func apply(_ values: [Float]) -> [Float] {
        let w = max(width, 1)
        let lower = center - 0.5 - (w - 1) / 2
        let upper = center - 0.5 + (w - 1) / 2
        return values.map { value in
            let x = Double(value)
            if x <= lower { return 0 }
            if x > upper { return 1 }
            return Float((x - (center - 0.5)) / (w - 1) + 0.5)
        }
    }
}

/// Ordering of the slices of a series.
public enum SliceOrder {
    public struct Slice: Sendable {
        public var position: [Double]?
        public var orientation: [Double]?
        public var instanceNumber: Int?

        public init(position: [Double]? = nil, orientation: [Double]? = nil, instanceNumber: Int? = nil) {
            self.position = position
            self.orientation = orientation
            self.instanceNumber = instanceNumber
        }
    }

    /// Indices sorted by position along the slice normal (cross product of the two IOP direction cosines) when every
    /// slice has a position and all share one orientation; else by InstanceNumber (missing last); ties keep input order.
    public static func order(_ slices: [Slice]) -> [Int] {
        let indices = Array(slices.indices)
        if let normal = commonNormal(slices) {
            let distance = slices.map { slice -> Double in
                let p = slice.position ?? [0, 0, 0]
                return p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2]
            }
            return indices.sorted { a, b in distance[a] != distance[b] ? distance[a] < distance[b] : a < b }
        }
        return indices.sorted { a, b in
            switch (slices[a].instanceNumber, slices[b].instanceNumber) {
            case let (x?, y?): x != y ? x < y : a < b
            case (.some, nil): true
            case (nil, .some): false
            case (nil, nil): a < b
            }
        }
    }

    /// The slice normal when every slice has a 3-value position and all share one 6-value orientation.
    private static func commonNormal(_ slices: [Slice]) -> [Double]? {
        guard let first = slices.first?.orientation, first.count == 6, first.allSatisfy(\.isFinite) else { return nil }
        for slice in slices {
            guard let position = slice.position, position.count == 3, position.allSatisfy(\.isFinite),
                let orientation = slice.orientation, orientation.count == 6,
                zip(orientation, first).allSatisfy({ abs($0 - $1) < 1e-4 })
            else { return nil }
        }
        let r = Array(first[0..<3]), c = Array(first[3..<6])
        let normal = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]]
        guard normal.contains(where: { $0 != 0 }) else { return nil }
        return normal
    }
}

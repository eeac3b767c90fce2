// DICOM Segmentation (BINARY, one segment) writing with DCMTK's dcmseg, and reading back.
internal import CDcmtk
import Foundation

/// What the written Segmentation says about itself and its producer.
public struct SegmentationDescription: Sendable {
    public var segmentLabel: String
    public var algorithmName: String
    public var algorithmVersion: String
    public var manufacturer: String
    public var manufacturerModelName: String
    public var softwareVersions: String
    public var deviceSerialNumber: String
    public var seriesDescription: String
    public var seriesNumber: Int
    /// nil: a new UID.
    public var seriesInstanceUID: String?
    /// nil: a new UID.
    public var sopInstanceUID: String?

    public init(
        segmentLabel: String, algorithmName: String, algorithmVersion: String, manufacturer: String,
        manufacturerModelName: String, softwareVersions: String, deviceSerialNumber: String,
        seriesDescription: String, seriesNumber: Int, seriesInstanceUID: String? = nil, sopInstanceUID: String? = nil
    ) {
        self.sopInstanceUID = sopInstanceUID
        self.segmentLabel = segmentLabel
        self.algorithmName = algorithmName
        self.algorithmVersion = algorithmVersion
        self.manufacturer = manufacturer
        self.manufacturerModelName = manufacturerModelName
        self.softwareVersions = softwareVersions
        self.deviceSerialNumber = deviceSerialNumber
        self.seriesDescription = seriesDescription
        self.seriesNumber = seriesNumber
        self.seriesInstanceUID = seriesInstanceUID
    }
}

/// One frame of the Segmentation and the source frame it was computed from.
public struct SegmentationFrame: Sendable {
    /// Index into the sources.
    public var source: Int
    /// 0-based frame of that source.
    public var sourceFrame: Int
    /// rows*columns of the source, 0 or 1.
    public var mask: [UInt8]

    public init(source: Int, sourceFrame: Int, mask: [UInt8]) {
        self.source = source
        self.sourceFrame = sourceFrame
        self.mask = mask
    }
}

public struct WrittenSegmentation: Sendable {
    public let bytes: [UInt8]
    public let sopInstanceUID: String
    public let seriesInstanceUID: String
    public let studyInstanceUID: String
    public let frames: Int
}

public enum SegmentationWriter {
    /// A BINARY Segmentation with one segment and one frame per element of `frames` (empty masks included), in the
    /// study of the sources; patient and study are taken from the first source, each frame references its source.
    public static func write(
        sources: [DICOMInstance], frames: [SegmentationFrame], description: SegmentationDescription
    ) throws(DICOMError) -> WrittenSegmentation {
        guard let first = sources.first else { throw DICOMError(.invalid, "no source images") }
        guard !frames.isEmpty else { throw DICOMError(.invalid, "no segmentation frames") }
        guard frames.count <= 65535 else { throw DICOMError(.tooLarge, "more than 65535 segmentation frames") }
        let rows = first.rows, columns = first.columns
        guard rows <= 65535, columns <= 65535 else { throw DICOMError(.tooLarge, "source too large") }
        for (index, source) in sources.enumerated() {
            guard source.rows == rows, source.columns == columns else {
                throw DICOMError(.invalid, "source \(index) is \(source.rows)x\(source.columns), the first is \(rows)x\(columns)")
            }
            guard source.studyInstanceUID == first.studyInstanceUID else {
                throw DICOMError(.invalid, "source \(index) belongs to another study than the first source")
            }
        }
        let required: [(String, String)] = [
            ("segment label", description.segmentLabel), ("algorithm name", description.algorithmName),
            ("algorithm version", description.algorithmVersion), ("manufacturer", description.manufacturer),
            ("manufacturer model name", description.manufacturerModelName),
            ("software versions", description.softwareVersions),
            ("device serial number", description.deviceSerialNumber),
        ]
        for (name, value) in required where value.trimmingCharacters(in: .whitespaces).isEmpty {
            throw DICOMError(.invalid, "the \(name) is empty")
        }
        let pixels = rows * columns
        for (index, frame) in frames.enumerated() {
            guard sources.indices.contains(frame.source) else {
                throw DICOMError(.invalid, "frame \(index) references source \(frame.source) of \(sources.count)")
            }
            let source = sources[frame.source]
            guard frame.sourceFrame >= 0, frame.sourceFrame < source.numberOfFrames else {
                throw DICOMError(.invalid, "frame \(index) references source frame \(frame.sourceFrame) of \(source.numberOfFrames)")
            }
            guard frame.mask.count == pixels else {
                throw DICOMError(.invalid, "frame \(index) has \(frame.mask.count) mask values, expected \(pixels)")
            }
        }

        // Geometry: positions only with a common Frame of Reference and a position for every frame.
        let positions = frames.map { sources[$0.source].imagePositions[$0.sourceFrame] }
        let usePositions =
            first.frameOfReferenceUID != nil
            && frames.allSatisfy { sources[$0.source].frameOfReferenceUID == first.frameOfReferenceUID }
            && positions.allSatisfy { $0?.count == 3 } && first.imageOrientationPatient?.count == 6
        var geometry = dcmshim_seg_geometry()
        geometry.rows = Int32(rows)
        geometry.columns = Int32(columns)
        if let orientation = first.imageOrientationPatient, orientation.count == 6 {
            geometry.has_orientation = 1
            withUnsafeMutableBytes(of: &geometry.orientation) { raw in
                for (i, v) in orientation.enumerated() { raw.storeBytes(of: v, toByteOffset: i * 8, as: Double.self) }
            }
        }
        if let spacing = first.pixelSpacing, spacing.count == 2 {
            geometry.has_pixel_spacing = 1
            geometry.pixel_spacing = (spacing[0], spacing[1])
        }
        if let thickness = first.sliceThickness, usePositions {
            geometry.has_slice_thickness = 1
            geometry.slice_thickness = thickness
        }
        geometry.use_positions = usePositions ? 1 : 0

        // One contiguous buffer for the sources and one for the masks; offsets are resolved inside.
        var sourceOffsets: [Int] = []
        var allSources: [UInt8] = []
        allSources.reserveCapacity(sources.reduce(0) { $0 + $1.bytes.count })
        for source in sources {
            sourceOffsets.append(allSources.count)
            allSources.append(contentsOf: source.bytes)
        }
        var allMasks: [UInt8] = []
        allMasks.reserveCapacity(pixels * frames.count)
        for frame in frames { allMasks.append(contentsOf: frame.mask) }

        let texts: [String] = [
            description.segmentLabel, description.algorithmName, description.algorithmVersion, description.manufacturer,
            description.manufacturerModelName, description.softwareVersions, description.deviceSerialNumber,
            description.seriesDescription, description.seriesInstanceUID ?? "", description.sopInstanceUID ?? "",
        ]
        let strings = texts.map { strdup($0) }
        defer { for s in strings { free(s) } }
        guard strings.allSatisfy({ $0 != nil }) else { throw DICOMError(.tooLarge, "out of memory") }
        var shimDescription = dcmshim_seg_description(
            segment_label: strings[0], algorithm_name: strings[1], algorithm_version: strings[2],
            manufacturer: strings[3], manufacturer_model_name: strings[4], software_versions: strings[5],
            device_serial_number: strings[6], series_description: strings[7], series_number: Int32(clamping: description.seriesNumber),
            series_instance_uid: description.seriesInstanceUID == nil ? nil : UnsafePointer(strings[8]),
            sop_instance_uid: description.sopInstanceUID == nil ? nil : UnsafePointer(strings[9]))

        var output = dcmshim_seg_output()
        var error = dcmshim_error()
        let code = allSources.withUnsafeBufferPointer { sourceBuffer in
            allMasks.withUnsafeBufferPointer { maskBuffer in
                let buffers = sources.indices.map { i in
                    dcmshim_buffer(bytes: sourceBuffer.baseAddress! + sourceOffsets[i], length: sources[i].bytes.count)
                }
                let shimFrames = frames.indices.map { i in
                    var f = dcmshim_seg_input_frame()
                    f.source = Int32(frames[i].source)
                    f.source_frame = Int32(frames[i].sourceFrame)
                    f.source_is_multiframe = sources[frames[i].source].numberOfFrames > 1 ? 1 : 0
                    f.mask = maskBuffer.baseAddress! + i * pixels
                    if let p = positions[i], p.count == 3 {
                        f.has_position = 1
                        f.position = (p[0], p[1], p[2])
                    }
                    return f
                }
                return dcmshim_seg_write(
                    buffers, buffers.count, shimFrames, shimFrames.count, &geometry, &shimDescription, &output, &error)
            }
        }
        guard code == Int32(DCMSHIM_OK), let pointer = output.bytes else { throw DICOMError(code: code, error: error) }
        defer { dcmshim_free(pointer) }
        let bytes = Array(UnsafeBufferPointer(start: pointer, count: output.length))
        return WrittenSegmentation(
            bytes: bytes, sopInstanceUID: cString(output.sop_instance_uid),
            seriesInstanceUID: cString(output.series_instance_uid), studyInstanceUID: cString(output.study_instance_uid),
            frames: frames.count)
    }
}

/// The frames of a Segmentation as masks, with the source references of each frame.
public struct SegmentationContents: Sendable {
    public struct Frame: Sendable {
        public var segmentNumber: Int
        public var sourceSOPInstanceUID: String?
        /// 0-based.
        public var sourceFrame: Int?
        /// 0/1.
        public var mask: [UInt8]

        public init(segmentNumber: Int, sourceSOPInstanceUID: String?, sourceFrame: Int?, mask: [UInt8]) {
            self.segmentNumber = segmentNumber
            self.sourceSOPInstanceUID = sourceSOPInstanceUID
            self.sourceFrame = sourceFrame
            self.mask = mask
        }
    }

    public var rows: Int
    public var columns: Int
    public var segmentLabels: [Int: String]
    public var frames: [Frame]

    public init(rows: Int, columns: Int, segmentLabels: [Int: String], frames: [Frame]) {
        self.rows = rows
        self.columns = columns
        self.segmentLabels = segmentLabels
        self.frames = frames
    }
}

public enum SegmentationReader {
    /// Reads a BINARY or FRACTIONAL Segmentation (uncompressed); FRACTIONAL values above half the maximum count as 1.
    public static func read(_ bytes: [UInt8], limits: DICOMLimits) throws(DICOMError) -> SegmentationContents {
        var shimLimits = limits.shim
        var error = dcmshim_error()
        var pointer: OpaquePointer?
        let code = bytes.withUnsafeBufferPointer { buffer in
            dcmshim_seg_open(buffer.baseAddress, buffer.count, &shimLimits, &pointer, &error)
        }
        guard code == Int32(DCMSHIM_OK), let seg = pointer else { throw DICOMError(code: code, error: error) }
        defer { dcmshim_seg_close(seg) }
        var rows: Int32 = 0, columns: Int32 = 0, frameCount: Int32 = 0, segmentCount: Int32 = 0
        dcmshim_seg_size(seg, &rows, &columns, &frameCount, &segmentCount)
        var labels: [Int: String] = [:]
        for index in 0..<segmentCount {
            var number: Int32 = 0
            var label = [CChar](repeating: 0, count: 256)
            guard dcmshim_seg_segment(seg, index, &number, &label, label.count) == Int32(DCMSHIM_OK) else { continue }
            labels[Int(number)] = String(decoding: label.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let pixels = Int(rows) * Int(columns)
        var frames: [SegmentationContents.Frame] = []
        frames.reserveCapacity(Int(frameCount))
        for index in 0..<frameCount {
            var segmentNumber: Int32 = 0, sourceFrame: Int32 = 0
            var uid = [CChar](repeating: 0, count: 68)
            var mask = [UInt8](repeating: 0, count: pixels)
            let rc = mask.withUnsafeMutableBufferPointer { buffer in
                dcmshim_seg_frame(seg, index, &segmentNumber, &uid, &sourceFrame, buffer.baseAddress, pixels, &error)
            }
            guard rc == Int32(DCMSHIM_OK) else { throw DICOMError(code: rc, error: error) }
            let uidString = String(decoding: uid.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            frames.append(
                SegmentationContents.Frame(
                    segmentNumber: Int(segmentNumber), sourceSOPInstanceUID: uidString.isEmpty ? nil : uidString,
                    sourceFrame: sourceFrame > 0 ? Int(sourceFrame) - 1 : nil, mask: mask))
        }
        return SegmentationContents(rows: Int(rows), columns: Int(columns), segmentLabels: labels, frames: frames)
    }
}

import Foundation
import SegDICOM
import SegTesting
import Testing

/// SEG writing (DCMTK dcmseg) checked by dciodvfy and highdicom (Scripts/check_seg.py), and SEG reading.
@Suite(.enabled(if: Tools.fixturesAvailable, "needs python3 with pydicom/highdicom/numpy and DCMTK's command-line tools"))
struct SegmentationTests {
    static func description(seriesUID: String? = nil) -> SegmentationDescription {
        SegmentationDescription(
            segmentLabel: "Region", algorithmName: "UniverSeg", algorithmVersion: "v4", manufacturer: "universeg-worker",
            manufacturerModelName: "UniverSeg", softwareVersions: "1.0", deviceSerialNumber: "0001",
            seriesDescription: "Few-shot segmentation", seriesNumber: 901, seriesInstanceUID: seriesUID)
    }

    /// Mask of CT slice k: 1 inside a k-dependent rectangle; slice 2 is empty.
    static func ctMask(_ k: Int) -> [UInt8] {
        var mask = [UInt8](repeating: 0, count: 128 * 128)
        guard k != 2 else { return mask }
        for r in (20 + 5 * k)..<(60 + 7 * k) { for c in (30 + 3 * k)..<(90 - 4 * k) { mask[r * 128 + c] = 1 } }
        return mask
    }

    static func usMask() -> [UInt8] {
        (0..<(128 * 96)).map { i in
            let r = i / 96, c = i % 96
            return (r - 64) * (r - 64) + (c - 48) * (c - 48) < 900 ? 1 : 0
        }
    }

    struct HighdicomReport: Decodable {
        var segmentationType: String
        var segments: [String: String]
        var frames: Int
        var referencedInstances: [String]
        var masks: [String: String]
        var attributes: [String: String]
        var segment: [String: String?]
        var spatialLocationsPreserved: [String]
        var positions: [[Double]?]
        var orientation: [Double]?
    }

    /// Header attributes every SEG written with `description()` must carry.
    func expectDescribed(_ report: HighdicomReport, frames: Int) {
        let a = report.attributes
        #expect(a["Modality"] == "SEG")
        #expect(a["Manufacturer"] == "universeg-worker" && a["ManufacturerModelName"] == "UniverSeg")
        #expect(a["DeviceSerialNumber"] == "0001" && a["SoftwareVersions"] == "1.0")
        #expect(a["SeriesNumber"] == "901" && a["SeriesDescription"] == "Few-shot segmentation")
        // Patient and study copied from the source (fixture values).
        #expect(a["PatientName"] == "Fixture^Synthetic" && a["PatientID"] == "FIXTURE-0001")
        #expect(a["PatientBirthDate"] == "19700101" && a["StudyDate"] == "20260101" && a["StudyID"] == "1")
        #expect(report.segment["category"] == "SCT:91723000" && report.segment["type"] == "SCT:85756007")
        #expect(report.segment["algorithmType"] == "AUTOMATIC" && report.segment["algorithmName"] == "UniverSeg")
        #expect(report.segment["family"] == "DCM:123110" && report.segment["algorithmVersion"] == "v4")
        #expect(report.spatialLocationsPreserved == Array(repeating: "YES", count: frames))
    }

    /// dciodvfy passes `bytes` (see `Dciodvfy.Report.passed`); its warnings are printed.
    func expectValidIOD(_ bytes: [UInt8]) throws {
        let dciodvfy = try #require(Tools.dciodvfy)
        let directory = try TemporaryDirectory(prefix: "segdicom-dciodvfy")
        try directory.write("seg.dcm", bytes)
        let report = try Dciodvfy.check(directory.path + "/seg.dcm", executable: dciodvfy)
        #expect(report.passed, "dciodvfy:\n\(report.output)")
        print("dciodvfy: \(report.warnings.count) warning(s)" + report.warnings.map { "\n  " + $0 }.joined())
    }

    static func writeCT() throws -> (WrittenSegmentation, [DICOMInstance]) {
        let sources = try (0..<4).map { try Fixtures.instance("ct_\($0).dcm") }
        let frames = (0..<4).map { SegmentationFrame(source: $0, sourceFrame: 0, mask: Self.ctMask($0)) }
        return (try SegmentationWriter.write(sources: sources, frames: frames, description: Self.description()), sources)
    }

    static let usSeriesUID = "1.2.826.0.1.3680043.8.498.1234567890"

    static func writeUS() throws -> (WrittenSegmentation, DICOMInstance) {
        let us = try Fixtures.instance("us.dcm")
        let written = try SegmentationWriter.write(
            sources: [us], frames: [SegmentationFrame(source: 0, sourceFrame: 0, mask: Self.usMask())],
            description: Self.description(seriesUID: usSeriesUID))
        return (written, us)
    }

    @Test(.enabled(if: Tools.dciodvfy != nil, "dciodvfy (dicom3tools) is not installed"))
    func ctSeriesSegmentationPassesDciodvfy() throws {
        try expectValidIOD(try Self.writeCT().0.bytes)
    }

    @Test(.enabled(if: Tools.dciodvfy != nil, "dciodvfy (dicom3tools) is not installed"))
    func ultrasoundSegmentationPassesDciodvfy() throws {
        try expectValidIOD(try Self.writeUS().0.bytes)
    }

    func highdicomReport(_ segPath: String, sources: [String]) throws -> HighdicomReport {
        let python = try #require(Tools.python)
        let script = repositoryRoot.appendingPathComponent("Scripts/check_seg.py").path
        let result = try runProcess(python, [script, segPath] + sources)
        try #require(result.status == 0, "check_seg.py: \(result.stdout) \(result.stderr)")
        return try JSONDecoder().decode(HighdicomReport.self, from: Data(result.stdout.utf8))
    }

    static func bits(_ mask: [UInt8]) -> String { String(mask.map { $0 == 0 ? "0" : "1" }) }

    @Test func ctSeriesSegmentationMapsBackToItsSources() throws {
        let directory = try TemporaryDirectory(prefix: "segdicom-ct-seg")
        let start = ContinuousClock.now
        let (written, sources) = try Self.writeCT()
        print("SEG write, 4 frames of 128x128 (first call, parsing included): \(ContinuousClock.now - start) (\(written.bytes.count) bytes)")
        #expect(written.frames == 4)
        #expect(written.studyInstanceUID == sources[0].studyInstanceUID)
        #expect(written.seriesInstanceUID != sources[0].seriesInstanceUID && !written.seriesInstanceUID.isEmpty)
        try directory.write("seg.dcm", written.bytes)
        let segPath = directory.path + "/seg.dcm"

        let report = try highdicomReport(segPath, sources: (0..<4).map { try Fixtures.path("ct_\($0).dcm") })
        #expect(report.segmentationType == "BINARY")
        #expect(report.frames == 4)
        #expect(report.segments == ["1": "Region"])
        #expect(report.referencedInstances == sources.map(\.sopInstanceUID).sorted())
        expectDescribed(report, frames: 4)
        #expect(report.attributes["FrameOfReferenceUID"] == sources[0].frameOfReferenceUID)
        #expect(report.attributes["StudyInstanceUID"] == sources[0].studyInstanceUID)
        #expect(report.positions == sources.map { $0.imagePositions[0] })
        #expect(report.orientation == [1, 0, 0, 0, 1, 0])
        for (k, source) in sources.enumerated() {
            #expect(report.masks[source.sopInstanceUID] == Self.bits(Self.ctMask(k)), "slice \(k)")
        }

        let contents = try SegmentationReader.read(written.bytes, limits: DICOMLimits())
        #expect(contents.rows == 128 && contents.columns == 128)
        #expect(contents.segmentLabels == [1: "Region"])
        #expect(contents.frames.count == 4)
        for (k, frame) in contents.frames.enumerated() {
            #expect(frame.segmentNumber == 1)
            #expect(frame.sourceSOPInstanceUID == sources[k].sopInstanceUID)
            #expect(frame.sourceFrame == nil)
            #expect(frame.mask == Self.ctMask(k), "frame \(k)")
        }

        // The written object is itself parseable as DICOM by the decoder's parser (1-bit: unsupported as an image).
        let asImage = dicomError { _ = try DICOMInstance.parse(written.bytes, limits: DICOMLimits()) }
        #expect(asImage?.kind == .unsupported)
    }

    @Test func segmentationTimingOfFourFrames() throws {
        let sources = try (0..<4).map { try Fixtures.instance("ct_\($0).dcm") }
        let frames = (0..<4).map { SegmentationFrame(source: $0, sourceFrame: 0, mask: Self.ctMask($0)) }
        var best = Duration.seconds(1000)
        for _ in 0..<5 {
            let start = ContinuousClock.now
            _ = try SegmentationWriter.write(sources: sources, frames: frames, description: Self.description())
            best = min(best, ContinuousClock.now - start)
        }
        print("SEG write, 4 frames of 128x128, best of 5: \(best)")

        // 4 frames of 512x512 (all from the one 512x512 fixture slice).
        let large = try Fixtures.instance("ct512.dcm")
        let mask = (0..<(512 * 512)).map { UInt8(($0 / 512 + $0 % 512) % 3 == 0 ? 1 : 0) }
        let largeFrames = (0..<4).map { _ in SegmentationFrame(source: 0, sourceFrame: 0, mask: mask) }
        var bestLarge = Duration.seconds(1000)
        for _ in 0..<3 {
            let start = ContinuousClock.now
            let written = try SegmentationWriter.write(sources: [large], frames: largeFrames, description: Self.description())
            bestLarge = min(bestLarge, ContinuousClock.now - start)
            #expect(try SegmentationReader.read(written.bytes, limits: DICOMLimits()).frames.map(\.mask) == largeFrames.map(\.mask))
        }
        print("SEG write, 4 frames of 512x512, best of 3: \(bestLarge)")
    }

    @Test func ultrasoundFrameWithoutFrameOfReference() throws {
        let directory = try TemporaryDirectory(prefix: "segdicom-us-seg")
        let (written, us) = try Self.writeUS()
        #expect(written.seriesInstanceUID == Self.usSeriesUID)
        try directory.write("seg.dcm", written.bytes)
        let segPath = directory.path + "/seg.dcm"
        let report = try highdicomReport(segPath, sources: [try Fixtures.path("us.dcm")])
        #expect(report.referencedInstances == [us.sopInstanceUID])
        expectDescribed(report, frames: 1)
        #expect(report.attributes["FrameOfReferenceUID"] == nil)
        #expect(report.attributes["PatientOrientation"] == "['A', 'F']")
        #expect(report.positions == [nil] && report.orientation == nil)
        #expect(report.masks[us.sopInstanceUID] == Self.bits(Self.usMask()))
        let contents = try SegmentationReader.read(written.bytes, limits: DICOMLimits())
        #expect(contents.rows == 128 && contents.columns == 96)
        #expect(contents.frames.count == 1)
        #expect(contents.frames.first?.mask == Self.usMask())
        #expect(contents.frames.first?.sourceSOPInstanceUID == us.sopInstanceUID)
    }

    @Test func multiFrameSourceFramesAreReferencedByNumber() throws {
        let source = try Fixtures.instance("multiframe.dcm")
        let masks = (0..<3).map { f in (0..<(32 * 48)).map { i in UInt8((i + f) % 7 == 0 ? 1 : 0) } }
        let frames = [2, 0, 1].map { SegmentationFrame(source: 0, sourceFrame: $0, mask: masks[$0]) }
        let written = try SegmentationWriter.write(sources: [source], frames: frames, description: Self.description())
        let contents = try SegmentationReader.read(written.bytes, limits: DICOMLimits())
        #expect(contents.frames.map(\.sourceFrame) == [2, 0, 1])
        #expect(contents.frames.map(\.mask) == [masks[2], masks[0], masks[1]])
        #expect(contents.frames.allSatisfy { $0.sourceSOPInstanceUID == source.sopInstanceUID })
    }

    @Test func readsAHighdicomSegmentation() throws {
        let sources = try (0..<4).map { try Fixtures.instance("ct_\($0).dcm") }
        let contents = try SegmentationReader.read(try Fixtures.bytes("hd_seg.dcm"), limits: DICOMLimits())
        #expect(contents.rows == 128 && contents.columns == 128)
        #expect(contents.segmentLabels == [1: "Liver"])
        #expect(contents.frames.count == 4)
        for frame in contents.frames {
            let k = try #require(sources.firstIndex { $0.sopInstanceUID == frame.sourceSOPInstanceUID })
            let expected = (0..<(128 * 128)).map { i in UInt8((i / 128 + i % 128 + k) % 5 == 0 ? 1 : 0) }
            #expect(frame.mask == expected, "slice \(k)")
            #expect(frame.segmentNumber == 1)
        }
        #expect(Set(contents.frames.compactMap(\.sourceSOPInstanceUID)) == Set(sources.map(\.sopInstanceUID)))
    }

    @Test func readerRejectsNonSegmentationsAndLimits() throws {
        #expect(dicomError { _ = try SegmentationReader.read(try Fixtures.bytes("ct_0.dcm"), limits: DICOMLimits()) }?.kind == .unsupported)
        #expect(dicomError { _ = try SegmentationReader.read(try Fixtures.bytes("bad/garbage.dcm"), limits: DICOMLimits()) }?.kind == .invalid)
        #expect(dicomError { _ = try SegmentationReader.read([], limits: DICOMLimits()) }?.kind == .invalid)
        let seg = try Fixtures.bytes("hd_seg.dcm")
        #expect(dicomError { _ = try SegmentationReader.read(Array(seg.prefix(seg.count - 500)), limits: DICOMLimits()) }?.kind == .invalid)
        var limits = DICOMLimits()
        limits.maxFrames = 3
        #expect(dicomError { _ = try SegmentationReader.read(seg, limits: limits) }?.kind == .tooLarge)
    }

    @Test func damagedSegmentationsNeverCrashTheReader() throws {
        let original = try Fixtures.bytes("hd_seg.dcm")
        var read = 0
        for cut in stride(from: 0, to: original.count, by: 7) {
            if (try? SegmentationReader.read(Array(original.prefix(cut)), limits: DICOMLimits())) != nil { read += 1 }
        }
        #expect(read == 0)
        var random = SplitMix(seed: 7)
        for _ in 0..<300 {
            var bytes = original
            bytes[Int(random.next() % UInt64(min(4000, bytes.count)))] = UInt8(truncatingIfNeeded: random.next())
            _ = try? SegmentationReader.read(bytes, limits: DICOMLimits())
        }
    }

    @Test func writerRejectsInconsistentRequests() throws {
        let ct = try Fixtures.instance("ct_0.dcm")
        let us = try Fixtures.instance("us.dcm")
        let good = SegmentationFrame(source: 0, sourceFrame: 0, mask: Self.ctMask(0))
        let cases: [(String, [DICOMInstance], [SegmentationFrame], SegmentationDescription)] = [
            ("no sources", [], [good], Self.description()),
            ("no frames", [ct], [], Self.description()),
            ("short mask", [ct], [SegmentationFrame(source: 0, sourceFrame: 0, mask: [1, 0])], Self.description()),
            ("bad source index", [ct], [SegmentationFrame(source: 1, sourceFrame: 0, mask: Self.ctMask(0))], Self.description()),
            ("bad source frame", [ct], [SegmentationFrame(source: 0, sourceFrame: 1, mask: Self.ctMask(0))], Self.description()),
            ("mixed sizes", [ct, us], [good], Self.description()),
            ("empty manufacturer", [ct], [good], {
                var d = Self.description()
                d.manufacturer = " "
                return d
            }()),
        ]
        for (name, sources, frames, description) in cases {
            let error = dicomError { _ = try SegmentationWriter.write(sources: sources, frames: frames, description: description) }
            #expect(error?.kind == .invalid, "\(name): \(String(describing: error))")
        }
    }
}

import Foundation
import SegIO
import SegTesting
import Testing

/// Command-line DICOM helpers: the tools that check SEGs (the fixtures are SegTesting's DiskFixture).
enum CLIDICOM {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let hasPython: Bool = (try? run("/usr/bin/env", ["python3", "-c", "import pydicom, highdicom, numpy"]).status) == 0
    static let hasDciodvfy = FileManager.default.isExecutableFile(atPath: "/usr/bin/dciodvfy")

    static func run(_ executable: String, _ arguments: [String]) throws -> ProcessResult {
        try runToCompletion(executable, arguments)
    }
}


@Suite(.serialized,
       .enabled(if: CLIDICOM.hasPython, "python3 with pydicom, highdicom and numpy is needed"),
       .enabled(if: CLIDICOM.hasDciodvfy, "dciodvfy is not installed (apt-get install dicom3tools)"))
struct SegmentDICOMTests {
    /// A .dcm and an extensionless DICOM file (found by the DICM magic) next to the same pixels as
    /// PNG: the DICOM masks equal the PNG masks, each object gets a SEG that dciodvfy accepts and
    /// that highdicom maps back onto the source with the same mask.
    @Test func dicomInputsGiveThePNGMaskAndAValidSEG() throws {
        let s = try Scratch()
        try makeInputs(s)
        try DiskFixture.writeSupportSet(s, at: "disks")
        let series = try DiskFixture.makeSeries(in: s)
        try FileManager.default.copyItem(atPath: series.paths[1], toPath: s.path + "/ct1.dcm")
        try FileManager.default.copyItem(atPath: series.paths[2], toPath: s.path + "/noext")
        for k in [1, 2] { try s.write("png\(k).png", try PNGCodec.encodeGray8(DiskFixture.slice(k), width: 64, height: 64)) }
        let r = try Worker.run(["segment", "--weights", s.path + "/w.safetensors", "--support", s.path + "/disks",
                                "--out", s.path + "/out", s.path + "/ct1.dcm", s.path + "/noext", s.path + "/png1.png", s.path + "/png2.png"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(s.files(in: "out") == ["ct1.mask.png", "ct1.seg.dcm", "noext.mask.png", "noext.seg.dcm", "png1.mask.png", "png2.mask.png"])
        for (dicom, png, k) in [("ct1", "png1", 1), ("noext", "png2", 2)] {
            let a = try PNGCodec.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(s.path)/out/\(dicom).mask.png"))))
            let b = try PNGCodec.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(s.path)/out/\(png).mask.png"))))
            #expect(a.width == 64 && a.height == 64)
            #expect(a.values == b.values, "\(dicom): the DICOM mask must equal the PNG mask of the same pixels")
            let seg = "\(s.path)/out/\(dicom).seg.dcm"
            let verify = try Dciodvfy.check(seg)
            #expect(verify.passed, "dciodvfy: \(verify.output.suffix(3000))")
            let check = try CLIDICOM.run("/usr/bin/env", ["python3", CLIDICOM.repository.path + "/Scripts/check_seg.py", seg, series.paths[k]])
            #expect(check.status == 0, "check_seg.py: \(check.stdout) \(check.stderr.suffix(2000))")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any])
            #expect(json["segmentationType"] as? String == "BINARY")
            let masks = try #require(json["masks"] as? [String: String])
            #expect(masks[series.instances[k]] == String(a.values.map { $0 != 0 ? "1" : "0" }), "the SEG frame equals the PNG mask")
            let attributes = json["attributes"] as? [String: Any]
            #expect((attributes?["SeriesDescription"] as? String) == "UniverSeg disk", "\(attributes ?? [:])")
        }
        #expect(!r.stdout.contains("Phantom") && !r.stderr.contains("Phantom"), "no patient data in the output")
    }

    /// A multi-frame Enhanced CT object (Scripts/make_dicom_fixtures.py): one mask (and logits) per
    /// frame named by its frame number, and one SEG of 3 frames that dciodvfy accepts.
    @Test func multiFrameObjectGivesAMaskPerFrameAndOneSEG() throws {
        let s = try Scratch()
        try makeInputs(s)
        let made = try CLIDICOM.run("/usr/bin/env", ["python3", CLIDICOM.repository.path + "/Scripts/make_dicom_fixtures.py", s.path + "/fixtures"])
        try #require(made.status == 0, "make_dicom_fixtures.py: \(made.stderr.suffix(2000))")
        let r = try Worker.run(["segment", "--weights", s.path + "/w.safetensors", "--support", s.path + "/support",
                                "--out", s.path + "/out", "--logits", s.path + "/fixtures/multiframe.dcm"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(s.files(in: "out") == ["multiframe.f0001.logits.npy", "multiframe.f0001.mask.png", "multiframe.f0002.logits.npy",
                                       "multiframe.f0002.mask.png", "multiframe.f0003.logits.npy", "multiframe.f0003.mask.png",
                                       "multiframe.seg.dcm"])
        let mask = try PNGCodec.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: s.path + "/out/multiframe.f0002.mask.png"))))
        #expect(mask.width == 48 && mask.height == 32)
        let verify = try Dciodvfy.check(s.path + "/out/multiframe.seg.dcm")
        #expect(verify.passed, "dciodvfy: \(verify.output.suffix(3000))")
        #expect(r.stdout.contains("SEG of 3 frames"), "\(r.stdout)")
    }

    /// A file with the DICM magic but no valid dataset stops the run with one message before
    /// anything is written; with a support set that has a window, a valid object still segments
    /// (this does not check the windowed values).
    @Test func brokenDICOMFailsBeforeWritingAnything() throws {
        let s = try Scratch()
        try makeInputs(s)
        try DiskFixture.writeSupportSet(s, at: "disks", window: #"{"center":120,"width":200}"#)
        try s.write("broken.dcm", [UInt8](repeating: 0, count: 128) + Array("DICM".utf8) + [0x02, 0x00, 0x10, 0x00, 0x55, 0x49, 0xff, 0xff])
        try s.write("png1.png", try PNGCodec.encodeGray8(DiskFixture.slice(1), width: 64, height: 64))
        let r = try Worker.run(["segment", "--weights", s.path + "/w.safetensors", "--support", s.path + "/disks",
                                "--out", s.path + "/out", s.path + "/png1.png", s.path + "/broken.dcm"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("broken.dcm"), "\(r.stderr)")
        #expect(!r.stderr.contains("Fatal error"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.path + "/out"))

        // A support set with a window: a valid object segments, with a SEG.
        let series = try DiskFixture.makeSeries(in: s)
        let ok = try Worker.run(["segment", "--weights", s.path + "/w.safetensors", "--support", s.path + "/disks",
                                 "--out", s.path + "/out2", series.paths[0]])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(s.files(in: "out2") == ["slice0.mask.png", "slice0.seg.dcm"])
    }
}

import Foundation
import SegIO
import SegTesting
import Testing

/// Command-line DICOM helpers: the integration fixture series (pydicom) and the tools that check SEGs.
enum CLIDICOM {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let hasPython: Bool = (try? run("/usr/bin/env", ["python3", "-c", "import pydicom, highdicom, numpy"]).status) == 0
    static let hasDciodvfy = FileManager.default.isExecutableFile(atPath: "/usr/bin/dciodvfy")

    struct Series: Decodable {
        let study: String
        let series: String
        let instances: [String]
        let paths: [String]
    }

    /// Tests/WorkerIntegrationTests/Fixtures/dicom/make_series.py: 4 CT slices, 64x64, 200 in a disk, 40 elsewhere.
    static func makeSeries(_ dir: TemporaryDirectory) throws -> Series {
        let script = repository.path + "/Tests/WorkerIntegrationTests/Fixtures/dicom/make_series.py"
        let result = try run("/usr/bin/env", ["python3", script, dir.path + "/series"])
        guard result.status == 0 else { throw CLIError(result.stderr) }
        return try JSONDecoder().decode(Series.self, from: Data(result.stdout.utf8))
    }

    /// Slice k of that series as 8-bit pixels (the same values).
    static func slice(_ k: Int) -> [UInt8] {
        var pixels = [UInt8](repeating: 40, count: 64 * 64)
        for r in 0..<64 { for c in 0..<64 {
            let dr = r - 20 - 6 * k, dc = c - 24 - 4 * k
            if dr * dr + dc * dc < 100 { pixels[r * 64 + c] = 200 }
        } }
        return pixels
    }

    /// A support set directory "disks" (label "disk"): bright disks on a dark background, 64x64 PNGs.
    static func writeSupportSet(_ dir: TemporaryDirectory, at relative: String, window: String? = nil) throws {
        var entries: [String] = []
        for i in 0..<4 {
            var image = [UInt8](repeating: 40, count: 64 * 64), label = [UInt8](repeating: 0, count: 64 * 64)
            for r in 0..<64 { for c in 0..<64 {
                let dr = r - 16 - 8 * i, dc = c - 40 + 5 * i
                if dr * dr + dc * dc < 100 { image[r * 64 + c] = 200; label[r * 64 + c] = 255 }
            } }
            try dir.write("\(relative)/images/\(i).png", try PNGCodec.encodeGray8(image, width: 64, height: 64))
            try dir.write("\(relative)/labels/\(i).png", try PNGCodec.encodeGray8(label, width: 64, height: 64))
            entries.append(#"{"image":"images/\#(i).png","label":"labels/\#(i).png"}"#)
        }
        let windowField = window.map { #","window":\#($0)"# } ?? ""
        try dir.write("\(relative)/support.json",
                      Array(#"{"name":"disks","version":"1","label":"disk"\#(windowField),"entries":[\#(entries.joined(separator: ","))]}"#.utf8))
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> ProcessResult {
        try runToCompletion(executable, arguments)
    }

    struct CLIError: Error, CustomStringConvertible {
        let description: String
        init(_ text: String) { description = text }
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
        try CLIDICOM.writeSupportSet(s, at: "disks")
        let series = try CLIDICOM.makeSeries(s)
        try FileManager.default.copyItem(atPath: series.paths[1], toPath: s.path + "/ct1.dcm")
        try FileManager.default.copyItem(atPath: series.paths[2], toPath: s.path + "/noext")
        for k in [1, 2] { try s.write("png\(k).png", try PNGCodec.encodeGray8(CLIDICOM.slice(k), width: 64, height: 64)) }
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
            let verify = try CLIDICOM.run("/usr/bin/dciodvfy", [seg])
            #expect(verify.status == 0, "dciodvfy: \(verify.stderr.suffix(3000))")
            #expect(!verify.stderr.contains("Error"), "dciodvfy: \(verify.stderr.suffix(3000))")
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
        let verify = try CLIDICOM.run("/usr/bin/dciodvfy", [s.path + "/out/multiframe.seg.dcm"])
        #expect(verify.status == 0, "dciodvfy: \(verify.stderr.suffix(3000))")
        #expect(!verify.stderr.contains("Error"), "dciodvfy: \(verify.stderr.suffix(3000))")
        #expect(r.stdout.contains("SEG of 3 frames"), "\(r.stdout)")
    }

    /// A file with the DICM magic but no valid dataset stops the run with one message before
    /// anything is written; with a support set that has a window, a valid object still segments
    /// (this does not check the windowed values).
    @Test func brokenDICOMFailsBeforeWritingAnything() throws {
        let s = try Scratch()
        try makeInputs(s)
        try CLIDICOM.writeSupportSet(s, at: "disks", window: #"{"center":120,"width":200}"#)
        try s.write("broken.dcm", [UInt8](repeating: 0, count: 128) + Array("DICM".utf8) + [0x02, 0x00, 0x10, 0x00, 0x55, 0x49, 0xff, 0xff])
        try s.write("png1.png", try PNGCodec.encodeGray8(CLIDICOM.slice(1), width: 64, height: 64))
        let r = try Worker.run(["segment", "--weights", s.path + "/w.safetensors", "--support", s.path + "/disks",
                                "--out", s.path + "/out", s.path + "/png1.png", s.path + "/broken.dcm"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("broken.dcm"), "\(r.stderr)")
        #expect(!r.stderr.contains("Fatal error"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.path + "/out"))

        // A support set with a window: a valid object segments, with a SEG.
        let series = try CLIDICOM.makeSeries(s)
        let ok = try Worker.run(["segment", "--weights", s.path + "/w.safetensors", "--support", s.path + "/disks",
                                 "--out", s.path + "/out2", series.paths[0]])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(s.files(in: "out2") == ["slice0.mask.png", "slice0.seg.dcm"])
    }
}

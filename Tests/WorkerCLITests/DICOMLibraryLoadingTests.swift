import Foundation
import SegIO
import SegTesting
import Testing

/// The DICOM library (libUniverSegDCMTK.so, which pulls in DCMTK's 22 shared objects) is loaded
/// at a process's first DICOM call, not when it starts. The dynamic loader's own trace
/// (LD_DEBUG=files) says which objects a process loaded.
@Suite struct DICOMLibraryLoadingTests {
    /// A `segment` of PNG inputs never loads DCMTK; `version` does, and names the DCMTK version.
    @Test func onlyDICOMWorkLoadsTheDICOMLibrary() throws {
        let s = try Scratch()
        try makeInputs(s)
        let png = try Worker.run(["segment", "--weights", s.path + "/w.safetensors", "--support", s.path + "/support",
                                  "--out", s.path + "/out", s.path + "/q1.png"], environment: ["LD_DEBUG": "files"])
        #expect(png.status == 0, "\(png.stderr.suffix(2000))")
        #expect(png.stderr.contains("file=libopenblas"), "the trace lists the objects loaded: \(png.stderr.prefix(2000))")
        #expect(!png.stderr.contains("libUniverSegDCMTK"), "a PNG segment loaded the DICOM library")
        #expect(!png.stderr.contains("libdcmdata"), "a PNG segment loaded DCMTK")

        let version = try Worker.run(["version"], environment: ["LD_DEBUG": "files"])
        #expect(version.status == 0, "\(version.stderr.suffix(2000))")
        #expect(version.stdout.contains("DCMTK 3.6.7 (libUniverSegDCMTK.so)"), "\(version.stdout)")
        #expect(version.stderr.contains("libdcmdata"), "version names DCMTK's version, so it loads it")
    }

    /// The library needs DCMTK and the C and C++ runtimes, never the Swift runtime: it loads into
    /// the packaged binary (Swift runtime linked in) on a node without a Swift toolchain.
    @Test func theLibraryDoesNotNeedTheSwiftRuntime() throws {
        let library = URL(fileURLWithPath: Worker.executable).deletingLastPathComponent().appendingPathComponent("libUniverSegDCMTK.so").path
        let r = try runToCompletion("/usr/bin/objdump", ["-p", library])
        #expect(r.status == 0, "\(r.stderr)")
        let needed = r.stdout.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            return fields.count == 2 && fields[0] == "NEEDED" ? String(fields[1]) : nil
        }
        #expect(needed.contains("libdcmdata.so.17"), "\(needed)")
        #expect(!needed.contains { $0.hasPrefix("libswift") || $0.hasPrefix("libFoundation") || $0.hasPrefix("libdispatch") },
                "\(needed)")
    }

    /// Without its library the worker still runs: PNG inputs are segmented, a DICOM input fails
    /// with the reason (nothing written for it), and `version` says DICOM support is unavailable.
    @Test func withoutTheLibraryDICOMFailsWithTheReasonAndPNGsWork() throws {
        let s = try Scratch()
        try makeInputs(s)
        let missing = ["UNIVERSEG_DCMTK_SHIM": s.path + "/no-such-library.so"]
        // A Part-10 preamble and magic: the worker takes it for DICOM and asks the library.
        try s.write("object.dcm", [UInt8](repeating: 0, count: 128) + Array("DICM".utf8) + [UInt8](repeating: 1, count: 64))

        let png = try Worker.run(["segment", "--weights", s.path + "/w.safetensors", "--support", s.path + "/support",
                                  "--out", s.path + "/out", s.path + "/q1.png"], environment: missing)
        #expect(png.status == 0, "\(png.stderr.suffix(2000))")
        #expect(s.files(in: "out") == ["q1.mask.png"])

        let dicom = try Worker.run(["segment", "--weights", s.path + "/w.safetensors", "--support", s.path + "/support",
                                    "--out", s.path + "/out2", s.path + "/object.dcm"], environment: missing)
        #expect(dicom.status != 0)
        #expect(dicom.stderr.contains("DICOM support unavailable: cannot load libUniverSegDCMTK.so"), "\(dicom.stderr)")
        #expect(dicom.stderr.contains("no-such-library.so"), "the loader's reason is kept: \(dicom.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.path + "/out2/object.mask.png"))

        let version = try Worker.run(["version"], environment: missing)
        #expect(version.status == 0, "\(version.stderr)")
        #expect(version.stdout.contains("DCMTK unavailable: DICOM support unavailable"), "\(version.stdout)")
    }
}

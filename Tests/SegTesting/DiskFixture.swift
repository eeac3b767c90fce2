import Foundation
import SegIO

/// The DICOM fixtures the worker's DICOM tests share: a 4-slice CT series written by
/// Tests/WorkerIntegrationTests/Fixtures/dicom/make_series.py (pydicom), the same slices as 8-bit
/// pixels (to compare the DICOM path with the PNG path), and a matching "disks" support set.
public enum DiskFixture {
    public struct Series: Decodable, Sendable {
        public let study: String
        public let series: String
        /// SOP Instance UID of slice k.
        public let instances: [String]
        /// Part-10 file of slice k.
        public let paths: [String]
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Writes the series into `dir/series` (needs python3 with pydicom and numpy).
    public static func makeSeries(in dir: TemporaryDirectory) throws -> Series {
        let script = repository.path + "/Tests/WorkerIntegrationTests/Fixtures/dicom/make_series.py"
        let result = try runToCompletion("/usr/bin/env", ["python3", script, dir.path + "/series"])
        guard result.status == 0 else { throw Failure(description: "make_series.py failed: \(result.stderr.suffix(2000))") }
        return try JSONDecoder().decode(Series.self, from: Data(result.stdout.utf8))
    }

    /// Slice k of the series as 8-bit pixels, as the script writes it: 200 inside the disk
    /// (r - 20 - 6k)^2 + (c - 24 - 4k)^2 < 100, 40 elsewhere, 64x64.
    public static func slice(_ k: Int) -> [UInt8] {
        var pixels = [UInt8](repeating: 40, count: 64 * 64)
        for r in 0..<64 { for c in 0..<64 {
            let dr = r - 20 - 6 * k, dc = c - 24 - 4 * k
            if dr * dr + dc * dc < 100 { pixels[r * 64 + c] = 200 }
        } }
        return pixels
    }

    /// A support set directory at `dir/relative` (label "disk", optional `window` JSON): four
    /// 64x64 PNGs of bright disks on a dark background with their masks.
    public static func writeSupportSet(_ dir: TemporaryDirectory, at relative: String, window: String? = nil) throws {
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
}

import Foundation
import SegIO
import SegTesting
import Testing

/// `eval` over a suite of two tasks with pictures, with the shipped weights.
@Suite struct EvalCommandTests {
    /// DIR/images/ID.png and DIR/labels/LABEL/ID.png at 64x64: bright discs (label "disc") and the
    /// dark background (label "background").
    static func writeDataset(_ dir: TemporaryDirectory, count: Int) throws -> String {
        let root = "discs/64"
        for i in 0..<count {
            var image = [UInt8](repeating: 30, count: 64 * 64)
            let cx = 16 + (i * 7) % 32, cy = 16 + (i * 11) % 32, r = 6 + i % 5
            for y in 0..<64 { for x in 0..<64 where (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r { image[y * 64 + x] = 210 } }
            let id = String(format: "%03d", i)
            try dir.write("\(root)/images/\(id).png", try PNGCodec.encodeGray8(image, width: 64, height: 64))
            try dir.write("\(root)/labels/disc/\(id).png", try PNGCodec.encodeGray8(image.map { $0 > 128 ? 255 : 0 }, width: 64, height: 64))
            try dir.write("\(root)/labels/background/\(id).png", try PNGCodec.encodeGray8(image.map { $0 > 128 ? 0 : 255 }, width: 64, height: 64))
        }
        return dir.path + "/" + root
    }

    @Test func aSuiteGivesEveryTasksMarginTheirMeanAndPictures() throws {
        let dir = try TemporaryDirectory()
        let dataset = try Self.writeDataset(dir, count: 14)
        try dir.write("suite.txt", Array("# two labels of one dataset\ndiscs/64 disc\n".utf8))
        let result = try Worker.run(["eval", "--suite", dir.path + "/suite.txt", "--task", dataset + ":background",
                                     "--support-size", "1", "4", "--ensemble", "1", "2", "--threads", "1",
                                     "--pictures", dir.path + "/pictures", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let tasks = try #require(json["tasks"] as? [[String: Any]])
        #expect(tasks.map { $0["label"] as? String } == ["disc", "background"])
        let margins = try #require(json["margins"] as? [[[String: Any]]])
        let means = try #require(json["mean_margin"] as? [[String: Any]])
        #expect(means.count == 4, "N in {1, 4} x K in {1, 2}")
        // The mean margin is the mean of the tasks' margins (UniverSeg minus the better baseline).
        for (i, mean) in means.enumerated() {
            let perTask = margins.map { ($0[i]["universeg"] as? Double ?? .nan) - ($0[i]["better_baseline"] as? Double ?? .nan) }
            #expect(abs((mean["margin"] as? Double ?? .nan) - perTask.reduce(0, +) / 2) < 1e-9)
        }
        for label in ["disc", "background"] {
            let queries = try PNGCodec.decode(try FileIO.read(dir.path + "/pictures/discs-\(label).queries.png", maxBytes: 1 << 20))
            #expect(queries.width == 4 + 3 * (64 + 4) && queries.height == 64 + 8, "best, median and worst of 4 test images")
            let plot = try PNGCodec.decode(try FileIO.read(dir.path + "/pictures/discs-\(label).dice.png", maxBytes: 1 << 20))
            #expect(plot.width == 16 + 64 + 16 && plot.height == 232)
        }
    }

    @Test func aTaskAndASingleDatasetCannotBeMixed() throws {
        let result = try Worker.run(["eval", "--dataset", "/nonexistent", "--label", "x", "--task", "/nonexistent:x"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("either --dataset and --label, or a suite"))
        let bad = try Worker.run(["eval", "--task", "no-colon"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("DIR:LABEL"), "\(bad.stderr)")
    }
}

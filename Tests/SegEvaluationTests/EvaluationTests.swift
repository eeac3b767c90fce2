import Foundation
import SegEvaluation
import SegIO
import SegModel
import Testing

@Suite struct MetricTests {
    @Test func diceOnKnownMasks() {
        #expect(SegmentationMetrics.dice([1, 1, 0, 0], [1, 1, 0, 0]) == 1)
        #expect(SegmentationMetrics.dice([1, 1, 0, 0], [0, 0, 1, 1]) == 0)
        #expect(SegmentationMetrics.dice([0, 0], [0, 0]) == 1)
        #expect(abs(SegmentationMetrics.dice([1, 1, 1, 0], [1, 0, 0, 0]) - 0.5) < 1e-12)
        #expect(SegmentationMetrics.dice([255, 0], [1, 0]) == 1)
    }

    @Test func bootstrapSpreadShrinksWithAgreement() {
        #expect(SegmentationMetrics.bootstrapStandardDeviation([5, 5, 5, 5]) == 0)
        let spread = SegmentationMetrics.bootstrapStandardDeviation([0, 100, 0, 100, 0, 100], seed: 1)
        // Standard error of the mean of six 0/100 values is 50 / sqrt(6) = 20.4.
        #expect(spread > 15 && spread < 25)
    }

    @Test func baselinesFromHandmadeSupport() {
        let labels: [[Float]] = [[1, 0, 0, 1], [1, 1, 0, 0]]
        #expect(Baselines.priorMask(labels: labels) == [1, 0.5, 0, 0.5])
        // Dark pixels (bin 0) are always foreground, bright (bin 31) never, mid (bin 16) half.
        let images: [[Float]] = [[0.0, 0.99, 0.5, 0.5], [0.01, 0.98, 0.51, 0.5]]
        let support: [[Float]] = [[1, 0, 1, 0], [1, 0, 1, 0]]
        let p = Baselines.intensityClassifier(query: [0.02, 0.97, 0.5, 0.3], images: images, labels: support)
        #expect(p == [1, 0, 0.5, 0])
    }
}

/// A synthetic labelled dataset laid out as images/ID.png and labels/LABEL/ID.png, where the label is
/// exactly "intensity above the middle" (so the intensity classifier is near perfect).
final class SyntheticDataset {
    let path: String
    init(count: Int, size: Int = 32) throws {
        path = NSTemporaryDirectory() + "universeg-eval-" + UUID().uuidString
        let fm = FileManager.default
        try fm.createDirectory(atPath: path + "/images", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: path + "/labels/bright", withIntermediateDirectories: true)
        for i in 0..<count {
            var image = [UInt8](repeating: 40, count: size * size)
            let cx = 8 + (i * 5) % 16, cy = 8 + (i * 3) % 16
            for y in 0..<size { for x in 0..<size where (x - cx) * (x - cx) + (y - cy) * (y - cy) < 36 { image[y * size + x] = 220 } }
            let label = image.map { $0 > 128 ? UInt8(255) : 0 }
            let id = String(format: "%03d", i)
            try Data(try PNGCodec.encodeGray8(image, width: size, height: size)).write(to: URL(fileURLWithPath: path + "/images/\(id).png"))
            try Data(try PNGCodec.encodeGray8(label, width: size, height: size)).write(to: URL(fileURLWithPath: path + "/labels/bright/\(id).png"))
        }
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Suite struct FewShotEvaluationTests {
    @Test func splitIsSeededDisjointAndSeventyThirty() throws {
        let data = try SyntheticDataset(count: 20)
        let dataset = try LabeledDataset(directory: data.path, label: "bright", size: 16)
        let (pool, test) = dataset.split(seed: 3)
        #expect(pool.count == 14 && test.count == 6)
        #expect(Set(pool).isDisjoint(with: test))
        #expect(Set(pool + test) == Set(0..<20))
        #expect(dataset.split(seed: 3).pool == pool)
        #expect(dataset.split(seed: 4).pool != pool)
    }

    @Test func reportCoversEveryNAndKAndSkipsOversizedN() throws {
        let data = try SyntheticDataset(count: 10)
        let cfg = UniverSegConfiguration(encoderWidths: [4, 4], decoderWidths: [4], inputSize: 16)
        let dataset = try LabeledDataset(directory: data.path, label: "bright", size: 16)
        let evaluation = try FewShotEvaluation(
            model: try UniverSeg.randomlyInitialized(cfg, seed: 1), dataset: dataset,
            options: .init(supportSizes: [1, 4, 50], ensembleCounts: [1, 3], seed: 2))
        let report = try evaluation.run()
        #expect(report.poolSize == 7 && report.testSize == 3)
        #expect(report.skipped == [50])
        #expect(report.rows.count == 2 * 2 * 3)
        for row in report.rows {
            #expect(row.perImage.count == 3)
            #expect(row.dice >= 0 && row.dice <= 100)
        }
        // The label is a pure intensity threshold: the intensity classifier finds it (up to the
        // blur of resizing 32 -> 16 -> 32).
        let intensity = report.rows.first { $0.method == .intensity && $0.supportSize == 4 && $0.ensemble == 3 }
        #expect((intensity?.dice ?? 0) > 90)
        // Deterministic for a seed.
        let again = try evaluation.run()
        #expect(again.rows.map(\.perImage) == report.rows.map(\.perImage))
    }

    @Test func missingLabelDirectoryNamesTheAvailableLabels() throws {
        let data = try SyntheticDataset(count: 3)
        let error = #expect(throws: IOError.self) { try LabeledDataset(directory: data.path, label: "nucleus", size: 16) }
        #expect(error?.message.contains("bright") == true)
    }
}

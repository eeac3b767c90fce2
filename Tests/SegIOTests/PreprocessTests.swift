import SegIO
import Testing

@Suite struct PreprocessTests {
    @Test func minMaxScalesToUnitRangeAndConstantBecomesZero() {
        #expect(Preprocess.normalizeMinMax([2, 4, 6]) == [0, 0.5, 1])
        #expect(Preprocess.normalizeMinMax([7, 7, 7]) == [0, 0, 0])
    }

    @Test func bilinearDoublingUsesHalfPixelCentres() {
        // 1-D [0, 4] -> 4 samples at source positions -0.25, 0.25, 0.75, 1.25 (edge-clamped).
        let out = Preprocess.resizeBilinear([0, 4], width: 2, height: 1, toWidth: 4, toHeight: 1)
        #expect(out == [0, 1, 3, 4])
    }

    @Test func bilinearShrinkingAveragesAndKeepsConstants() {
        let constant = Preprocess.resizeBilinear([Float](repeating: 3, count: 300 * 200), width: 300, height: 200,
                                                 toWidth: 128, toHeight: 128)
        #expect(constant.allSatisfy { abs($0 - 3) < 1e-5 })
        // Halving an alternating 0/1 row: the widened triangle filter averages to 0.5 inside.
        let row = (0..<16).map { Float($0 % 2) }
        let half = Preprocess.resizeBilinear(row, width: 16, height: 1, toWidth: 8, toHeight: 1)
        #expect(half[1...6].allSatisfy { abs($0 - 0.5) < 1e-6 })
    }

    @Test func labelsAreBinarizedAndResizedByNearestNeighbour() {
        let label = GrayImage(width: 4, height: 1, values: [0, 128, 0, 255])
        #expect(Preprocess.label(label, size: 4).count == 16)
        let up = Preprocess.resizeNearest([0, 1], width: 2, height: 1, toWidth: 4, toHeight: 1)
        #expect(up == [0, 0, 1, 1])
        let row = Preprocess.label(GrayImage(width: 2, height: 2, values: [0, 7, 0, 0]), size: 2)
        #expect(row == [0, 1, 0, 0])
    }

    @Test func maskIsThresholdedAtTheOriginalSize() {
        let mask = Preprocess.mask(probabilities: [0.1, 0.9, 0.2, 0.8], size: 2, width: 4, height: 2, threshold: 0.5)
        #expect(mask.count == 8)
        #expect(mask == [0, 0, 255, 255, 0, 0, 255, 255])
    }
}

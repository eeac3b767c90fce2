import Foundation
@testable import SegEvaluation
import SegIO
import SegModel
import Testing

@Suite struct EvaluationSuiteTests {
    @Test func suiteTextListsTasksRelativeToItsFile() throws {
        let suite = try EvaluationSuite(text: """
            # held-out suite
            wbc-cv/128 nucleus

            /data/busi/128\tlesion
            """, base: "/suites")
        #expect(suite.tasks == [.init(directory: "/suites/wbc-cv/128", label: "nucleus"),
                                .init(directory: "/data/busi/128", label: "lesion")])
    }

    @Test func badSuiteLinesAndTaskArgumentsAreRefusedWithTheirLine() throws {
        for (text, fragment) in [("a b c", "line 1"), ("# x\nonlyone", "line 2"), ("dir ../x", "not a folder name"),
                                 ("dir ..", "not a folder name"), ("# nothing\n\n", "no task")] {
            let error = #expect(throws: IOError.self) { try EvaluationSuite(text: text, base: "/") }
            #expect(error?.code == .invalidSuite)
            #expect(error?.message.contains(fragment) == true, "\(text): \(error?.message ?? "")")
        }
        #expect(try EvaluationSuite.Task(argument: "data/wbc:nucleus") == .init(directory: "data/wbc", label: "nucleus"))
        #expect(try EvaluationSuite.Task(argument: "/a:b:cell") == .init(directory: "/a:b", label: "cell"))
        for bad in ["nocolon", ":label", "dir:", "dir:a/b"] {
            #expect(throws: IOError.self, "\(bad)") { try EvaluationSuite.Task(argument: bad) }
        }
    }

    /// The shipped held-out suite parses, and training never reads its datasets: each is in the
    /// training script's HELD_OUT.
    @Test func theHeldOutSuiteIsExcludedFromTraining() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let suite = try EvaluationSuite(path: root.appendingPathComponent("Config/eval/heldout.suite").path)
        let script = try String(contentsOf: root.appendingPathComponent("Scripts/universeg_data.py"), encoding: .utf8)
        let line = try #require(script.split(separator: "\n").first { $0.hasPrefix("HELD_OUT = (") })
        let names = Set(suite.tasks.map { URL(fileURLWithPath: $0.directory).deletingLastPathComponent().lastPathComponent })
        #expect(names.count == 4 && names.contains("wbc-cv"))
        for name in names { #expect(line.contains("\"\(name)\""), "\(name) is not in HELD_OUT") }
    }

    static func row(_ method: FewShotEvaluation.Method, _ n: Int, _ k: Int, _ dice: Double) -> FewShotEvaluation.Row {
        FewShotEvaluation.Row(method: method, supportSize: n, ensemble: k, dice: dice, diceStd: 0, perImage: [], msPerQuery: 0)
    }

    static func report(_ rows: [FewShotEvaluation.Row]) -> FewShotEvaluation.Report {
        FewShotEvaluation.Report(dataset: "d", label: "l", poolSize: 7, testSize: 3, seed: 0, rows: rows, skipped: [])
    }

    @Test func marginIsUniverSegMinusTheBetterBaselineAndItsMeanCoversSharedSettings() {
        let a = Self.report([Self.row(.universeg, 4, 1, 70), Self.row(.priorMask, 4, 1, 50), Self.row(.intensity, 4, 1, 60),
                             Self.row(.universeg, 16, 1, 80), Self.row(.priorMask, 16, 1, 82), Self.row(.intensity, 16, 1, 10)])
        let b = Self.report([Self.row(.universeg, 4, 1, 40), Self.row(.priorMask, 4, 1, 45), Self.row(.intensity, 4, 1, 20)])
        #expect(Margins.of(a).map(\.margin) == [10, -2])
        #expect(Margins.of(a).map(\.betterBaseline) == [60, 82])
        let mean = Margins.mean([a, b])
        #expect(mean.count == 1, "N=16 was evaluated by one task only")
        #expect(mean.first?.supportSize == 4 && mean.first?.margin == 2.5)
    }
}

@Suite struct EvaluationPictureTests {
    @Test func outlineIsTheMaskPixelsNextToBackgroundOrTheBorder() {
        // 5x5: a 3x3 square in the middle, and a pixel on the border.
        var mask = [UInt8](repeating: 0, count: 25)
        for y in 1...3 { for x in 1...3 { mask[y * 5 + x] = 1 } }
        mask[4] = 1
        let line = EvaluationPictures.outline(mask, width: 5, height: 5)
        #expect(line.filter { $0 }.count == 9)
        #expect(!line[2 * 5 + 2], "the centre has only foreground neighbours")
        #expect(line[1 * 5 + 1] && line[3 * 5 + 3] && line[4])
    }

    @Test func panelDrawsTruthGreenPredictionRedBothYellowOverTheGrayImage() {
        let gray = [Float](repeating: 0.5, count: 16)
        var truth = [UInt8](repeating: 0, count: 16), prediction = [UInt8](repeating: 0, count: 16)
        truth[0] = 1  // an isolated pixel: its own outline
        prediction[0] = 1
        truth[15] = 1
        prediction[5] = 1
        let panel = EvaluationPictures.panel(gray: gray, truth: truth, prediction: prediction, width: 4, height: 4)
        #expect(panel.at(0, 0) == (240, 220, 0))
        #expect(panel.at(3, 3) == (0, 220, 0))
        #expect(panel.at(1, 1) == (230, 0, 0))
        #expect(panel.at(2, 1) == (128, 128, 128))
        let row = EvaluationPictures.row([panel, panel], gap: 2)
        #expect(row.width == 2 + 4 + 2 + 4 + 2 && row.height == 4 + 4)
        #expect(row.at(0, 0) == (32, 32, 32) && row.at(2, 2) == (240, 220, 0) && row.at(8, 2) == (240, 220, 0))
    }

    @Test func bestMedianAndWorstAreChosenByDice() {
        let predictions = [10.0, 50, 90, 30, 70].enumerated().map {
            FewShotEvaluation.Prediction(item: $0.offset, supportSize: 4, ensemble: 1, dice: $0.element, mask: [])
        }
        #expect(EvaluationPictures.chosen(predictions).map(\.dice) == [90, 50, 10])
        #expect(EvaluationPictures.chosen(Array(predictions.prefix(2))).map(\.dice) == [50, 10])
    }

    @Test func plotPutsEachSeriesAtItsDice() {
        let report = EvaluationSuiteTests.report([
            EvaluationSuiteTests.row(.universeg, 1, 10, 50), EvaluationSuiteTests.row(.priorMask, 1, 10, 25),
            EvaluationSuiteTests.row(.intensity, 1, 10, 0), EvaluationSuiteTests.row(.universeg, 4, 10, 100),
            EvaluationSuiteTests.row(.priorMask, 4, 10, 25), EvaluationSuiteTests.row(.intensity, 4, 10, 75),
        ])
        let plot = EvaluationPictures.plot(report, ensemble: 10)
        // 16-pixel margins, 64 pixels per N step, 2 pixels per Dice point (y = 16 + 200 - 2 * Dice).
        #expect(plot.width == 16 + 64 + 16 && plot.height == 232)
        #expect(plot.at(16, 116) == (220, 0, 0), "UniverSeg at N=1, Dice 50")
        #expect(plot.at(80, 16) == (220, 0, 0), "UniverSeg at N=4, Dice 100")
        #expect(plot.at(80, 66) == (0, 170, 0), "intensity at N=4, Dice 75")
        #expect(plot.at(16, 166) == (0, 80, 230), "prior mask at N=1, Dice 25")
        #expect(plot.at(48, 200) == (255, 255, 255), "background away from every line")
    }

    @Test func rgbPNGRoundTripsThroughTheDecodersLuminance() throws {
        var image = EvaluationPictures.RGBImage(width: 2, height: 1)
        image.set(0, 0, (255, 0, 0))
        image.set(1, 0, (0, 0, 255))
        let decoded = try PNGCodec.decode(try image.png())
        #expect(decoded.width == 2 && decoded.height == 1)
        // Luminance 0.299 R + 0.587 G + 0.114 B.
        #expect(abs(decoded.values[0] / decoded.maxValue - 0.299) < 0.01)
        #expect(abs(decoded.values[1] / decoded.maxValue - 0.114) < 0.01)
    }

    @Test func maxQueriesTakesTheFirstOfTheSeededTestSplit() throws {
        let data = try SyntheticDataset(count: 20)
        let cfg = UniverSegConfiguration(encoderWidths: [4, 4], decoderWidths: [4], inputSize: 16)
        let dataset = try LabeledDataset(directory: data.path, label: "bright", size: 16)
        let model = try UniverSeg.randomlyInitialized(cfg, seed: 1)
        let all = try FewShotEvaluation(model: model, dataset: dataset,
                                        options: .init(supportSizes: [4], ensembleCounts: [1], seed: 5)).run()
        let some = try FewShotEvaluation(model: model, dataset: dataset,
                                         options: .init(supportSizes: [4], ensembleCounts: [1], seed: 5, maxQueries: 2)).run()
        #expect(all.testSize == 6 && some.testSize == 2)
        for method in FewShotEvaluation.Method.allCases {
            let a = try #require(all.rows.first { $0.method == method }), s = try #require(some.rows.first { $0.method == method })
            #expect(Array(a.perImage.prefix(2)) == s.perImage, "\(method)")
        }
    }

    @Test func predictionsAreKeptForTheLargestNAndKWithTheRowsDice() throws {
        let data = try SyntheticDataset(count: 10)
        let cfg = UniverSegConfiguration(encoderWidths: [4, 4], decoderWidths: [4], inputSize: 16)
        let dataset = try LabeledDataset(directory: data.path, label: "bright", size: 16)
        let report = try FewShotEvaluation(
            model: try UniverSeg.randomlyInitialized(cfg, seed: 1), dataset: dataset,
            options: .init(supportSizes: [1, 4, 50], ensembleCounts: [1, 3], seed: 2, keepPredictions: true)).run()
        #expect(report.predictions.count == report.testSize)
        #expect(report.predictions.allSatisfy { $0.supportSize == 4 && $0.ensemble == 3 && $0.mask.count == 32 * 32 })
        let row = try #require(report.rows.first { $0.method == .universeg && $0.supportSize == 4 && $0.ensemble == 3 })
        #expect(report.predictions.map(\.dice) == row.perImage)
        for prediction in report.predictions {
            let truth = dataset.items[prediction.item].truth
            #expect(abs(100 * SegmentationMetrics.dice(prediction.mask.map(Float.init), truth) - prediction.dice) < 1e-9)
        }
    }
}

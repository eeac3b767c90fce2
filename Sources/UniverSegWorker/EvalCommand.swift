import ArgumentParser
import Foundation
import SegEvaluation
import SegIO
import SegKernels
import SegModel
import SegPlatform

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Few-shot evaluation on a labelled dataset: Dice per N and K against two baselines.",
        discussion: """
            DIR holds images/ID.png and labels/NAME/ID.png (one label mask per label name and image). \
            A seeded split puts 70% of the IDs in the support pool and 30% in the test queries; for \
            each test image, K support sets of size N are drawn from the pool. Baselines on the same \
            split and subsets: the prior mask (mean of the support labels) and an intensity \
            classifier (foreground frequency of 32 intensity bins). Dice in percent, mean over test \
            images with a bootstrap standard deviation; the margin is UniverSeg's Dice minus the \
            better baseline's.

            A suite evaluates several tasks in one run: --task DIR:LABEL (repeatable) or --suite \
            FILE (one "DIR LABEL" per line, DIR relative to the file, # comments); it ends with the \
            mean margin over the tasks. --pictures DIR writes, per task, DATASET-LABEL.queries.png \
            (best, median and worst query at the largest N and K: truth outline green, UniverSeg's \
            red, both yellow) and DATASET-LABEL.dice.png (Dice 0-100 against N at the largest K: \
            UniverSeg red, prior mask blue, intensity classifier green).
            """)

    @Option(help: "Weights file (safetensors). Default: the shipped weights.")
    var weights: String?

    @Option(help: "Dataset directory (images/ and labels/NAME/).")
    var dataset: String?

    @Option(help: "Label name (a folder under labels/).")
    var label: String?

    @Option(name: .customLong("task"), help: "A task of a suite, DIR:LABEL (repeatable).")
    var tasks: [String] = []

    @Option(help: "A suite file: one \"DIR LABEL\" per line.")
    var suite: String?

    @Option(help: "Directory for the pictures of each task (created if missing).")
    var pictures: String?

    @Option(name: .customLong("max-queries"), help: "At most this many test queries per task (a seeded random subset of the 30% test split).")
    var maxQueries: Int?

    @Option(name: .customLong("support-size"), parsing: .upToNextOption, help: "Support sizes N.")
    var supportSizes: [Int] = [1, 4, 16, 64]

    @Option(parsing: .upToNextOption, help: "Ensemble sizes K.")
    var ensemble: [Int] = [1, 10]

    @Option(help: "Seed of the split and of the subsets.")
    var seed: UInt64 = 0

    @Option(help: "OpenBLAS threads. Default: the number of available cores.")
    var threads: Int?

    @Flag(help: "Print the report as JSON (with per-image Dice).")
    var json = false

    func validate() throws {
        guard supportSizes.allSatisfy({ (1...1024).contains($0) }) else { throw ValidationError("--support-size values must be in 1...1024") }
        guard ensemble.allSatisfy({ (1...100).contains($0) }) else { throw ValidationError("--ensemble values must be in 1...100") }
        let single = dataset != nil || label != nil
        guard single != (!tasks.isEmpty || suite != nil) else {
            throw ValidationError("give either --dataset and --label, or a suite (--task DIR:LABEL ... or --suite FILE)")
        }
        if single && (dataset == nil || label == nil) { throw ValidationError("--dataset and --label go together") }
        if let maxQueries, maxQueries < 1 { throw ValidationError("--max-queries must be at least 1") }
    }

    func run() throws {
        BLAS.setThreadCount(threads ?? Platform.availableCores)
        let weightsFile = try WeightsFile(path: try DefaultWeights.resolve(weights))
        var taskList: [EvaluationSuite.Task] = []
        if let dataset, let label { taskList.append(.init(directory: dataset, label: label)) }
        if let suite { taskList += try EvaluationSuite(path: suite).tasks }
        taskList += try tasks.map { try EvaluationSuite.Task(argument: $0) }
        if let pictures { try FileManager.default.createDirectory(atPath: pictures, withIntermediateDirectories: true) }

        var reports: [FewShotEvaluation.Report] = []
        for task in taskList {
            let data = try LabeledDataset(directory: task.directory, label: task.label, size: weightsFile.model.configuration.inputSize)
            let evaluation = try FewShotEvaluation(
                model: weightsFile.model, dataset: data,
                options: .init(supportSizes: supportSizes, ensembleCounts: ensemble, seed: seed, keepPredictions: pictures != nil,
                               maxQueries: maxQueries))
            let report = try evaluation.run { line in
                if !json { FileHandle.standardError.write(Data(("\(data.name)/\(data.labelName) " + line + "\n").utf8)) }
            }
            if let pictures { try writePictures(report, data: data, to: pictures) }
            if !json { printTable(report, data: data, weights: weightsFile) }
            reports.append(report)
        }
        let means = Margins.mean(reports)
        if json {
            struct Output: Encodable {
                let tasks: [FewShotEvaluation.Report]
                let margins: [[Margins.Entry]]
                let meanMargin: [MeanMargin]
                enum CodingKeys: String, CodingKey { case tasks, margins, meanMargin = "mean_margin" }
            }
            struct MeanMargin: Encodable {
                let supportSize: Int, ensemble: Int, margin: Double
                enum CodingKeys: String, CodingKey { case supportSize = "support_size", ensemble, margin }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if reports.count == 1 && dataset != nil {
                print(String(decoding: try encoder.encode(reports[0]), as: UTF8.self))
            } else {
                let output = Output(tasks: reports, margins: reports.map(Margins.of),
                                    meanMargin: means.map { MeanMargin(supportSize: $0.supportSize, ensemble: $0.ensemble, margin: $0.margin) })
                print(String(decoding: try encoder.encode(output), as: UTF8.self))
            }
            return
        }
        if reports.count > 1 {
            print("suite of \(reports.count) tasks: margin (UniverSeg minus the better baseline), Dice points")
            let header = means.map { String(format: " N=%d K=%d", $0.supportSize, $0.ensemble) }
            print("task" + String(repeating: " ", count: 36) + header.map { $0.padding(toLength: 12, withPad: " ", startingAt: 0) }.joined())
            for report in reports {
                let entries = Margins.of(report)
                let name = "\(report.dataset)/\(report.label)".padding(toLength: 40, withPad: " ", startingAt: 0)
                print(name + means.map { mean in
                    let m = entries.first { $0.supportSize == mean.supportSize && $0.ensemble == mean.ensemble }?.margin
                    return (m.map { String(format: " %+6.1f", $0) } ?? "      -").padding(toLength: 12, withPad: " ", startingAt: 0)
                }.joined())
            }
            print("mean".padding(toLength: 40, withPad: " ", startingAt: 0)
                  + means.map { String(format: " %+6.1f", $0.margin).padding(toLength: 12, withPad: " ", startingAt: 0) }.joined())
        }
    }

    private func printTable(_ report: FewShotEvaluation.Report, data: LabeledDataset, weights weightsFile: WeightsFile) {
        print("\(report.dataset) / \(report.label): \(data.items.count) images, pool \(report.poolSize), test \(report.testSize), seed \(report.seed)")
        print("weights \(weightsFile.name) (\(weightsFile.model.configuration))")
        print("  N   K   UniverSeg        prior mask       intensity clf.   margin   ms/query")
        let margins = Margins.of(report)
        for entry in margins {
            let (n, k) = (entry.supportSize, entry.ensemble)
            func cell(_ m: FewShotEvaluation.Method) -> String {
                guard let r = report.rows.first(where: { $0.method == m && $0.supportSize == n && $0.ensemble == k }) else { return "-" }
                return String(format: "%5.1f ± %-4.1f", r.dice, r.diceStd)
            }
            let ms = report.rows.first { $0.method == .universeg && $0.supportSize == n && $0.ensemble == k }?.msPerQuery ?? 0
            print(String(format: "%3d %3d   ", n, k) + cell(.universeg) + "     " + cell(.priorMask) + "     "
                  + cell(.intensity) + String(format: "   %+6.1f   %8.0f", entry.margin, ms))
        }
        if !report.skipped.isEmpty {
            print("skipped N = \(report.skipped.map(String.init).joined(separator: ", ")) (larger than the support pool)")
        }
    }

    /// DATASET-LABEL.queries.png and DATASET-LABEL.dice.png (see the command's discussion).
    private func writePictures(_ report: FewShotEvaluation.Report, data: LabeledDataset, to directory: String) throws {
        let stem = directory + "/" + "\(report.dataset)-\(report.label)".map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }
        let panels = EvaluationPictures.chosen(report.predictions).map { prediction in
            let item = data.items[prediction.item]
            let gray = item.width == data.size && item.height == data.size ? item.image
                : Preprocess.resizeBilinear(item.image, width: data.size, height: data.size, toWidth: item.width, toHeight: item.height)
            return EvaluationPictures.panel(gray: gray, truth: item.truth.map { $0 != 0 ? 1 : 0 }, prediction: prediction.mask,
                                            width: item.width, height: item.height)
        }
        if !panels.isEmpty {
            try FileIO.writeAtomically(try EvaluationPictures.row(panels).png(), to: stem + ".queries.png")
        }
        if let k = report.rows.map(\.ensemble).max() {
            try FileIO.writeAtomically(try EvaluationPictures.plot(report, ensemble: k).png(), to: stem + ".dice.png")
        }
    }
}

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
            images with a bootstrap standard deviation.
            """)

    @Option(help: "Weights file (safetensors). Default: the shipped weights.")
    var weights: String?

    @Option(help: "Dataset directory (images/ and labels/NAME/).")
    var dataset: String

    @Option(help: "Label name (a folder under labels/).")
    var label: String

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
    }

    func run() throws {
        BLAS.setThreadCount(threads ?? Platform.availableCores)
        let weightsFile = try WeightsFile(path: try DefaultWeights.resolve(weights))
        let data = try LabeledDataset(directory: dataset, label: label, size: weightsFile.model.configuration.inputSize)
        let evaluation = try FewShotEvaluation(
            model: weightsFile.model, dataset: data,
            options: .init(supportSizes: supportSizes, ensembleCounts: ensemble, seed: seed))
        let report = try evaluation.run { line in
            if !json { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("\(report.dataset) / \(report.label): \(data.items.count) images, pool \(report.poolSize), test \(report.testSize), seed \(report.seed)")
        print("weights \(weightsFile.name) (\(weightsFile.model.configuration))")
        print("  N   K   UniverSeg        prior mask       intensity clf.   ms/query")
        var keys: [(Int, Int)] = []
        for r in report.rows where r.method == .universeg { keys.append((r.supportSize, r.ensemble)) }
        for (n, k) in keys {
            func cell(_ m: FewShotEvaluation.Method) -> String {
                guard let r = report.rows.first(where: { $0.method == m && $0.supportSize == n && $0.ensemble == k }) else { return "-" }
                return String(format: "%5.1f ± %-4.1f", r.dice, r.diceStd)
            }
            let ms = report.rows.first { $0.method == .universeg && $0.supportSize == n && $0.ensemble == k }?.msPerQuery ?? 0
            print(String(format: "%3d %3d   ", n, k) + cell(.universeg) + "     " + cell(.priorMask) + "     "
                  + cell(.intensity) + String(format: "   %8.0f", ms))
        }
        if !report.skipped.isEmpty {
            print("skipped N = \(report.skipped.map(String.init).joined(separator: ", ")) (larger than the support pool)")
        }
    }
}

internal import Foundation
internal import SegIO
internal import SegKernels
package import SegModel
internal import SegTiming

/// The paper's few-shot evaluation protocol on one labelled dataset: a seeded 70/30 split
/// into a support pool and test queries; for each test image and each support size N, K
/// support subsets of size N are drawn from the pool, and UniverSeg (probabilities averaged
/// over the subsets) is compared with two non-learned baselines that use the same subsets.
/// Dice is measured at the label's own resolution, on masks made exactly as `segment` makes them.
package struct FewShotEvaluation {
    package struct Options: Sendable {
        package var supportSizes: [Int]
        package var ensembleCounts: [Int]
        package var seed: UInt64
        package var threshold: Float
        /// Keep UniverSeg's masks at the largest evaluated N and the largest K (for pictures).
        package var keepPredictions: Bool
        /// At most this many test queries (the first of the seeded test split, a random subset).
        package var maxQueries: Int?

        package init(supportSizes: [Int] = [1, 4, 16, 64], ensembleCounts: [Int] = [1, 10], seed: UInt64 = 0,
                    threshold: Float = 0.5, keepPredictions: Bool = false, maxQueries: Int? = nil) {
            self.maxQueries = maxQueries
            self.supportSizes = supportSizes
            self.ensembleCounts = ensembleCounts
            self.seed = seed
            self.threshold = threshold
            self.keepPredictions = keepPredictions
        }
    }

    package enum Method: String, Codable, Sendable, CaseIterable {
        case universeg
        case priorMask = "prior_mask"
        case intensity = "intensity_classifier"
    }

    package struct Row: Codable, Sendable {
        package let method: Method
        package let supportSize: Int
        package let ensemble: Int
        /// Mean Dice over test images, percent.
        package let dice: Double
        /// Bootstrap standard deviation of the mean, percent.
        package let diceStd: Double
        package let perImage: [Double]
        /// Network wall time per query (all K passes), ms; 0 for the baselines.
        package let msPerQuery: Double

        enum CodingKeys: String, CodingKey {
            case method, dice, perImage = "per_image", supportSize = "support_size", ensemble
            case diceStd = "dice_std", msPerQuery = "ms_per_query"
        }
    }

    /// UniverSeg's mask of one test image (at the label's resolution, 0/1) and its Dice, percent.
    package struct Prediction: Sendable {
        package let item: Int
        package let supportSize: Int
        package let ensemble: Int
        package let dice: Double
        package let mask: [UInt8]
    }

    package struct Report: Codable, Sendable {
        package let dataset: String
        package let label: String
        package let poolSize: Int
        package let testSize: Int
        package let seed: UInt64
        package let rows: [Row]
        package let skipped: [Int]
        /// With `Options.keepPredictions`: one per test image (not part of the JSON).
        package var predictions: [Prediction] = []

        enum CodingKeys: String, CodingKey {
            case dataset, label, seed, rows, skipped, poolSize = "pool_size", testSize = "test_size"
        }
    }

    package let model: UniverSeg
    package let dataset: LabeledDataset
    package let options: Options

    package init(model: UniverSeg, dataset: LabeledDataset, options: Options) throws {
        guard dataset.size == model.configuration.inputSize else {
            throw ModelError(.invalidInput, "dataset was preprocessed for \(dataset.size), the model needs \(model.configuration.inputSize)")
        }
        guard dataset.items.count >= 2 else { throw ModelError(.invalidInput, "evaluation needs at least 2 labelled images") }
        guard !options.supportSizes.isEmpty, !options.ensembleCounts.isEmpty,
              options.supportSizes.allSatisfy({ $0 >= 1 }), options.ensembleCounts.allSatisfy({ $0 >= 1 })
        else { throw ModelError(.invalidInput, "support sizes and ensemble counts must be positive") }
        self.model = model
        self.dataset = dataset
        self.options = options
    }

    /// Seed of the subsets for one (test image, support size): independent of K, so the K=1
    /// subset is the first of the K=10 subsets.
    static func subsetSeed(_ seed: UInt64, test: Int, n: Int) -> UInt64 {
        var g = SeededGenerator(seed: seed ^ (UInt64(test) &* 0x9E37_79B9) ^ (UInt64(n) << 40))
        return g.next()
    }

    package func run(progress: (String) -> Void = { _ in }) throws -> Report {
        let (pool, allTests) = dataset.split(seed: options.seed)
        let test = options.maxQueries.map { Array(allTests.prefix(max(1, $0))) } ?? allTests
        let support = try SupportTensors(images: pool.map { dataset.items[$0].image },
                                         labels: pool.map { dataset.items[$0].label }, size: dataset.size)
        let session = InferenceSession(model: model)
        let size = dataset.size
        let kMax = options.ensembleCounts.max() ?? 1
        var rows: [Row] = []
        var skipped: [Int] = []
        var predictions: [Prediction] = []
        let keepN = options.keepPredictions ? options.supportSizes.filter { $0 <= pool.count }.max() : nil
        for n in options.supportSizes {
            guard n <= pool.count else {
                skipped.append(n)
                progress("N=\(n): skipped, the support pool has \(pool.count) images")
                continue
            }
            // dice[method][k][test image]
            var dice: [Method: [Int: [Double]]] = [:]
            var networkSeconds: [Int: Double] = [:]
            for (t, index) in test.enumerated() {
                let item = dataset.items[index]
                let subsets = try EnsembleOptions(supportSize: n, ensembleCount: kMax,
                                                  seed: Self.subsetSeed(options.seed, test: t, n: n)).subsets(poolSize: pool.count)
                var maps: [Method: [[Float]]] = [:]
                var elapsed: [Double] = []
                for subset in subsets {
                    let start = ContinuousClock.now
                    let logits = try session.logits(query: item.image, support: support, entries: subset)
                    let d = ContinuousClock.now - start
                    elapsed.append(d.milliseconds / 1000)
                    maps[.universeg, default: []].append(logits.map(Elementwise.sigmoid))
                    let images = subset.map { dataset.items[pool[$0]].image }
                    let labels = subset.map { dataset.items[pool[$0]].label }
                    maps[.priorMask, default: []].append(Baselines.priorMask(labels: labels))
                    maps[.intensity, default: []].append(
                        Baselines.intensityClassifier(query: item.image, images: images, labels: labels))
                }
                for k in options.ensembleCounts {
                    let used = min(k, subsets.count)
                    networkSeconds[k, default: 0] += elapsed.prefix(used).reduce(0, +)
                    for method in Method.allCases {
                        let chosen = maps[method]!.prefix(used)
                        var mean = [Float](repeating: 0, count: size * size)
                        for m in chosen { for i in mean.indices { mean[i] += m[i] } }
                        let scale = 1 / Float(chosen.count)
                        for i in mean.indices { mean[i] *= scale }
                        let mask = Preprocess.mask(probabilities: mean, size: size, width: item.width,
                                                   height: item.height, threshold: options.threshold)
                        let score = SegmentationMetrics.dice(mask.map { Float($0) }, item.truth)
                        dice[method, default: [:]][k, default: []].append(score)
                        if method == .universeg, n == keepN, k == kMax {
                            predictions.append(Prediction(item: index, supportSize: n, ensemble: k, dice: 100 * score,
                                                          mask: mask.map { $0 != 0 ? 1 : 0 }))
                        }
                    }
                }
            }
            for k in options.ensembleCounts {
                for method in Method.allCases {
                    let values = (dice[method]?[k] ?? []).map { $0 * 100 }
                    let mean = values.reduce(0, +) / Double(max(values.count, 1))
                    rows.append(Row(
                        method: method, supportSize: n, ensemble: k, dice: mean,
                        diceStd: SegmentationMetrics.bootstrapStandardDeviation(values, seed: options.seed),
                        perImage: values,
                        msPerQuery: method == .universeg ? 1000 * (networkSeconds[k] ?? 0) / Double(max(test.count, 1)) : 0))
                }
                if let r = rows.last(where: { $0.method == .universeg }) {
                    progress(String(format: "N=%d K=%d: UniverSeg Dice %.1f (%.0f ms/query)", n, k, r.dice, r.msPerQuery))
                }
            }
        }
        var report = Report(dataset: dataset.name, label: dataset.labelName, poolSize: pool.count, testSize: test.count,
                            seed: options.seed, rows: rows, skipped: skipped)
        report.predictions = predictions
        return report
    }
}

package import SegModel

extension SegmentationMetrics {
    /// Standard deviation of the mean of `values` over `resamples` bootstrap resamples.
    package static func bootstrapStandardDeviation(_ values: [Double], resamples: Int = 1000, seed: UInt64 = 0) -> Double {
        guard values.count > 1 else { return 0 }
        var rng = SeededGenerator(seed: seed)
        var means: [Double] = []
        means.reserveCapacity(resamples)
        for _ in 0..<resamples {
            var sum = 0.0
            for _ in values.indices { sum += values[rng.nextIndex(below: values.count)] }
            means.append(sum / Double(values.count))
        }
        let mean = means.reduce(0, +) / Double(means.count)
        let variance = means.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(means.count - 1)
        return variance.squareRoot()
    }
}

/// Non-learned few-shot baselines, computed from the same support subsets as the network.
package enum Baselines {
    /// Prior mask: the per-pixel mean of the support labels (a probability map).
    package static func priorMask(labels: [[Float]]) -> [Float] {
        var sum = [Float](repeating: 0, count: labels.first?.count ?? 0)
        for l in labels { for i in sum.indices { sum[i] += l[i] } }
        let scale = 1 / Float(max(labels.count, 1))
        return sum.map { $0 * scale }
    }

    /// Intensity classifier: the foreground frequency of each of `bins` intensity bins over
    /// every support pixel, looked up for each query pixel (bins without support pixels give 0).
    package static func intensityClassifier(query: [Float], images: [[Float]], labels: [[Float]], bins: Int = 32) -> [Float] {
        var total = [Int](repeating: 0, count: bins), foreground = [Int](repeating: 0, count: bins)
        func bin(_ v: Float) -> Int { min(bins - 1, max(0, Int(v * Float(bins)))) }
        for (image, label) in zip(images, labels) {
            for i in image.indices {
                let b = bin(image[i])
                total[b] += 1
                if label[i] > 0.5 { foreground[b] += 1 }
            }
        }
        let frequency = (0..<bins).map { total[$0] > 0 ? Float(foreground[$0]) / Float(total[$0]) : 0 }
        return query.map { frequency[bin($0)] }
    }
}

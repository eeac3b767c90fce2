/// A preprocessed support set: `count` (image, label) pairs at the model's input size,
/// stored as one [count, 2, size, size] float32 tensor (channel 0 image in [0, 1],
/// channel 1 label in {0, 1}).
public struct SupportTensors: Sendable, Equatable {
    public let size: Int
    public let count: Int
    public let pairs: [Float]

    /// - images, labels: `count` planes of size*size floats each, row-major.
    public init(images: [[Float]], labels: [[Float]], size: Int) throws {
        guard !images.isEmpty else { throw ModelError(.invalidInput, "the support set is empty") }
        guard images.count == labels.count else {
            throw ModelError(.invalidInput, "support set has \(images.count) images but \(labels.count) labels")
        }
        let plane = size * size
        var pairs = [Float](repeating: 0, count: images.count * 2 * plane)
        for i in images.indices {
            guard images[i].count == plane, labels[i].count == plane else {
                throw ModelError(.invalidInput, "support entry \(i) is not \(size)x\(size)")
            }
            for p in 0..<plane {
                pairs[(2 * i) * plane + p] = images[i][p]
                pairs[(2 * i + 1) * plane + p] = labels[i][p]
            }
        }
        self.size = size
        self.count = images.count
        self.pairs = pairs
    }

    /// Bytes held by the tensor.
    public var byteCount: Int { pairs.count * MemoryLayout<Float>.stride }
}

/// How support subsets are drawn for one prediction.
public struct EnsembleOptions: Sendable, Equatable {
    /// Entries per subset (N); nil means every entry of the support set.
    public var supportSize: Int?
    /// Number of subsets (K) whose probabilities are averaged.
    public var ensembleCount: Int
    /// Seed of the subset generator.
    public var seed: UInt64

    public init(supportSize: Int? = nil, ensembleCount: Int = 1, seed: UInt64 = 0) {
        self.supportSize = supportSize
        self.ensembleCount = ensembleCount
        self.seed = seed
    }

    /// The subsets (entry indices) to run for a support set of `poolSize` entries.
    ///
    /// Without `supportSize` (or with `supportSize == poolSize`) every subset is the whole set
    /// in its original order, so a single forward pass is run and no random numbers are drawn.
    /// Otherwise `ensembleCount` subsets of `supportSize` distinct entries are drawn from a
    /// generator seeded with `seed`.
    public func subsets(poolSize: Int) throws -> [[Int]] {
        guard poolSize >= 1 else { throw ModelError(.invalidInput, "the support set is empty") }
        guard ensembleCount >= 1 else { throw ModelError(.invalidInput, "ensemble count must be at least 1") }
        let n = supportSize ?? poolSize
        guard n >= 1 else { throw ModelError(.invalidInput, "support size must be at least 1") }
        guard n <= poolSize else {
            throw ModelError(.invalidInput, "support size \(n) exceeds the \(poolSize) entries of the support set")
        }
        if n == poolSize { return [Array(0..<poolSize)] }
        var rng = SeededGenerator(seed: seed)
        return (0..<ensembleCount).map { _ in rng.sample(n, from: poolSize) }
    }
}

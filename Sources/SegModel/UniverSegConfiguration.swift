/// The architecture of a UniverSeg network: block widths and the square input size.
///
/// The released v1 network is `encoderWidths = [64, 64, 64, 64]`, `decoderWidths = [64, 64, 64]`,
/// `inputSize = 128`. There is one decoder block per encoder level except the deepest.
public struct UniverSegConfiguration: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var encoderWidths: [Int]
    public var decoderWidths: [Int]
    public var inputSize: Int

    public static let v1 = UniverSegConfiguration(
        encoderWidths: [64, 64, 64, 64], decoderWidths: [64, 64, 64], inputSize: 128)

    public init(encoderWidths: [Int], decoderWidths: [Int], inputSize: Int) {
        self.encoderWidths = encoderWidths
        self.decoderWidths = decoderWidths
        self.inputSize = inputSize
    }

    /// Checks the structural rules; throws `ModelError.invalidConfiguration` with the reason.
    public func validate() throws {
        let levels = encoderWidths.count
        guard (2...8).contains(levels) else {
            throw ModelError(.invalidConfiguration, "encoder must have 2 to 8 blocks, has \(levels)")
        }
        guard decoderWidths.count == levels - 1 else {
            throw ModelError(.invalidConfiguration,
                             "decoder must have \(levels - 1) blocks (one fewer than the encoder), has \(decoderWidths.count)")
        }
        for w in encoderWidths + decoderWidths where !(1...1024).contains(w) {
            throw ModelError(.invalidConfiguration, "block width \(w) outside 1...1024")
        }
        let divisor = 1 << (levels - 1)
        guard inputSize >= divisor, inputSize <= 1024, inputSize % divisor == 0 else {
            throw ModelError(.invalidConfiguration,
                             "input size \(inputSize) must be in \(divisor)...1024 and divisible by \(divisor)")
        }
    }

    public var levels: Int { encoderWidths.count }

    /// Side length of the feature maps at encoder level `level` (0 = input resolution).
    public func size(atLevel level: Int) -> Int { inputSize >> level }

    /// Channel counts (query, support) entering every cross block, encoder blocks first.
    public var blockInputChannels: [(query: Int, support: Int)] {
        var result: [(Int, Int)] = []
        for (i, _) in encoderWidths.enumerated() {
            result.append(i == 0 ? (1, 2) : (encoderWidths[i - 1], encoderWidths[i - 1]))
        }
        for j in decoderWidths.indices {
            let below = j == 0 ? encoderWidths[levels - 1] : decoderWidths[j - 1]
            let skip = encoderWidths[levels - 2 - j]
            result.append((below + skip, below + skip))
        }
        return result
    }

    public var description: String {
        "encoder \(encoderWidths), decoder \(decoderWidths), input \(inputSize)x\(inputSize)"
    }
}

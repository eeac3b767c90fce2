/// Arithmetic cost of one forward pass, in multiply-accumulates.
extension UniverSegConfiguration {
    public enum Algorithm: Sendable {
        /// The authors' formulation: every (query, support) pair concatenated and convolved.
        case reference
        /// This engine: the exact reductions of `InferenceSession`.
        case reduced
    }

    public func multiplyAccumulates(supportSize n: Int, algorithm: Algorithm) -> Int {
        let inputs = blockInputChannels
        var total = 0
        func block(_ index: Int, side: Int, width w: Int, supportPath: Bool) {
            let hw = side * side
            let (cu, cv) = inputs[index]
            switch algorithm {
            case .reference:
                total += n * w * (cu + cv) * 9 * hw          // pairwise cross convs
                total += w * w * 9 * hw                       // target conv
                total += n * w * w * 9 * hw                   // support convs
            case .reduced:
                total += w * cu * 9 * hw + w * cv * 9 * hw    // query half once + conv of the mean
                total += w * w * 9 * hw                       // target conv
                if supportPath { total += n * (w * cv * 9 * hw + w * w * 9 * hw) }
            }
        }
        for (l, w) in encoderWidths.enumerated() { block(l, side: size(atLevel: l), width: w, supportPath: true) }
        for (j, w) in decoderWidths.enumerated() {
            block(levels + j, side: size(atLevel: levels - 2 - j), width: w, supportPath: j < decoderWidths.count - 1)
        }
        total += (decoderWidths.last ?? 0) * inputSize * inputSize
        return total
    }
}

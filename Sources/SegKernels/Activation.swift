#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Pointwise activation applied in the output pass of a convolution.
public enum Activation: Sendable, Equatable {
    case none
    /// LeakyReLU with the given negative slope (UniverSeg uses 0.01).
    case leakyReLU(Float)

    /// The negative slope of a LeakyReLU, nil for none.
    public var leakySlope: Float? {
        if case .leakyReLU(let slope) = self { return slope }
        return nil
    }
}

public enum Elementwise {
    /// In place: x = x >= 0 ? x : slope * x, over `count` floats.
    @inlinable
    public static func leakyReLU(_ x: UnsafeMutablePointer<Float>, count: Int, slope: Float) {
        for i in 0..<count {
            let v = x[i]
            x[i] = v >= 0 ? v : v * slope
        }
    }

    @inlinable
    public static func apply(_ activation: Activation, _ x: UnsafeMutablePointer<Float>, count: Int) {
        switch activation {
        case .none: break
        case .leakyReLU(let slope): leakyReLU(x, count: count, slope: slope)
        }
    }

    /// out[i] = mean over `entries` of input[e * stride + i] for i < count.
    /// The entries are `entryStride` floats apart; `out` may not alias the input.
    public static func mean(
        _ input: UnsafePointer<Float>, entries: Int, entryStride: Int, count: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        precondition(entries >= 1, "mean over zero entries")
        out.update(from: input, count: count)
        for e in 1..<max(entries, 1) {
            let src = input + e * entryStride
            for i in 0..<count { out[i] += src[i] }
        }
        let scale = 1 / Float(entries)
        for i in 0..<count { out[i] *= scale }
    }

    /// Numerically stable logistic function, element by element.
    public static func sigmoid(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
        for i in 0..<count { out[i] = sigmoid(x[i]) }
    }

    public static func sigmoid(_ v: Float) -> Float {
        if v >= 0 {
            return 1 / (1 + expf(-v))
        } else {
            let e = expf(v)
            return e / (1 + e)
        }
    }
}

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
    /// The entries are `entryStride` floats apart; `out` may not alias the input. With several
    /// `threads` each takes a contiguous range of i; every value is summed in entry order
    /// whatever the thread count, so the result does not depend on it.
    public static func mean(
        _ input: UnsafePointer<Float>, entries: Int, entryStride: Int, count: Int,
        into out: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        precondition(entries >= 1, "mean over zero entries")
        let scale = 1 / Float(entries)
        Parallel.forEachChunk(count, maxChunks: threads, minimumPerChunk: 1 << 15) { _, range in
            let o = out + range.lowerBound, n = range.count
            o.update(from: input + range.lowerBound, count: n)
            for e in 1..<max(entries, 1) {
                let src = input + e * entryStride + range.lowerBound
                for i in 0..<n { o[i] += src[i] }
            }
            for i in 0..<n { o[i] *= scale }
        }
    }

    /// out[i] += input[i] for i < count, on up to `threads` threads (contiguous ranges).
    public static func add(_ input: UnsafePointer<Float>, to out: UnsafeMutablePointer<Float>, count: Int, threads: Int = 1) {
        Parallel.forEachChunk(count, maxChunks: threads, minimumPerChunk: 1 << 15) { _, range in
            let o = out + range.lowerBound, src = input + range.lowerBound
            for i in 0..<range.count { o[i] += src[i] }
        }
    }

    /// out[i] *= factor for i < count, on up to `threads` threads (contiguous ranges).
    public static func scale(_ out: UnsafeMutablePointer<Float>, by factor: Float, count: Int, threads: Int = 1) {
        Parallel.forEachChunk(count, maxChunks: threads, minimumPerChunk: 1 << 15) { _, range in
            let o = out + range.lowerBound
            for i in 0..<range.count { o[i] *= factor }
        }
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

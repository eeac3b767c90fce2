/// 2-D convolutions on float32 NCHW tensors, lowered to GEMM.
///
/// A 3x3 convolution (stride 1, zero padding 1) is computed band by band: the rows of a band
/// are unfolded into a column matrix (im2col, [cin*9, rows*w]) in caller-provided scratch
/// memory, one `sgemm` multiplies the [cout, cin*9] weight matrix with it, and bias and
/// activation are applied in the same pass over the freshly written (cache-hot) output band.
public enum Conv2D {
    /// Columns (output pixels) per im2col band. Large enough for sgemm to run near peak,
    /// small enough for the column matrix to stay in the last-level cache.
    public static let defaultBandColumns = 2048

    /// Scratch floats needed by `conv3x3` for `inChannels` channels of width `width`, for one
    /// band at a time. Capacity for `n` bands lets `n` threads work side by side.
    public static func scratchCount(inChannels: Int, height: Int, width: Int,
                                    bandColumns: Int = defaultBandColumns) -> Int {
        let rows = bandRows(height: height, width: width, bandColumns: bandColumns)
        return inChannels * 9 * rows * width
    }

    static func bandRows(height: Int, width: Int, bandColumns: Int) -> Int {
        max(1, min(height, bandColumns / max(width, 1)))
    }

    /// 3x3 convolution, stride 1, zero padding 1.
    ///
    /// - input: [inChannels, height, width]; with `upperInput`, only its first `upperFrom`
    ///   channels, the others being read from `upperInput` (see `Conv2D.plane`).
    /// - weight: [outChannels, inChannels, 3, 3] (OIHW); row `o` starts at `weight + o * weightRowStride`,
    ///   so a slice of the input channels of a larger weight can be used without copying
    ///   (`weightRowStride` >= inChannels * 9).
    /// - bias: [outChannels] or nil. Must be nil when `accumulate` is true.
    /// - output: [outChannels, height, width]; overwritten, or added to when `accumulate` is true.
    /// - addend: [outChannels, height, width] or nil: output = addend + convolution, copied in
    ///   band by band just before each band's product (bias must be nil, `accumulate` false).
    /// - activation: applied to the final output values.
    /// - scratch: at least `scratchCount(inChannels:height:width:bandColumns:)` floats.
    public static func conv3x3(
        input: UnsafePointer<Float>, upperInput: UnsafePointer<Float>? = nil, upperFrom: Int = 0,
        inChannels: Int, height: Int, width: Int,
        weight: UnsafePointer<Float>, weightRowStride: Int? = nil, outChannels: Int,
        bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, accumulate: Bool = false, addend: UnsafePointer<Float>? = nil,
        activation: Activation = .none,
        scratch: UnsafeMutablePointer<Float>, scratchCapacity: Int,
        bandColumns: Int = defaultBandColumns, threads: Int = Parallel.threadCount
    ) {
        precondition(!(accumulate && bias != nil), "conv3x3: bias with accumulate is not supported")
        precondition(addend == nil || (!accumulate && bias == nil), "conv3x3: an addend excludes accumulate and bias")
        precondition(upperInput == nil || (0...inChannels).contains(upperFrom), "conv3x3: upperFrom out of range")
        let k = inChannels * 9
        let ldw = weightRowStride ?? k
        precondition(ldw >= k, "conv3x3: weight row stride too small")
        let hw = height * width
        let rows = bandRows(height: height, width: width, bandColumns: bandColumns)
        let perBand = k * rows * width
        precondition(scratchCapacity >= perBand, "conv3x3: scratch too small")
        let bands = (height + rows - 1) / rows
        // Bands are independent: with one-thread BLAS, each thread unfolds and multiplies its
        // own bands in its own slice of the scratch memory.
        let slots = BLAS.runsIndependentCalls ? max(1, min(threads, scratchCapacity / perBand)) : 1
        Parallel.forEachChunk(bands, maxChunks: slots) { slot, range in
            for band in range {
                let y0 = band * rows, y1 = min(height, y0 + rows)
                rows3x3(input: input, upperInput: upperInput, upperFrom: upperFrom, inChannels: inChannels,
                        height: height, width: width, rowStart: y0, rowEnd: y1, weight: weight, weightRowStride: ldw,
                        outChannels: outChannels, bias: bias, output: output + y0 * width, outputPlaneStride: hw,
                        accumulate: accumulate, addend: addend, activation: activation,
                        scratch: scratch + slot * perBand, threads: slots == 1 ? threads : 1)
            }
        }
    }

    /// Output rows [rowStart, rowEnd) of `conv3x3` (same arguments): unfolded into `scratch`
    /// (`inChannels * 9 * (rowEnd - rowStart) * width` floats) and multiplied with one sgemm.
    /// Row r of output channel o goes to `output + o * outputPlaneStride + (r - rowStart) * width`,
    /// so the rows can go into whole planes (`outputPlaneStride` height * width, `output` at row
    /// `rowStart`) or into a band of their own (stride (rowEnd - rowStart) * width). `addend`
    /// is whole planes, read at the same rows.
    public static func rows3x3(
        input: UnsafePointer<Float>, upperInput: UnsafePointer<Float>? = nil, upperFrom: Int = 0,
        inChannels: Int, height: Int, width: Int, rowStart y0: Int, rowEnd y1: Int,
        weight: UnsafePointer<Float>, weightRowStride ldw: Int, outChannels: Int, bias: UnsafePointer<Float>?,
        output out: UnsafeMutablePointer<Float>, outputPlaneStride: Int, accumulate: Bool = false,
        addend: UnsafePointer<Float>? = nil, activation: Activation = .none,
        scratch col: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        let hw = height * width
        let columns = (y1 - y0) * width
        im2col3x3(input: input, upperInput: upperInput, upperFrom: upperFrom, channels: inChannels,
                  height: height, width: width, rowStart: y0, rowEnd: y1, into: col, threads: threads)
        var beta: Float = accumulate ? 1 : 0
        if let bias {
            for o in 0..<outChannels {
                (out + o * outputPlaneStride).update(repeating: bias[o], count: columns)
            }
            beta = 1
        } else if let addend {
            for o in 0..<outChannels {
                (out + o * outputPlaneStride).update(from: addend + y0 * width + o * hw, count: columns)
            }
            beta = 1
        }
        BLAS.sgemm(m: outChannels, n: columns, k: inChannels * 9, a: weight, lda: ldw,
                   b: col, ldb: columns, beta: beta, c: out, ldc: outputPlaneStride)
        if activation != .none {
            for o in 0..<outChannels {
                Elementwise.apply(activation, out + o * outputPlaneStride, count: columns)
            }
        }
    }

    /// Channel `c` of a convolution input of planes of `size` floats: from `input`, or, when
    /// `upper` is given, from `upper` for the channels from `split` on (its first plane is
    /// channel `split`). So a concatenation [a; b] along the channels is read in place.
    @inline(__always)
    static func plane(_ c: Int, of input: UnsafePointer<Float>, upper: UnsafePointer<Float>?, from split: Int,
                      size: Int) -> UnsafePointer<Float> {
        if let upper, c >= split { return upper + (c - split) * size }
        return input + c * size
    }

    /// Unfolds rows [rowStart, rowEnd) of a [channels, height, width] image into
    /// [channels * 9, (rowEnd - rowStart) * width], row index c*9 + ky*3 + kx.
    public static func im2col3x3(
        input: UnsafePointer<Float>, upperInput: UnsafePointer<Float>? = nil, upperFrom: Int = 0,
        channels: Int, height: Int, width: Int,
        rowStart: Int, rowEnd: Int, into col: UnsafeMutablePointer<Float>, threads: Int = Parallel.threadCount
    ) {
        let bandRows = rowEnd - rowStart
        let columns = bandRows * width
        Parallel.forEachChunk(channels, maxChunks: threads) { _, range in
        for c in range {
            let plane = Conv2D.plane(c, of: input, upper: upperInput, from: upperFrom, size: height * width)
            for ky in 0..<3 {
                for kx in 0..<3 {
                    let dst = col + ((c * 9 + ky * 3 + kx) * columns)
                    for r in 0..<bandRows {
                        let y = rowStart + r + ky - 1
                        let d = dst + r * width
                        if y < 0 || y >= height {
                            d.update(repeating: 0, count: width)
                            continue
                        }
                        let s = plane + y * width
                        switch kx {
                        case 0:
                            d[0] = 0
                            if width > 1 { (d + 1).update(from: s, count: width - 1) }
                        case 1:
                            d.update(from: s, count: width)
                        default:
                            if width > 1 { d.update(from: s + 1, count: width - 1) }
                            d[width - 1] = 0
                        }
                    }
                }
            }
        }
        }
    }

    /// 1x1 convolution: output[o, p] = sum_c weight[o, c] * input[c, p] + bias[o].
    ///
    /// - input: [inChannels, pixels]; weight: [outChannels, inChannels]; bias: [outChannels] or nil;
    /// - output: [outChannels, pixels].
    public static func conv1x1(
        input: UnsafePointer<Float>, inChannels: Int, pixels: Int,
        weight: UnsafePointer<Float>, outChannels: Int, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation = .none
    ) {
        var beta: Float = 0
        if let bias {
            for o in 0..<outChannels { (output + o * pixels).update(repeating: bias[o], count: pixels) }
            beta = 1
        }
        BLAS.sgemm(m: outChannels, n: pixels, k: inChannels, a: weight, lda: inChannels,
                   b: input, ldb: pixels, beta: beta, c: output, ldc: pixels)
        Elementwise.apply(activation, output, count: outChannels * pixels)
    }
}

internal import Synchronization
internal import SegSIMDInterface

/// 3x3 convolution (stride 1, zero padding 1) with Winograd's minimal filtering: F(2x2, 3x3)
/// here, F(4x4, 3x3) in WinogradF4.swift (the default).
///
/// Each 2x2 output tile is computed from a 4x4 input patch with 16 multiplications per
/// (input, output) channel pair instead of 36, so the GEMM work is 2.25x smaller than with
/// im2col. Per band of tiles: the input patches are transformed (V = Bᵀ d B) into 16 matrices
/// [inChannels, tiles], 16 sgemm calls multiply them with the transformed filters
/// (U = G g Gᵀ, [outChannels, inChannels] each), and the output transform (Y = Aᵀ M A) writes
/// the 2x2 tiles with bias, accumulation and activation fused in.
/// The result equals direct convolution up to float32 rounding (a few ulp per sum).
public enum Winograd {
    /// The tile size: F(2x2, 3x3) (16 products per tile) or F(4x4, 3x3) (36 per tile, see
    /// WinogradF4.swift).
    public enum Variant: String, Sendable, CaseIterable {
        case f2x2 = "F(2x2,3x3)"
        case f4x4 = "F(4x4,3x3)"
    }

    /// The variant filters use unless told otherwise (F(4x4, 3x3); `bench --winograd` changes it
    /// for the filters made afterwards).
    public static var defaultVariant: Variant {
        get { defaultIsF2.load(ordering: .relaxed) ? .f2x2 : .f4x4 }
        set { defaultIsF2.store(newValue == .f2x2, ordering: .relaxed) }
    }
    private static let defaultIsF2 = Atomic<Bool>(false)

    /// Tiles per band: the transformed input and output of a band stay in the last-level cache.
    public static let defaultBandTiles = 256

    /// Floats added between the 16 transform planes so that their 16 concurrent access
    /// streams do not map onto the same cache sets (plane sizes are often multiples of 4 KiB).
    static let planePad = 16

    /// Memory for transformed filters: one allocation that several filters share (a network's
    /// filters in one block, so that a large one is backed by huge pages, see `FloatBuffer`).
    /// Written while the filters are made, read-only afterwards (hence `@unchecked Sendable`).
    public final class FilterStorage: @unchecked Sendable {
        let buffer: FloatBuffer
        public let count: Int

        public init(count: Int) {
            self.count = count
            self.buffer = FloatBuffer(capacity: count)
        }
    }

    /// Filters transformed once, ahead of inference: u[k][o][c] for k in 0..<16 (F(2x2, 3x3))
    /// or 0..<36 (F(4x4, 3x3)).
    public struct Filter: Sendable {
        public let inChannels: Int
        public let outChannels: Int
        public let variant: Variant
        private let storage: FilterStorage
        private let offset: Int

        /// The transformed values (`floatCount` of them).
        public var u: UnsafePointer<Float> { UnsafePointer(storage.buffer.pointer + offset) }

        /// Floats a filter of these sizes takes in a `FilterStorage`.
        public static func floatCount(inChannels: Int, outChannels: Int, variant: Variant = Winograd.defaultVariant) -> Int {
            (variant == .f4x4 ? 36 : 16) * outChannels * inChannels
        }

        /// - weight: OIHW [outChannels, *, 3, 3]; row `o` starts at `weight + o * rowStride`,
        ///   and channel `c` of that row at `+ c * 9` (a slice of a wider weight is allowed).
        /// - storage, offset: where the transformed values go (`floatCount` floats from `offset`);
        ///   a storage of their own when nil.
        public init(weight: UnsafePointer<Float>, rowStride: Int, inChannels: Int, outChannels: Int,
                    variant: Variant = Winograd.defaultVariant, storage: FilterStorage? = nil, offset: Int = 0) {
            precondition(rowStride >= inChannels * 9)
            let count = Filter.floatCount(inChannels: inChannels, outChannels: outChannels, variant: variant)
            let storage = storage ?? FilterStorage(count: count)
            precondition(offset >= 0 && offset + count <= storage.count, "winograd: filter storage too small")
            self.inChannels = inChannels
            self.outChannels = outChannels
            self.variant = variant
            self.storage = storage
            self.offset = offset
            let u = storage.buffer.pointer + offset
            if variant == .f4x4 {
                Winograd.transformFilterF4(weight: weight, rowStride: rowStride, inChannels: inChannels,
                                           outChannels: outChannels, into: u)
                return
            }
            let plane = outChannels * inChannels
            for o in 0..<outChannels {
                for c in 0..<inChannels {
                    let g = weight + o * rowStride + c * 9
                    // Gg: 4 x 3
                    var gg = [Float](repeating: 0, count: 12)
                    for j in 0..<3 {
                        let g0 = g[j], g1 = g[3 + j], g2 = g[6 + j]
                        gg[j] = g0
                        gg[3 + j] = 0.5 * (g0 + g1 + g2)
                        gg[6 + j] = 0.5 * (g0 - g1 + g2)
                        gg[9 + j] = g2
                    }
                    // (Gg) Gᵀ: 4 x 4
                    for i in 0..<4 {
                        let a0 = gg[3 * i], a1 = gg[3 * i + 1], a2 = gg[3 * i + 2]
                        let row = [a0, 0.5 * (a0 + a1 + a2), 0.5 * (a0 - a1 + a2), a2]
                        for j in 0..<4 { u[(i * 4 + j) * plane + o * inChannels + c] = row[j] }
                    }
                }
            }
        }
    }

    /// Scratch floats needed by `conv3x3` for these sizes (bandTiles nil: the variant's default).
    public static func scratchCount(inChannels: Int, outChannels: Int, height: Int, width: Int,
                                    bandTiles: Int? = nil, variant: Variant = defaultVariant) -> Int {
        if variant == .f4x4 {
            return scratchCountF4(inChannels: inChannels, outChannels: outChannels, height: height, width: width,
                                  bandTiles: bandTiles ?? defaultBandTilesF4)
        }
        let bandTiles = bandTiles ?? defaultBandTiles
        let tilesX = (width + 1) / 2, tilesY = (height + 1) / 2
        let rows = max(1, min(tilesY, bandTiles / tilesX))
        let padded = inChannels * (2 * tilesY + 2) * (2 * tilesX + 2)
        return padded + 16 * (inChannels * rows * tilesX + planePad) + 16 * (outChannels * rows * tilesX + planePad)
    }

    /// - input: [filter.inChannels, height, width]; with `upperInput`, only its first
    ///   `upperFrom` channels, the others being read from `upperInput` (a concatenation read in
    ///   place). output: [filter.outChannels, height, width],
    ///   overwritten (plus bias) or, with `accumulate`, added to (bias must then be nil).
    /// - addend: [filter.outChannels, height, width] or nil: output = addend + convolution, read
    ///   as the output is written (no copy first; bias must be nil, and `accumulate` false).
    /// - accumulateActivated: output += activation(convolution + bias + addend), a running sum of
    ///   activated outputs (one pass instead of a convolution into scratch and an addition).
    /// - pooled: [filter.outChannels, height / 2, width / 2] or nil: also the 2x2 max-pooling
    ///   (stride 2, odd trailing rows and columns dropped) of the activated values (not of the
    ///   sums), bit-identical to `Resample.maxPool2x2` of them, written as they are computed.
    /// - lowerUpsampled: the channels read from `input` (below `upperFrom` when `upperInput` is
    ///   given, else all) are stored at (height / 2) x (width / 2) and convolved as their x2
    ///   bilinear upsampling (`Resample.upsampleBilinear2x`, bit-identical), made row by row as
    ///   the transform needs them instead of stored first. `height` and `width` must be even.
    public static func conv3x3(
        input: UnsafePointer<Float>, upperInput: UnsafePointer<Float>? = nil, upperFrom: Int = 0,
        height: Int, width: Int, filter: Filter,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, accumulate: Bool = false,
        addend: UnsafePointer<Float>? = nil, activation: Activation = .none,
        accumulateActivated: Bool = false, pooled: UnsafeMutablePointer<Float>? = nil, lowerUpsampled: Bool = false,
        scratch: UnsafeMutablePointer<Float>, scratchCapacity: Int, bandTiles: Int? = nil,
        threads: Int = Parallel.threadCount, isa: KernelISA = .active
    ) {
        let kernels = isa.kernels
        precondition(!lowerUpsampled || (height % 2 == 0 && width % 2 == 0), "winograd: an upsampled input needs even sizes")
        let rows = InputRows(input: input, upper: upperInput, upperFrom: upperFrom, height: height, width: width,
                             upsampled: lowerUpsampled)
        precondition(!(accumulate && bias != nil), "winograd: bias with accumulate is not supported")
        precondition(!(accumulate && accumulateActivated), "winograd: accumulate and accumulateActivated exclude each other")
        precondition(addend == nil || (!accumulate && bias == nil), "winograd: an addend excludes accumulate and bias")
        precondition(upperInput == nil || (0...filter.inChannels).contains(upperFrom), "winograd: upperFrom out of range")
        let addend = accumulate ? UnsafePointer(output) : addend
        let cin = filter.inChannels, cout = filter.outChannels
        precondition(scratchCapacity >= scratchCount(inChannels: cin, outChannels: cout, height: height, width: width,
                                                     bandTiles: bandTiles, variant: filter.variant), "winograd: scratch too small")
        if filter.variant == .f4x4 {
            let bandTiles = bandTiles ?? defaultBandTilesF4
            let perThread = scratchCountF4(inChannels: cin, outChannels: cout, height: height, width: width,
                                           bandTiles: bandTiles)
            let tiling = F4Tiling(height: height, width: width, bandTiles: bandTiles)
            // Concurrent sgemm calls only where OpenBLAS runs single-threaded (else it splits each call).
            let workers = BLAS.runsIndependentCalls ? min(threads, tiling.bandCount, scratchCapacity / perThread) : 1
            guard workers > 1 else {
                conv3x3F4(rows: rows, height: height, width: width, filter: filter, bias: bias, output: output,
                          addend: addend, activation: activation, sum: accumulateActivated, pooled: pooled,
                          scratch: scratch, bandTiles: bandTiles, threads: threads, kernels: kernels)
                return
            }
            // Threads take whole bands, each in its own slice of the scratch (one hand-over per
            // band instead of three per band when the threads share each band's transforms and
            // products: those were too short to keep a second thread busy). Bands write disjoint
            // rows, and every band's values are the same whichever thread computes it.
            var cleared = [Bool](repeating: false, count: workers)
            cleared.withUnsafeMutableBufferPointer { cleared in
                Parallel.forEachItem(tiling.bandCount, maxWorkers: workers) { worker, band in
                    conv3x3F4(rows: rows, height: height, width: width, filter: filter, bias: bias, output: output,
                              addend: addend, activation: activation, sum: accumulateActivated, pooled: pooled,
                              scratch: scratch + worker * perThread, bandTiles: bandTiles, tileRows: tiling.tileRows(band),
                              mIsZero: cleared[worker], threads: 1, kernels: kernels)
                    cleared[worker] = true
                }
            }
            return
        }
        let bandTiles = bandTiles ?? defaultBandTiles
        let tilesX = (width + 1) / 2, tilesY = (height + 1) / 2
        let rowsPerBand = max(1, min(tilesY, bandTiles / tilesX))
        let pw = 2 * tilesX + 2, ph = 2 * tilesY + 2
        // Zero-padded copy of the input: one pixel of padding above and left, one or two below and right.
        let padded = scratch
        Parallel.forEachChunk(cin, maxChunks: threads) { _, channels in
            for c in channels {
                let plane = padded + c * ph * pw
                // Only the border is zeroed: the interior is overwritten by the copy.
                plane.update(repeating: 0, count: pw)
                for y in 0..<height {
                    let row = plane + (y + 1) * pw
                    row[0] = 0
                    let source = rows.row(c, y, scratch: row + 1, kernels: kernels)
                    if source != UnsafePointer(row + 1) { (row + 1).update(from: source, count: width) }
                    (row + 1 + width).update(repeating: 0, count: pw - 1 - width)
                }
                (plane + (height + 1) * pw).update(repeating: 0, count: (ph - height - 1) * pw)
            }
        }
        let hw = height * width
        bands(planes: 16, filter: filter, tilesX: tilesX, tilesY: tilesY, rowsPerBand: rowsPerBand,
              v: scratch + cin * ph * pw, threads: threads) { ty0, ty1, v in
            inputTransform(padded: padded, channels: cin, paddedHeight: ph, paddedWidth: pw,
                           tileRowStart: ty0, tileRowEnd: ty1, tilesX: tilesX, into: v, threads: threads, kernels: kernels)
        } output: { m, tiles, ty0, ty1 in
            outputTransform(m: m, channels: cout, tiles: tiles, tileRowStart: ty0, tileRowEnd: ty1,
                            tilesX: tilesX, height: height, width: width, bias: bias, output: output,
                            planeStride: hw, addend: addend, activation: activation, sum: accumulateActivated,
                            pooled: pooled, threads: threads, kernels: kernels, variant: .f2x2)
        }
    }

    /// Row `y` of input channel `c` of a convolution: in place in `input` or `upper` (a
    /// concatenation read in place, see `Conv2D.plane`), or, for the channels of `input` when
    /// they are stored at half resolution, their x2 upsampling made into `scratch` (`width` floats).
    /// A band input holds only rows `rowOrigin ..< rowOrigin + channelStride / width` of each channel.
    struct InputRows {
        let input: UnsafePointer<Float>, upper: UnsafePointer<Float>?, upperFrom: Int
        let height: Int, width: Int
        let upsampler: Resample.Upsampler2x?
        let channelStride: Int, rowOrigin: Int

        init(input: UnsafePointer<Float>, upper: UnsafePointer<Float>?, upperFrom: Int, height: Int, width: Int,
             upsampled: Bool) {
            (self.input, self.upper, self.upperFrom, self.height, self.width) = (input, upper, upperFrom, height, width)
            upsampler = upsampled ? Resample.Upsampler2x(inHeight: height / 2, inWidth: width / 2) : nil
            (channelStride, rowOrigin) = (height * width, 0)
        }

        /// Rows `rows` of every channel, [channels, rows.count, width] at `band`.
        init(band: UnsafePointer<Float>, rows: Range<Int>, height: Int, width: Int) {
            (input, upper, upperFrom, self.height, self.width, upsampler) = (band, nil, 0, height, width, nil)
            (channelStride, rowOrigin) = (rows.count * width, rows.lowerBound)
        }

        @inline(__always)
        func row(_ c: Int, _ y: Int, scratch: UnsafeMutablePointer<Float>, kernels: any SIMDKernelSet.Type)
            -> UnsafePointer<Float> {
            guard let upsampler, upper == nil || c < upperFrom else {
                return Conv2D.plane(c, of: input, upper: upper, from: upperFrom, size: channelStride)
                    + (y - rowOrigin) * width
            }
            upsampler.row(y, of: input + c * upsampler.inHeight * upsampler.inWidth, into: scratch, kernels: kernels)
            return UnsafePointer(scratch)
        }
    }

    /// The band loop of both variants. Per band of tile rows: the input transform into V (at
    /// `v`), the `planes` independent products M_k = U_k V_k, then the output transform. The
    /// products accumulate into M (beta 1), which is all zero here and is zeroed again by the
    /// output transform as it reads each band: OpenBLAS then skips its separate pass that clears
    /// C before every beta-0 product.
    ///
    /// `tileRows` limits the loop to those tile rows; with `mIsZero` the caller vouches that M is
    /// still all zero from an earlier call on the same scratch (the output transform leaves it so).
    static func bands(planes: Int, filter: Filter, tilesX: Int, tilesY: Int, rowsPerBand: Int,
                      tileRows: Range<Int>? = nil, mIsZero: Bool = false,
                      v: UnsafeMutablePointer<Float>, threads: Int,
                      input: (_ tileRowStart: Int, _ tileRowEnd: Int, _ v: UnsafeMutablePointer<Float>) -> Void,
                      output: (_ m: UnsafeMutablePointer<Float>, _ tiles: Int, _ tileRowStart: Int, _ tileRowEnd: Int) -> Void) {
        let cin = filter.inChannels, cout = filter.outChannels
        let maxTiles = rowsPerBand * tilesX
        let m = v + planes * (cin * maxTiles + planePad)
        if !mIsZero { m.update(repeating: 0, count: planes * (cout * maxTiles + planePad)) }
        let u = filter.u
        let tileRows = tileRows ?? 0..<tilesY
        var ty0 = tileRows.lowerBound
        while ty0 < tileRows.upperBound {
            let ty1 = min(tileRows.upperBound, ty0 + rowsPerBand)
            let tiles = (ty1 - ty0) * tilesX
            input(ty0, ty1, v)
            let vStride = cin * tiles + planePad, mStride = cout * tiles + planePad
            // The products are independent: with one-thread BLAS they run side by side.
            BLAS.forEachIndependent(planes, threads: threads) { k in
                BLAS.sgemm(m: cout, n: tiles, k: cin, a: u + k * cout * cin, lda: cin,
                           b: v + k * vStride, ldb: tiles, beta: 1, c: m + k * mStride, ldc: tiles)
            }
            output(m, tiles, ty0, ty1)
            ty0 = ty1
        }
    }

    static func inputTransform(padded: UnsafePointer<Float>, channels: Int, paddedHeight ph: Int, paddedWidth pw: Int,
                               tileRowStart: Int, tileRowEnd: Int, tilesX: Int, into v: UnsafeMutablePointer<Float>,
                               threads: Int, kernels: any SIMDKernelSet.Type) {
        let tiles = (tileRowEnd - tileRowStart) * tilesX
        let kStride = channels * tiles + planePad
        Parallel.forEachChunk(channels, maxChunks: threads) { _, range in
            for c in range {
                kernels.f2Input(plane: padded + c * ph * pw, paddedWidth: pw, tileRowStart: tileRowStart,
                                tileRowEnd: tileRowEnd, tilesX: tilesX, out: v + c * tiles, kStride: kStride)
            }
        }
    }

    /// Also zeroes the values of M it reads (see `bands`).
    static func outputTransform(m: UnsafeMutablePointer<Float>, channels: Int, tiles: Int, tileRowStart: Int, tileRowEnd: Int,
                                tilesX: Int, height: Int, width: Int, bias: UnsafePointer<Float>?,
                                output: UnsafeMutablePointer<Float>, planeStride: Int, addend: UnsafePointer<Float>?,
                                activation: Activation, sum: Bool, pooled: UnsafeMutablePointer<Float>?, threads: Int,
                                kernels: any SIMDKernelSet.Type, variant: Variant) {
        let kStride = channels * tiles + planePad
        let pooledStride = (height / 2) * (width / 2)
        let leaky = activation.leakySlope != nil, slope = activation.leakySlope ?? 1
        Parallel.forEachChunk(channels, maxChunks: threads) { _, range in
            for o in range {
                let b = bias?[o] ?? 0
                if variant == .f4x4 {
                    kernels.f4Output(mo: m + o * tiles, kStride: kStride, tileRowStart: tileRowStart, tileRowEnd: tileRowEnd,
                                     tilesX: tilesX, height: height, width: width, bias: b,
                                     plane: output + o * planeStride, addend: addend.map { $0 + o * planeStride },
                                     leaky: leaky, slope: slope, sum: sum, pooled: pooled.map { $0 + o * pooledStride })
                } else {
                    kernels.f2Output(mo: m + o * tiles, kStride: kStride, tileRowStart: tileRowStart, tileRowEnd: tileRowEnd,
                                     tilesX: tilesX, height: height, width: width, bias: b,
                                     plane: output + o * planeStride, addend: addend.map { $0 + o * planeStride },
                                     leaky: leaky, slope: slope, sum: sum, pooled: pooled.map { $0 + o * pooledStride })
                }
            }
        }
    }
}

internal import SegSIMDInterface

/// Winograd F(4x4, 3x3): each 4x4 output tile from a 6x6 input patch with 36 multiplications per
/// (input, output) channel pair instead of 144, so the GEMM work is 4x smaller than with im2col
/// (F(2x2, 3x3): 2.25x). Interpolation points 0, ±1, ±2 and ∞:
///
///     Bᵀ = [4  0 -5  0 1 0;  0 -4 -4  1 1 0;  0 4 -4 -1 1 0;  0 -2 -1 2 1 0;  0 2 -1 -2 1 0;  0 4 0 -5 0 1]
///     G  = [1/4 0 0;  -1/6 -1/6 -1/6;  -1/6 1/6 -1/6;  1/24 1/12 1/6;  1/24 -1/12 1/6;  0 0 1]
///     Aᵀ = [1 1 1 1 1 0;  0 1 -1 2 -2 0;  0 1 1 4 4 0;  0 1 -1 8 -8 1]
///
/// The larger coefficients cost accuracy: the result differs from direct convolution by about 10x
/// the rounding of F(2x2, 3x3) (still a few 1e-6 relative on the network's layers).
extension Winograd {
    /// Tiles per band for F(4x4, 3x3): 36 transform planes of 64 tiles, half of F(2x2, 3x3)'s
    /// floats per band. Measured on the v1 network (bench, 2 threads, Intel Xeon family 6 model
    /// 207, alternating builds): 3-10% faster than 128 tiles at N=16 and N=64; 32 tiles no better.
    public static let defaultBandTilesF4 = 64

    /// How F(4x4, 3x3) cuts a plane into bands: whole rows of 4x4 output tiles, about `bandTiles`
    /// tiles (at least one row) per band, the last band possibly shorter.
    struct F4Tiling {
        let tilesX: Int, tilesY: Int, rowsPerBand: Int

        init(height: Int, width: Int, bandTiles: Int) {
            tilesX = (width + 3) / 4
            tilesY = (height + 3) / 4
            rowsPerBand = max(1, min(tilesY, bandTiles / tilesX))
        }

        /// Tiles in a full band.
        var bandTileCount: Int { rowsPerBand * tilesX }

        var bandCount: Int { (tilesY + rowsPerBand - 1) / rowsPerBand }

        /// The tile rows of band `band`.
        func tileRows(_ band: Int) -> Range<Int> {
            (band * rowsPerBand)..<min(tilesY, (band + 1) * rowsPerBand)
        }
    }

    /// V and M of one band (the padded input rows of a band live on the stack, one channel at a time).
    static func scratchCountF4(inChannels: Int, outChannels: Int, height: Int, width: Int, bandTiles: Int) -> Int {
        let tiles = F4Tiling(height: height, width: width, bandTiles: bandTiles).bandTileCount
        return 36 * (inChannels * tiles + planePad) + 36 * (outChannels * tiles + planePad)
    }

    /// u[k][o][c] for k in 0..<36 (k = 6i + j of G g Gᵀ), computed in double precision.
    static func transformFilterF4(weight: UnsafePointer<Float>, rowStride: Int, inChannels: Int, outChannels: Int,
                                  into u: UnsafeMutablePointer<Float>) {
        let plane = outChannels * inChannels
        // Output channels side by side: this runs once per filter when weights are loaded.
        Parallel.forEachChunk(outChannels, maxChunks: Parallel.threadCount) { _, rows in
            // 16 input channels at a time: their 36 values go to 36 planes as runs of 16
            // floats, not as 36 scattered stores per channel.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 36 * 16) { scratch in
                let block = scratch.baseAddress!
                for o in rows {
                    var c0 = 0
                    while c0 < inChannels {
                        let count = min(16, inChannels - c0)
                        // Eight channels at a time in the lanes of a vector (each lane the same
                        // double operations as one channel alone; lanes past `count` hold zeros
                        // and are stored into block slots that are never copied out).
                        var first = 0
                        while first < count {
                            let lanes = min(8, count - first)
                            let g = weight + o * rowStride + (c0 + first) * 9
                            @inline(__always) func tap(_ k: Int) -> SIMD8<Double> {
                                var v = SIMD8<Double>()
                                for l in 0..<lanes { v[l] = Double(g[9 * l + k]) }
                                return v
                            }
                            // Gg (6 x 3), one column of g at a time, then (Gg) Gᵀ one row of Gg
                            // at a time, in double precision.
                            let t0 = applyG(tap(0), tap(3), tap(6))
                            let t1 = applyG(tap(1), tap(4), tap(7))
                            let t2 = applyG(tap(2), tap(5), tap(8))
                            @inline(__always) func store(_ i: Int, _ row: (SIMD8<Double>, SIMD8<Double>, SIMD8<Double>,
                                                                           SIMD8<Double>, SIMD8<Double>, SIMD8<Double>)) {
                                let out = block + i * 6 * 16 + first
                                @inline(__always) func put(_ j: Int, _ v: SIMD8<Double>) {
                                    UnsafeMutableRawPointer(out + 16 * j).storeBytes(of: SIMD8<Float>(v), as: SIMD8<Float>.self)
                                }
                                put(0, row.0)
                                put(1, row.1)
                                put(2, row.2)
                                put(3, row.3)
                                put(4, row.4)
                                put(5, row.5)
                            }
                            store(0, applyG(t0.0, t1.0, t2.0))
                            store(1, applyG(t0.1, t1.1, t2.1))
                            store(2, applyG(t0.2, t1.2, t2.2))
                            store(3, applyG(t0.3, t1.3, t2.3))
                            store(4, applyG(t0.4, t1.4, t2.4))
                            store(5, applyG(t0.5, t1.5, t2.5))
                            first += 8
                        }
                        for k in 0..<36 {
                            (u + k * plane + o * inChannels + c0).update(from: block + k * 16, count: count)
                        }
                        c0 += count
                    }
                }
            }
        }
    }

    /// G (a, b, c)ᵀ for the G above, lane by lane, with the zero coefficients left out (adding a
    /// zero product changes nothing but the sign of a zero).
    @inline(__always)
    static func applyG(_ a: SIMD8<Double>, _ b: SIMD8<Double>, _ c: SIMD8<Double>)
        -> (SIMD8<Double>, SIMD8<Double>, SIMD8<Double>, SIMD8<Double>, SIMD8<Double>, SIMD8<Double>) {
        let s6 = 1.0 / 6, s12 = 1.0 / 12, s24 = 1.0 / 24
        return (0.25 * a,
                -s6 * a + -s6 * b + -s6 * c,
                -s6 * a + s6 * b + -s6 * c,
                s24 * a + s12 * b + s6 * c,
                s24 * a + -s12 * b + s6 * c,
                c)
    }

    static func conv3x3F4(
        rows: InputRows, height: Int, width: Int, filter: Filter,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, addend: UnsafePointer<Float>?,
        activation: Activation, sum: Bool, pooled: UnsafeMutablePointer<Float>?, scratch: UnsafeMutablePointer<Float>,
        bandTiles: Int, tileRows: Range<Int>? = nil, mIsZero: Bool = false, threads: Int,
        kernels: any SIMDKernelSet.Type
    ) {
        let cin = filter.inChannels, cout = filter.outChannels
        let tiling = F4Tiling(height: height, width: width, bandTiles: bandTiles)
        let tilesX = tiling.tilesX
        let tw = tilesX + 1
        let hw = height * width
        bands(planes: 36, filter: filter, tilesX: tilesX, tilesY: tiling.tilesY, rowsPerBand: tiling.rowsPerBand,
              tileRows: tileRows, mIsZero: mIsZero, v: scratch, threads: threads) { ty0, ty1, v in
            let tiles = (ty1 - ty0) * tilesX
            let kStride = cin * tiles + planePad
            // The band's rows of the zero-padded input (one pixel above and left, up to four below
            // and right; padded row p is input row p - 1), split by column phase: column X of the
            // padded image is column X / 4 of phase plane X % 4. A patch's six columns 4t ..< 4t + 6
            // are then column t of phases 0-3 and column t + 1 of phases 0-1, so side-by-side
            // patches are plain vector loads. One channel at a time, transformed while the split
            // rows are in L1: no padded copy of the whole input is written and read back.
            let bandRows = 4 * (ty1 - ty0) + 2
            let phasePlane = bandRows * tw
            Parallel.forEachChunk(cin, maxChunks: threads) { _, range in
                // The phase planes, then one row for an upsampled input row.
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * phasePlane + width) { buffer in
                    guard let phases = buffer.baseAddress else { return }
                    let rowScratch = phases + 4 * phasePlane
                    for c in range {
                        for r in 0..<bandRows {
                            let y = 4 * ty0 + r - 1
                            if y >= 0 && y < height {
                                kernels.f4SplitPaddedRow(input: rows.row(c, y, scratch: rowScratch, kernels: kernels),
                                                         width: width, row: phases + r * tw,
                                                         phasePlane: phasePlane, phaseWidth: tw)
                            } else {
                                for phase in 0..<4 { (phases + phase * phasePlane + r * tw).update(repeating: 0, count: tw) }
                            }
                        }
                        kernels.f4Input(channel: phases, phasePlane: phasePlane, phaseWidth: tw, tileRowStart: 0,
                                        tileRowEnd: ty1 - ty0, tilesX: tilesX, out: v + c * tiles, kStride: kStride)
                    }
                }
            }
        } output: { m, tiles, ty0, ty1 in
            outputTransform(m: m, channels: cout, tiles: tiles, tileRowStart: ty0, tileRowEnd: ty1,
                            tilesX: tilesX, height: height, width: width, bias: bias, output: output,
                            planeStride: hw, addend: addend, activation: activation, sum: sum, pooled: pooled,
                            threads: threads, kernels: kernels, variant: .f4x4)
        }
    }
}

extension Winograd {
    /// A F(4x4, 3x3) convolution computed one band of output rows at a time, each band from an
    /// input holding only the rows that band reads. A caller that makes those rows itself (with
    /// another convolution) can then keep them in cache, instead of writing whole planes and
    /// reading them back, and can run the same band for several inputs in turn (summing their
    /// outputs band by band). The result of every band equals `conv3x3`'s rows bit for bit.
    public struct F4Bands {
        public let filter: Filter
        public let height: Int, width: Int
        let tiling: F4Tiling
        let bandTiles: Int
        let scratch: UnsafeMutablePointer<Float>

        /// Scratch floats for these sizes: one band's transformed input and products.
        public static func scratchCount(inChannels: Int, outChannels: Int, height: Int, width: Int,
                                        bandTiles: Int = defaultBandTilesF4) -> Int {
            scratchCountF4(inChannels: inChannels, outChannels: outChannels, height: height, width: width,
                           bandTiles: bandTiles)
        }

        /// Input rows a band reads at most.
        public static func maxInputRows(height: Int, width: Int, bandTiles: Int = defaultBandTilesF4) -> Int {
            min(height, 4 * F4Tiling(height: height, width: width, bandTiles: bandTiles).rowsPerBand + 2)
        }

        /// Clears the products' part of `scratch`, which every band leaves clear again: the
        /// scratch must not be used for anything else while this value is in use.
        public init(filter: Filter, height: Int, width: Int, scratch: UnsafeMutablePointer<Float>, scratchCapacity: Int,
                    bandTiles: Int = defaultBandTilesF4) {
            precondition(filter.variant == .f4x4, "winograd: F4Bands needs a F(4x4, 3x3) filter")
            precondition(scratchCapacity >= F4Bands.scratchCount(inChannels: filter.inChannels, outChannels: filter.outChannels,
                                                                 height: height, width: width, bandTiles: bandTiles),
                         "winograd: scratch too small")
            (self.filter, self.height, self.width, self.scratch, self.bandTiles) = (filter, height, width, scratch, bandTiles)
            tiling = F4Tiling(height: height, width: width, bandTiles: bandTiles)
            let m = scratch + 36 * (filter.inChannels * tiling.bandTileCount + planePad)
            m.update(repeating: 0, count: 36 * (filter.outChannels * tiling.bandTileCount + planePad))
        }

        /// Bands in a pass.
        public var count: Int { tiling.bandCount }

        private func tileRows(_ band: Int) -> Range<Int> { tiling.tileRows(band) }

        /// The output rows band `band` writes.
        public func outputRows(_ band: Int) -> Range<Int> {
            let t = tileRows(band)
            return (4 * t.lowerBound)..<min(height, 4 * t.upperBound)
        }

        /// The input rows band `band` reads (its output rows and one more on each side, within the image).
        public func inputRows(_ band: Int) -> Range<Int> {
            let t = tileRows(band)
            return max(0, 4 * t.lowerBound - 1)..<min(height, 4 * t.upperBound + 1)
        }

        /// Band `band` of `conv3x3` (same meaning of the arguments) from `input`, [filter.inChannels,
        /// inputRows(band).count, width]: writes rows `outputRows(band)` of `output` (whole planes)
        /// and the matching rows of `pooled`.
        public func run(_ band: Int, input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                        output: UnsafeMutablePointer<Float>, activation: Activation = .none,
                        accumulateActivated: Bool = false, pooled: UnsafeMutablePointer<Float>? = nil,
                        threads: Int = Parallel.threadCount, isa: KernelISA = .active) {
            precondition((0..<count).contains(band), "winograd: band out of range")
            let rows = InputRows(band: input, rows: inputRows(band), height: height, width: width)
            conv3x3F4(rows: rows, height: height, width: width, filter: filter, bias: bias, output: output,
                      addend: nil, activation: activation, sum: accumulateActivated, pooled: pooled, scratch: scratch,
                      bandTiles: bandTiles, tileRows: tileRows(band), mIsZero: true, threads: threads,
                      kernels: isa.kernels)
        }
    }
}

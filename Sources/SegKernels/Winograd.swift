internal import Synchronization

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

    /// Filters transformed once, ahead of inference: u[k][o][c] for k in 0..<16.
    public struct Filter: Sendable {
        public let inChannels: Int
        public let outChannels: Int
        public let variant: Variant
        public let u: [Float]

        /// - weight: OIHW [outChannels, *, 3, 3]; row `o` starts at `weight + o * rowStride`,
        ///   and channel `c` of that row at `+ c * 9` (a slice of a wider weight is allowed).
        public init(weight: UnsafePointer<Float>, rowStride: Int, inChannels: Int, outChannels: Int,
                    variant: Variant = Winograd.defaultVariant) {
            precondition(rowStride >= inChannels * 9)
            self.inChannels = inChannels
            self.outChannels = outChannels
            self.variant = variant
            if variant == .f4x4 {
                u = Winograd.transformFilterF4(weight: weight, rowStride: rowStride, inChannels: inChannels, outChannels: outChannels)
                return
            }
            var u = [Float](repeating: 0, count: 16 * outChannels * inChannels)
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
            self.u = u
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

    /// - input: [filter.inChannels, height, width]; output: [filter.outChannels, height, width],
    ///   overwritten (plus bias) or, with `accumulate`, added to (bias must then be nil).
    public static func conv3x3(
        input: UnsafePointer<Float>, height: Int, width: Int, filter: Filter,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, accumulate: Bool = false,
        activation: Activation = .none,
        scratch: UnsafeMutablePointer<Float>, scratchCapacity: Int, bandTiles: Int? = nil,
        threads: Int = Parallel.threadCount
    ) {
        precondition(!(accumulate && bias != nil), "winograd: bias with accumulate is not supported")
        let cin = filter.inChannels, cout = filter.outChannels
        precondition(scratchCapacity >= scratchCount(inChannels: cin, outChannels: cout, height: height, width: width,
                                                     bandTiles: bandTiles, variant: filter.variant), "winograd: scratch too small")
        if filter.variant == .f4x4 {
            conv3x3F4(input: input, height: height, width: width, filter: filter, bias: bias, output: output,
                      accumulate: accumulate, activation: activation, scratch: scratch,
                      bandTiles: bandTiles ?? defaultBandTilesF4, threads: threads)
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
                    (row + 1).update(from: input + (c * height + y) * width, count: width)
                    (row + 1 + width).update(repeating: 0, count: pw - 1 - width)
                }
                (plane + (height + 1) * pw).update(repeating: 0, count: (ph - height - 1) * pw)
            }
        }
        let hw = height * width
        bands(planes: 16, filter: filter, tilesX: tilesX, tilesY: tilesY, rowsPerBand: rowsPerBand,
              v: scratch + cin * ph * pw, threads: threads) { ty0, ty1, v in
            inputTransform(padded: padded, channels: cin, paddedHeight: ph, paddedWidth: pw,
                           tileRowStart: ty0, tileRowEnd: ty1, tilesX: tilesX, into: v, threads: threads)
        } output: { m, tiles, ty0, ty1 in
            outputTransform(m: m, channels: cout, tiles: tiles, tileRowStart: ty0, tileRowEnd: ty1,
                            tilesX: tilesX, height: height, width: width, bias: bias, output: output,
                            planeStride: hw, accumulate: accumulate, activation: activation, threads: threads)
        }
    }

    /// The band loop of both variants. Per band of tile rows: the input transform into V (at
    /// `v`), the `planes` independent products M_k = U_k V_k, then the output transform. The
    /// products accumulate into M (beta 1), which is all zero here and is zeroed again by the
    /// output transform as it reads each band: OpenBLAS then skips its separate pass that clears
    /// C before every beta-0 product.
    static func bands(planes: Int, filter: Filter, tilesX: Int, tilesY: Int, rowsPerBand: Int,
                      v: UnsafeMutablePointer<Float>, threads: Int,
                      input: (_ tileRowStart: Int, _ tileRowEnd: Int, _ v: UnsafeMutablePointer<Float>) -> Void,
                      output: (_ m: UnsafeMutablePointer<Float>, _ tiles: Int, _ tileRowStart: Int, _ tileRowEnd: Int) -> Void) {
        let cin = filter.inChannels, cout = filter.outChannels
        let maxTiles = rowsPerBand * tilesX
        let m = v + planes * (cin * maxTiles + planePad)
        m.update(repeating: 0, count: planes * (cout * maxTiles + planePad))
        filter.u.withUnsafeBufferPointer { uBuffer in
            let u = uBuffer.baseAddress!
            var ty0 = 0
            while ty0 < tilesY {
                let ty1 = min(tilesY, ty0 + rowsPerBand)
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
    }

    static func inputTransform(padded: UnsafePointer<Float>, channels: Int, paddedHeight ph: Int, paddedWidth pw: Int,
                               tileRowStart: Int, tileRowEnd: Int, tilesX: Int, into v: UnsafeMutablePointer<Float>,
                               threads: Int) {
        let tiles = (tileRowEnd - tileRowStart) * tilesX
        let kStride = channels * tiles + planePad
        Parallel.forEachChunk(channels, maxChunks: threads) { _, range in
        for c in range {
            let plane = padded + c * ph * pw
            var t = 0
            for ty in tileRowStart..<tileRowEnd {
                let r0 = plane + (2 * ty) * pw, r1 = r0 + pw, r2 = r1 + pw, r3 = r2 + pw
                let out = v + c * tiles
                // Eight tiles at a time: a 16-float load covers x = 2tx ..< 2tx + 16, and its
                // even/odd halves are columns 0 and 1 of eight patches (columns 2 and 3 come
                // from the load two floats further on, which ends exactly at the padded row end).
                var tx = 0
                while tx + 8 <= tilesX {
                    inputTransform8(r0 + 2 * tx, r1 + 2 * tx, r2 + 2 * tx, r3 + 2 * tx, out: out + t, kStride: kStride)
                    tx += 8
                    t += 8
                }
                for tx in tx..<tilesX {
                    let x = 2 * tx
                    // Bᵀ d (rows), then (Bᵀ d) B (columns); 16 values per tile.
                    @inline(__always) func column(_ j: Int) -> (Float, Float, Float, Float) {
                        (r0[x + j] - r2[x + j], r1[x + j] + r2[x + j], r2[x + j] - r1[x + j], r1[x + j] - r3[x + j])
                    }
                    let c0 = column(0), c1 = column(1), c2 = column(2), c3 = column(3)
                    let o = out + t
                    o[0 * kStride] = c0.0 - c2.0
                    o[1 * kStride] = c1.0 + c2.0
                    o[2 * kStride] = c2.0 - c1.0
                    o[3 * kStride] = c1.0 - c3.0
                    o[4 * kStride] = c0.1 - c2.1
                    o[5 * kStride] = c1.1 + c2.1
                    o[6 * kStride] = c2.1 - c1.1
                    o[7 * kStride] = c1.1 - c3.1
                    o[8 * kStride] = c0.2 - c2.2
                    o[9 * kStride] = c1.2 + c2.2
                    o[10 * kStride] = c2.2 - c1.2
                    o[11 * kStride] = c1.2 - c3.2
                    o[12 * kStride] = c0.3 - c2.3
                    o[13 * kStride] = c1.3 + c2.3
                    o[14 * kStride] = c2.3 - c1.3
                    o[15 * kStride] = c1.3 - c3.3
                    t += 1
                }
            }
        }
        }
    }

    @inline(__always)
    static func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
    }

    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    @inline(__always)
    static func inputTransform8(_ r0: UnsafePointer<Float>, _ r1: UnsafePointer<Float>, _ r2: UnsafePointer<Float>,
                                _ r3: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, kStride: Int) {
        // d[row][column] for eight patches.
        let a0 = load16(r0), b0 = load16(r0 + 2)
        let a1 = load16(r1), b1 = load16(r1 + 2)
        let a2 = load16(r2), b2 = load16(r2 + 2)
        let a3 = load16(r3), b3 = load16(r3 + 2)
        let d0 = (a0.evenHalf, a0.oddHalf, b0.evenHalf, b0.oddHalf)
        let d1 = (a1.evenHalf, a1.oddHalf, b1.evenHalf, b1.oddHalf)
        let d2 = (a2.evenHalf, a2.oddHalf, b2.evenHalf, b2.oddHalf)
        let d3 = (a3.evenHalf, a3.oddHalf, b3.evenHalf, b3.oddHalf)
        // Bᵀ d: rows.
        let t0 = (d0.0 - d2.0, d0.1 - d2.1, d0.2 - d2.2, d0.3 - d2.3)
        let t1 = (d1.0 + d2.0, d1.1 + d2.1, d1.2 + d2.2, d1.3 + d2.3)
        let t2 = (d2.0 - d1.0, d2.1 - d1.1, d2.2 - d1.2, d2.3 - d1.3)
        let t3 = (d1.0 - d3.0, d1.1 - d3.1, d1.2 - d3.2, d1.3 - d3.3)
        // (Bᵀ d) B: columns.
        @inline(__always) func row(_ r: (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>), _ i: Int) {
            store8(r.0 - r.2, out + (4 * i + 0) * kStride)
            store8(r.1 + r.2, out + (4 * i + 1) * kStride)
            store8(r.2 - r.1, out + (4 * i + 2) * kStride)
            store8(r.1 - r.3, out + (4 * i + 3) * kStride)
        }
        row(t0, 0)
        row(t1, 1)
        row(t2, 2)
        row(t3, 3)
    }

    /// Output transform of eight full tiles (2x2 outputs each, all inside the image) whose
    /// 16 transformed values start at `mo` (planes `kStride` apart); writes rows `p0` and `p0 + width`.
    @inline(__always)
    static func outputTransform8(_ mo: UnsafeMutablePointer<Float>, kStride: Int, bias: Float, p0: UnsafeMutablePointer<Float>,
                                 width: Int, accumulate: Bool, leaky: Bool, slope: Float) {
        @inline(__always) func at(_ k: Int) -> SIMD8<Float> { load8(mo + k * kStride) }
        let m0 = at(0), m1 = at(1), m2 = at(2), m3 = at(3)
        let m4 = at(4), m5 = at(5), m6 = at(6), m7 = at(7)
        let m8 = at(8), m9 = at(9), m10 = at(10), m11 = at(11)
        let m12 = at(12), m13 = at(13), m14 = at(14), m15 = at(15)
        for k in 0..<16 { store8(SIMD8<Float>(), mo + k * kStride) }
        let s00 = m0 + m4 + m8, s01 = m1 + m5 + m9, s02 = m2 + m6 + m10, s03 = m3 + m7 + m11
        let s10 = m4 - m8 - m12, s11 = m5 - m9 - m13, s12 = m6 - m10 - m14, s13 = m7 - m11 - m15
        let b = SIMD8<Float>(repeating: bias)
        var top = SIMD16<Float>()
        top.evenHalf = s00 + s01 + s02 + b
        top.oddHalf = s01 - s02 - s03 + b
        var bottom = SIMD16<Float>()
        bottom.evenHalf = s10 + s11 + s12 + b
        bottom.oddHalf = s11 - s12 - s13 + b
        let p1 = p0 + width
        if accumulate {
            top += load16(p0)
            bottom += load16(p1)
        }
        if leaky {
            let k = SIMD16<Float>(repeating: slope)
            top.replace(with: top * k, where: top .< 0)
            bottom.replace(with: bottom * k, where: bottom .< 0)
        }
        UnsafeMutableRawPointer(p0).storeBytes(of: top, as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(p1).storeBytes(of: bottom, as: SIMD16<Float>.self)
    }

    /// Also zeroes the values of M it reads (see `conv3x3`).
    static func outputTransform(m: UnsafeMutablePointer<Float>, channels: Int, tiles: Int, tileRowStart: Int, tileRowEnd: Int,
                                tilesX: Int, height: Int, width: Int, bias: UnsafePointer<Float>?,
                                output: UnsafeMutablePointer<Float>, planeStride: Int, accumulate: Bool,
                                activation: Activation, threads: Int) {
        let kStride = channels * tiles + planePad
        let applyLeaky = activation.leakySlope != nil, slope = activation.leakySlope ?? 1
        Parallel.forEachChunk(channels, maxChunks: threads) { _, range in
        for o in range {
            let b = bias?[o] ?? 0
            let mo = m + o * tiles
            let plane = output + o * planeStride
            var t = 0
            for ty in tileRowStart..<tileRowEnd {
                let y = 2 * ty
                var tx = 0
                if y + 1 < height {
                    // Eight full tiles at a time (16 output columns of two rows).
                    while tx + 8 <= tilesX && 2 * tx + 16 <= width {
                        outputTransform8(mo + t, kStride: kStride, bias: b, p0: plane + y * width + 2 * tx,
                                         width: width, accumulate: accumulate, leaky: applyLeaky, slope: slope)
                        tx += 8
                        t += 8
                    }
                }
                for tx in tx..<tilesX {
                    @inline(__always) func at(_ k: Int) -> Float { mo[k * kStride + t] }
                    // Aᵀ M: rows 0..3 -> 2 rows.
                    let s00 = at(0) + at(4) + at(8), s01 = at(1) + at(5) + at(9)
                    let s02 = at(2) + at(6) + at(10), s03 = at(3) + at(7) + at(11)
                    let s10 = at(4) - at(8) - at(12), s11 = at(5) - at(9) - at(13)
                    let s12 = at(6) - at(10) - at(14), s13 = at(7) - at(11) - at(15)
                    for k in 0..<16 { mo[k * kStride + t] = 0 }
                    // (Aᵀ M) A: columns.
                    var y00 = s00 + s01 + s02 + b, y01 = s01 - s02 - s03 + b
                    var y10 = s10 + s11 + s12 + b, y11 = s11 - s12 - s13 + b
                    let x = 2 * tx
                    let p0 = plane + y * width + x
                    let hasRight = x + 1 < width, hasBelow = y + 1 < height
                    if accumulate {
                        y00 += p0[0]
                        if hasRight { y01 += p0[1] }
                        if hasBelow { y10 += p0[width] }
                        if hasRight && hasBelow { y11 += p0[width + 1] }
                    }
                    if applyLeaky {
                        if y00 < 0 { y00 *= slope }
                        if y01 < 0 { y01 *= slope }
                        if y10 < 0 { y10 *= slope }
                        if y11 < 0 { y11 *= slope }
                    }
                    p0[0] = y00
                    if hasRight { p0[1] = y01 }
                    if hasBelow {
                        p0[width] = y10
                        if hasRight { p0[width + 1] = y11 }
                    }
                    t += 1
                }
            }
        }
        }
    }
}

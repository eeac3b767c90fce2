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
    /// Tiles per band for F(4x4, 3x3): 36 transform planes of 128 tiles hold about as many floats
    /// as F(2x2, 3x3)'s 16 planes of 256 tiles.
    public static let defaultBandTilesF4 = 128

    static func scratchCountF4(inChannels: Int, outChannels: Int, height: Int, width: Int, bandTiles: Int) -> Int {
        let tilesX = (width + 3) / 4, tilesY = (height + 3) / 4
        let rows = max(1, min(tilesY, bandTiles / tilesX))
        let padded = inChannels * 4 * (4 * tilesY + 2) * (tilesX + 1)
        return padded + 36 * (inChannels * rows * tilesX + planePad) + 36 * (outChannels * rows * tilesX + planePad)
    }

    /// u[k][o][c] for k in 0..<36 (k = 6i + j of G g Gᵀ), computed in double precision.
    static func transformFilterF4(weight: UnsafePointer<Float>, rowStride: Int, inChannels: Int, outChannels: Int) -> [Float] {
        let g6: [(Double, Double, Double)] = [
            (1.0 / 4, 0, 0), (-1.0 / 6, -1.0 / 6, -1.0 / 6), (-1.0 / 6, 1.0 / 6, -1.0 / 6),
            (1.0 / 24, 1.0 / 12, 1.0 / 6), (1.0 / 24, -1.0 / 12, 1.0 / 6), (0, 0, 1),
        ]
        let plane = outChannels * inChannels
        // Every element is written below: no zeroing first.
        return [Float](unsafeUninitializedCapacity: 36 * plane) { buffer, initialized in
            initialized = 36 * plane
            let u = buffer.baseAddress!
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
                            for dc in 0..<count {
                                let g = weight + o * rowStride + (c0 + dc) * 9
                                // Gg: 6 x 3, then (Gg) Gᵀ: 6 x 6, in double precision.
                                var gg: (Double, Double, Double, Double, Double, Double, Double, Double, Double,
                                         Double, Double, Double, Double, Double, Double, Double, Double, Double) =
                                    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
                                withUnsafeMutableBytes(of: &gg) { raw in
                                    let gg = raw.baseAddress!.assumingMemoryBound(to: Double.self)
                                    for i in 0..<6 {
                                        for j in 0..<3 {
                                            gg[3 * i + j] = g6[i].0 * Double(g[j]) + g6[i].1 * Double(g[3 + j]) + g6[i].2 * Double(g[6 + j])
                                        }
                                    }
                                    for i in 0..<6 {
                                        for j in 0..<6 {
                                            let value = gg[3 * i] * g6[j].0 + gg[3 * i + 1] * g6[j].1 + gg[3 * i + 2] * g6[j].2
                                            block[(i * 6 + j) * 16 + dc] = Float(value)
                                        }
                                    }
                                }
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
    }

    static func conv3x3F4(
        input: UnsafePointer<Float>, height: Int, width: Int, filter: Filter,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, accumulate: Bool,
        activation: Activation, scratch: UnsafeMutablePointer<Float>, bandTiles: Int, threads: Int
    ) {
        let cin = filter.inChannels, cout = filter.outChannels
        let tilesX = (width + 3) / 4, tilesY = (height + 3) / 4
        let rowsPerBand = max(1, min(tilesY, bandTiles / tilesX))
        // The zero-padded input (one pixel above and left, up to four below and right), split by
        // column phase: column X of the padded image is column X / 4 of phase plane X % 4. A
        // patch's six columns 4t ..< 4t + 6 are then column t of phases 0-3 and column t + 1 of
        // phases 0-1, so eight side-by-side patches are plain 8-float loads.
        let tw = tilesX + 1, ph = 4 * tilesY + 2
        let phasePlane = ph * tw
        let padded = scratch
        Parallel.forEachChunk(cin, maxChunks: threads) { _, channels in
            // One padded row at a time: zero, the input row, zeros; then split by phase.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * tw + 16) { buffer in
                let line = buffer.baseAddress!
                line.update(repeating: 0, count: 4 * tw + 16)
                for c in channels {
                    let phases = padded + c * 4 * phasePlane
                    for phase in 0..<4 {
                        let plane = phases + phase * phasePlane
                        plane.update(repeating: 0, count: tw)
                        (plane + (height + 1) * tw).update(repeating: 0, count: (ph - height - 1) * tw)
                    }
                    for y in 0..<height {
                        (line + 1).update(from: input + (c * height + y) * width, count: width)
                        let row = phases + (y + 1) * tw
                        var t = 0
                        while t + 4 <= tw {
                            let a = load16(line + 4 * t)
                            store4(a.evenHalf.evenHalf, row + t)
                            store4(a.oddHalf.evenHalf, row + phasePlane + t)
                            store4(a.evenHalf.oddHalf, row + 2 * phasePlane + t)
                            store4(a.oddHalf.oddHalf, row + 3 * phasePlane + t)
                            t += 4
                        }
                        while t < tw {
                            for phase in 0..<4 { row[phase * phasePlane + t] = line[4 * t + phase] }
                            t += 1
                        }
                    }
                }
            }
        }
        let hw = height * width
        bands(planes: 36, filter: filter, tilesX: tilesX, tilesY: tilesY, rowsPerBand: rowsPerBand,
              v: scratch + cin * 4 * phasePlane, threads: threads) { ty0, ty1, v in
            inputTransformF4(phases: padded, channels: cin, phasePlane: phasePlane, phaseWidth: tw,
                             tileRowStart: ty0, tileRowEnd: ty1, tilesX: tilesX, into: v, threads: threads)
        } output: { m, tiles, ty0, ty1 in
            outputTransformF4(m: m, channels: cout, tiles: tiles, tileRowStart: ty0, tileRowEnd: ty1,
                              tilesX: tilesX, height: height, width: width, bias: bias, output: output,
                              planeStride: hw, accumulate: accumulate, activation: activation, threads: threads)
        }
    }

    // MARK: Transforms, written once for scalars and vectors of tiles

    /// Bᵀ applied to six values (rows or columns of a patch).
    @inline(__always)
    static func bt<V: WinogradLanes>(_ d0: V, _ d1: V, _ d2: V, _ d3: V, _ d4: V, _ d5: V) -> (V, V, V, V, V, V) {
        let a = d4 - d2, b = d1 - d3
        return (4 * d0 - 5 * d2 + d4,
                d3 + d4 - 4 * (d1 + d2),
                d4 - d3 + 4 * (d1 - d2),
                a - 2 * b,
                a + 2 * b,
                4 * d1 - 5 * d3 + d5)
    }

    /// Aᵀ applied to six values.
    @inline(__always)
    static func at<V: WinogradLanes>(_ m0: V, _ m1: V, _ m2: V, _ m3: V, _ m4: V, _ m5: V) -> (V, V, V, V) {
        let p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4
        return (m0 + p12 + p34, d12 + 2 * d34, p12 + 4 * p34, d12 + 8 * d34 + m5)
    }

    static func inputTransformF4(phases: UnsafePointer<Float>, channels: Int, phasePlane: Int, phaseWidth tw: Int,
                                 tileRowStart: Int, tileRowEnd: Int, tilesX: Int, into v: UnsafeMutablePointer<Float>,
                                 threads: Int) {
        let tiles = (tileRowEnd - tileRowStart) * tilesX
        let kStride = channels * tiles + planePad
        Parallel.forEachChunk(channels, maxChunks: threads) { _, range in
            for c in range {
                let channel = phases + c * 4 * phasePlane
                let out = v + c * tiles
                var t = 0
                for ty in tileRowStart..<tileRowEnd {
                    let top = channel + 4 * ty * tw
                    var tx = 0
                    while tx + 8 <= tilesX {
                        inputTransformF4x8(top + tx, phasePlane: phasePlane, rowStride: tw, out: out + t, kStride: kStride)
                        tx += 8
                        t += 8
                    }
                    while tx < tilesX {
                        inputTransformF4x1(top + tx, phasePlane: phasePlane, rowStride: tw, out: out + t, kStride: kStride)
                        tx += 1
                        t += 1
                    }
                }
            }
        }
    }

    /// Eight patches side by side, from column `p` of the phase planes (see `conv3x3F4`).
    @inline(__always)
    static func inputTransformF4x8(_ p: UnsafePointer<Float>, phasePlane: Int, rowStride: Int,
                                   out: UnsafeMutablePointer<Float>, kStride: Int) {
        // d B for each of the six rows: six vectors of eight patches each.
        @inline(__always) func row(_ r: Int) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
            let q = p + r * rowStride
            return bt(load8(q), load8(q + phasePlane), load8(q + 2 * phasePlane), load8(q + 3 * phasePlane),
                      load8(q + 1), load8(q + phasePlane + 1))
        }
        let r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3), r4 = row(4), r5 = row(5)
        // Bᵀ (d B): column j of the six rows gives v[i][j].
        @inline(__always) func column(_ j: Int, _ a: SIMD8<Float>, _ b: SIMD8<Float>, _ c: SIMD8<Float>,
                                      _ d: SIMD8<Float>, _ e: SIMD8<Float>, _ f: SIMD8<Float>) {
            let r = bt(a, b, c, d, e, f)
            store8(r.0, out + j * kStride)
            store8(r.1, out + (6 + j) * kStride)
            store8(r.2, out + (12 + j) * kStride)
            store8(r.3, out + (18 + j) * kStride)
            store8(r.4, out + (24 + j) * kStride)
            store8(r.5, out + (30 + j) * kStride)
        }
        column(0, r0.0, r1.0, r2.0, r3.0, r4.0, r5.0)
        column(1, r0.1, r1.1, r2.1, r3.1, r4.1, r5.1)
        column(2, r0.2, r1.2, r2.2, r3.2, r4.2, r5.2)
        column(3, r0.3, r1.3, r2.3, r3.3, r4.3, r5.3)
        column(4, r0.4, r1.4, r2.4, r3.4, r4.4, r5.4)
        column(5, r0.5, r1.5, r2.5, r3.5, r4.5, r5.5)
    }

    @inline(__always)
    static func inputTransformF4x1(_ p: UnsafePointer<Float>, phasePlane: Int, rowStride: Int,
                                   out: UnsafeMutablePointer<Float>, kStride: Int) {
        // Rows as vectors of the patch's six columns (lanes 6 and 7 unused), times B.
        @inline(__always) func row(_ r: Int) -> SIMD8<Float> {
            let q = p + r * rowStride
            let d = bt(q[0], q[phasePlane], q[2 * phasePlane], q[3 * phasePlane], q[1], q[phasePlane + 1])
            return SIMD8(d.0, d.1, d.2, d.3, d.4, d.5, 0, 0)
        }
        let v = bt(row(0), row(1), row(2), row(3), row(4), row(5))
        @inline(__always) func store(_ i: Int, _ r: SIMD8<Float>) {
            for j in 0..<6 { out[(6 * i + j) * kStride] = r[j] }
        }
        store(0, v.0)
        store(1, v.1)
        store(2, v.2)
        store(3, v.3)
        store(4, v.4)
        store(5, v.5)
    }

    /// Also zeroes the values of M it reads (see `conv3x3F4`).
    static func outputTransformF4(m: UnsafeMutablePointer<Float>, channels: Int, tiles: Int, tileRowStart: Int, tileRowEnd: Int,
                                  tilesX: Int, height: Int, width: Int, bias: UnsafePointer<Float>?,
                                  output: UnsafeMutablePointer<Float>, planeStride: Int, accumulate: Bool,
                                  activation: Activation, threads: Int) {
        let kStride = channels * tiles + planePad
        let leaky = activation.leakySlope != nil, slope = activation.leakySlope ?? 1
        Parallel.forEachChunk(channels, maxChunks: threads) { _, range in
            for o in range {
                let b = bias?[o] ?? 0
                let mo = m + o * tiles
                let plane = output + o * planeStride
                var t = 0
                for ty in tileRowStart..<tileRowEnd {
                    let y = 4 * ty
                    let rows = min(4, height - y)
                    var tx = 0
                    while tx + 8 <= tilesX && 4 * tx + 32 <= width {
                        outputTransformF4x8(mo + t, kStride: kStride, bias: b, p: plane + y * width + 4 * tx, width: width,
                                            rows: rows, accumulate: accumulate, leaky: leaky, slope: slope)
                        tx += 8
                        t += 8
                    }
                    while tx < tilesX {
                        outputTransformF4x1(mo + t, kStride: kStride, bias: b, p: plane + y * width + 4 * tx, width: width,
                                            rows: rows, columns: min(4, width - 4 * tx), accumulate: accumulate,
                                            leaky: leaky, slope: slope)
                        tx += 1
                        t += 1
                    }
                }
            }
        }
    }

    /// Eight tiles whose 36 transformed values start at `mo` (planes `kStride` apart); writes
    /// `rows` rows of 32 outputs from `p`.
    @inline(__always)
    static func outputTransformF4x8(_ mo: UnsafeMutablePointer<Float>, kStride: Int, bias: Float, p: UnsafeMutablePointer<Float>,
                                    width: Int, rows: Int, accumulate: Bool, leaky: Bool, slope: Float) {
        @inline(__always) func column(_ j: Int) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
            @inline(__always) func at(_ i: Int) -> SIMD8<Float> { load8(mo + (6 * i + j) * kStride) }
            return Self.at(at(0), at(1), at(2), at(3), at(4), at(5))
        }
        // Aᵀ M: s[r][j] for the four output rows.
        let s0 = column(0), s1 = column(1), s2 = column(2), s3 = column(3), s4 = column(4), s5 = column(5)
        for k in 0..<36 { store8(SIMD8<Float>(), mo + k * kStride) }
        let b = SIMD8<Float>(repeating: bias)
        @inline(__always) func write(_ r: Int, _ m0: SIMD8<Float>, _ m1: SIMD8<Float>, _ m2: SIMD8<Float>,
                                     _ m3: SIMD8<Float>, _ m4: SIMD8<Float>, _ m5: SIMD8<Float>) {
            // (Aᵀ M) A: the row's four outputs of each tile, interleaved into 32 consecutive floats.
            let y = Self.at(m0, m1, m2, m3, m4, m5)
            let y0 = y.0 + b, y1 = y.1 + b, y2 = y.2 + b, y3 = y.3 + b
            let q = p + r * width
            @inline(__always) func put(_ a: SIMD4<Float>, _ b: SIMD4<Float>, _ c: SIMD4<Float>, _ d: SIMD4<Float>,
                                       _ q: UnsafeMutablePointer<Float>) {
                var ac = SIMD8<Float>(), bd = SIMD8<Float>()
                ac.evenHalf = a
                ac.oddHalf = c
                bd.evenHalf = b
                bd.oddHalf = d
                var row = SIMD16<Float>()
                row.evenHalf = ac
                row.oddHalf = bd
                if accumulate { row += load16(q) }
                if leaky { row.replace(with: row * SIMD16(repeating: slope), where: row .< 0) }
                UnsafeMutableRawPointer(q).storeBytes(of: row, as: SIMD16<Float>.self)
            }
            put(y0.lowHalf, y1.lowHalf, y2.lowHalf, y3.lowHalf, q)
            put(y0.highHalf, y1.highHalf, y2.highHalf, y3.highHalf, q + 16)
        }
        write(0, s0.0, s1.0, s2.0, s3.0, s4.0, s5.0)
        if rows > 1 { write(1, s0.1, s1.1, s2.1, s3.1, s4.1, s5.1) }
        if rows > 2 { write(2, s0.2, s1.2, s2.2, s3.2, s4.2, s5.2) }
        if rows > 3 { write(3, s0.3, s1.3, s2.3, s3.3, s4.3, s5.3) }
    }

    @inline(__always)
    static func outputTransformF4x1(_ mo: UnsafeMutablePointer<Float>, kStride: Int, bias: Float, p: UnsafeMutablePointer<Float>,
                                    width: Int, rows: Int, columns: Int, accumulate: Bool, leaky: Bool, slope: Float) {
        // Rows of M as vectors of its six columns (lanes 6 and 7 unused).
        @inline(__always) func row(_ i: Int) -> SIMD8<Float> {
            let r = mo + 6 * i * kStride
            return SIMD8(r[0], r[kStride], r[2 * kStride], r[3 * kStride], r[4 * kStride], r[5 * kStride], 0, 0)
        }
        let s = at(row(0), row(1), row(2), row(3), row(4), row(5))
        for k in 0..<36 { mo[k * kStride] = 0 }
        for r in 0..<rows {
            let v: SIMD8<Float> = r == 0 ? s.0 : r == 1 ? s.1 : r == 2 ? s.2 : s.3
            let y = at(v[0], v[1], v[2], v[3], v[4], v[5])
            let values = SIMD4<Float>(y.0, y.1, y.2, y.3)
            let q = p + r * width
            for c in 0..<columns {
                var value = values[c] + bias
                if accumulate { value += q[c] }
                if leaky && value < 0 { value *= slope }
                q[c] = value
            }
        }
    }
}

extension Winograd {
    @inline(__always)
    static func store4(_ v: SIMD4<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Float>.self)
    }
}

/// What the transforms need of a value: one float (edge tiles) or a vector of tiles.
protocol WinogradLanes {
    static func + (lhs: Self, rhs: Self) -> Self
    static func - (lhs: Self, rhs: Self) -> Self
    static func * (lhs: Float, rhs: Self) -> Self
}

extension Float: WinogradLanes {}
extension SIMD8: WinogradLanes where Scalar == Float {}

public import SegSIMDInterface

// One source, three builds: Sources/SegSIMDAVX2 and Sources/SegSIMDAVX512 hold symbolic links to
// this file, and Package.swift compiles each folder for its instruction set (-target-cpu). Code
// here must therefore be the same for all three; the compiler turns the vector types into SSE2,
// AVX2 or AVX-512 instructions.

/// The vector kernels of this build (see `SIMDKernelSet`).
public enum Kernels: SIMDKernelSet {
    #if SEGSIMD_AVX512
    public static let instructionSet = "AVX-512"
    #elseif SEGSIMD_AVX2
    public static let instructionSet = "AVX2+FMA"
    #else
    public static let instructionSet = "x86-64"
    #endif

    // MARK: F(2x2, 3x3)

    public static func f2Input(plane: UnsafePointer<Float>, paddedWidth pw: Int, tileRowStart: Int, tileRowEnd: Int,
                               tilesX: Int, out: UnsafeMutablePointer<Float>, kStride: Int) {
        var t = 0
        for ty in tileRowStart..<tileRowEnd {
            let r0 = plane + (2 * ty) * pw, r1 = r0 + pw, r2 = r1 + pw, r3 = r2 + pw
            // Eight tiles at a time: a 16-float load covers x = 2tx ..< 2tx + 16, and its
            // even/odd halves are columns 0 and 1 of eight patches (columns 2 and 3 come
            // from the load two floats further on, which ends exactly at the padded row end).
            var tx = 0
            while tx + 8 <= tilesX {
                f2Input8(r0 + 2 * tx, r1 + 2 * tx, r2 + 2 * tx, r3 + 2 * tx, out: out + t, kStride: kStride)
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

    @inline(__always)
    static func f2Input8(_ r0: UnsafePointer<Float>, _ r1: UnsafePointer<Float>, _ r2: UnsafePointer<Float>,
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

    public static func f2Output(mo: UnsafeMutablePointer<Float>, kStride: Int, tileRowStart: Int, tileRowEnd: Int,
                                tilesX: Int, height: Int, width: Int, bias b: Float, plane: UnsafeMutablePointer<Float>,
                                addend: UnsafePointer<Float>?, leaky: Bool, slope: Float, sum: Bool,
                                pooled: UnsafeMutablePointer<Float>?) {
        // Each 2x2 tile is one pooling window (tiles start at even coordinates).
        let pooledWidth = width / 2
        var t = 0
        for ty in tileRowStart..<tileRowEnd {
            let y = 2 * ty
            var tx = 0
            if y + 1 < height {
                // Eight full tiles at a time (16 output columns of two rows).
                while tx + 8 <= tilesX && 2 * tx + 16 <= width {
                    f2Output8(mo + t, kStride: kStride, bias: b, p0: plane + y * width + 2 * tx,
                              a0: addend.map { $0 + y * width + 2 * tx }, width: width, leaky: leaky, slope: slope,
                              sum: sum, pooled: pooled.map { $0 + ty * pooledWidth + tx })
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
                if let addend {
                    let a0 = addend + y * width + x
                    y00 += a0[0]
                    if hasRight { y01 += a0[1] }
                    if hasBelow { y10 += a0[width] }
                    if hasRight && hasBelow { y11 += a0[width + 1] }
                }
                if leaky {
                    if y00 < 0 { y00 *= slope }
                    if y01 < 0 { y01 *= slope }
                    if y10 < 0 { y10 *= slope }
                    if y11 < 0 { y11 *= slope }
                }
                if let pooled, hasRight && hasBelow {
                    pooled[ty * pooledWidth + tx] = max(max(y00, y01), max(y10, y11))
                }
                if sum {
                    y00 += p0[0]
                    if hasRight { y01 += p0[1] }
                    if hasBelow { y10 += p0[width] }
                    if hasRight && hasBelow { y11 += p0[width + 1] }
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

    /// Eight full tiles (2x2 outputs each, all inside the image) whose 16 transformed values
    /// start at `mo` (planes `kStride` apart); writes rows `p0` and `p0 + width`, adding rows
    /// `a0` and `a0 + width` when `a0` is given (the epilogue `sum`, `pooled` as in `f2Output`,
    /// `pooled` pointing at the eight tiles' pooled values).
    @inline(__always)
    static func f2Output8(_ mo: UnsafeMutablePointer<Float>, kStride: Int, bias: Float, p0: UnsafeMutablePointer<Float>,
                          a0: UnsafePointer<Float>?, width: Int, leaky: Bool, slope: Float, sum: Bool,
                          pooled: UnsafeMutablePointer<Float>?) {
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
        if let a0 {
            top += load16(a0)
            bottom += load16(a0 + width)
        }
        if leaky {
            let k = SIMD16<Float>(repeating: slope)
            top.replace(with: top * k, where: top .< 0)
            bottom.replace(with: bottom * k, where: bottom .< 0)
        }
        if let pooled { store8(poolRows(top, bottom), pooled) }
        emit16(top, p0, sum: sum)
        emit16(bottom, p1, sum: sum)
    }

    /// The 2x2 max-pooling of two rows of 16 values: 8 values, each `max(max(a0, a1), max(b0, b1))`
    /// with `Swift.max`'s choice between equal values, as `maxPool2x2` computes it.
    @inline(__always)
    static func poolRows(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD8<Float> {
        vmax(vmax(a.evenHalf, a.oddHalf), vmax(b.evenHalf, b.oddHalf))
    }

    /// `Swift.max` lane by lane: `y >= x ? y : x`.
    @inline(__always)
    static func vmax(_ x: SIMD8<Float>, _ y: SIMD8<Float>) -> SIMD8<Float> { x.replacing(with: y, where: y .>= x) }

    /// Stores `v` at `p`, or adds it to what `p` holds with `sum`.
    @inline(__always)
    static func emit16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>, sum: Bool) {
        store16(sum ? load16(p) + v : v, p)
    }

    // MARK: F(4x4, 3x3)

    public static func f4SplitPaddedRow(input: UnsafePointer<Float>, width: Int, row: UnsafeMutablePointer<Float>,
                                        phasePlane: Int, phaseWidth tw: Int) {
        @inline(__always) func column(_ t: Int) {
            for phase in 0..<4 {
                let x = 4 * t + phase
                row[phase * phasePlane + t] = x >= 1 && x <= width ? input[x - 1] : 0
            }
        }
        // Sixteen input columns 4t ..< 4t + 16 at a time (aligned loads when the row is): input
        // column x is padded column x + 1, so x % 4 = 0, 1, 2 go to phases 1, 2, 3 of column x / 4
        // and x % 4 = 3 to phase 0 of the next column.
        row[0] = 0
        var t = 0
        while t + 4 <= tw && 4 * t + 16 <= width {
            let a = load16(input + 4 * t)
            store4(a.evenHalf.evenHalf, row + phasePlane + t)
            store4(a.oddHalf.evenHalf, row + 2 * phasePlane + t)
            store4(a.evenHalf.oddHalf, row + 3 * phasePlane + t)
            store4(a.oddHalf.oddHalf, row + t + 1)
            t += 4
        }
        while t < tw {
            column(t)
            t += 1
        }
    }

    /// Bᵀ of F(4x4, 3x3) applied to six values (rows or columns of a patch).
    @inline(__always)
    static func bt<V: TransformLanes>(_ d0: V, _ d1: V, _ d2: V, _ d3: V, _ d4: V, _ d5: V) -> (V, V, V, V, V, V) {
        let a = d4 - d2, b = d1 - d3
        return (4 * d0 - 5 * d2 + d4,
                d3 + d4 - 4 * (d1 + d2),
                d4 - d3 + 4 * (d1 - d2),
                a - 2 * b,
                a + 2 * b,
                4 * d1 - 5 * d3 + d5)
    }

    /// Aᵀ of F(4x4, 3x3) applied to six values.
    @inline(__always)
    static func at<V: TransformLanes>(_ m0: V, _ m1: V, _ m2: V, _ m3: V, _ m4: V, _ m5: V) -> (V, V, V, V) {
        let p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4
        return (m0 + p12 + p34, d12 + 2 * d34, p12 + 4 * p34, d12 + 8 * d34 + m5)
    }

    public static func f4Input(channel: UnsafePointer<Float>, phasePlane: Int, phaseWidth tw: Int, tileRowStart: Int,
                               tileRowEnd: Int, tilesX: Int, out: UnsafeMutablePointer<Float>, kStride: Int) {
        var t = 0
        for ty in tileRowStart..<tileRowEnd {
            let top = channel + 4 * ty * tw
            var tx = 0
            #if SEGSIMD_AVX512
            // 512-bit vectors: sixteen patches at a time.
            while tx + 16 <= tilesX {
                f4InputLanes(SIMD16<Float>.self, top + tx, phasePlane: phasePlane, rowStride: tw, out: out + t, kStride: kStride)
                tx += 16
                t += 16
            }
            #endif
            while tx + 8 <= tilesX {
                f4InputLanes(SIMD8<Float>.self, top + tx, phasePlane: phasePlane, rowStride: tw, out: out + t, kStride: kStride)
                tx += 8
                t += 8
            }
            while tx < tilesX {
                f4Input1(top + tx, phasePlane: phasePlane, rowStride: tw, out: out + t, kStride: kStride)
                tx += 1
                t += 1
            }
        }
    }

    /// `V.scalarCount` patches side by side (8 or, in the AVX-512 build, 16), from column `p` of
    /// the phase planes: a patch's six columns 4t ..< 4t + 6 are column t of phases 0-3 and
    /// column t + 1 of phases 0-1.
    @inline(__always)
    static func f4InputLanes<V: TransformVector>(_: V.Type, _ p: UnsafePointer<Float>, phasePlane: Int, rowStride: Int,
                                                 out: UnsafeMutablePointer<Float>, kStride: Int) {
        @inline(__always) func load(_ q: UnsafePointer<Float>) -> V { V.load(q) }
        @inline(__always) func store(_ v: V, _ q: UnsafeMutablePointer<Float>) { v.store(q) }
        // d B for each of the six rows: six vectors of patches each.
        @inline(__always) func row(_ r: Int) -> (V, V, V, V, V, V) {
            let q = p + r * rowStride
            return bt(load(q), load(q + phasePlane), load(q + 2 * phasePlane), load(q + 3 * phasePlane),
                      load(q + 1), load(q + phasePlane + 1))
        }
        let r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3), r4 = row(4), r5 = row(5)
        // Bᵀ (d B): column j of the six rows gives v[i][j].
        @inline(__always) func column(_ j: Int, _ a: V, _ b: V, _ c: V, _ d: V, _ e: V, _ f: V) {
            let r = bt(a, b, c, d, e, f)
            store(r.0, out + j * kStride)
            store(r.1, out + (6 + j) * kStride)
            store(r.2, out + (12 + j) * kStride)
            store(r.3, out + (18 + j) * kStride)
            store(r.4, out + (24 + j) * kStride)
            store(r.5, out + (30 + j) * kStride)
        }
        column(0, r0.0, r1.0, r2.0, r3.0, r4.0, r5.0)
        column(1, r0.1, r1.1, r2.1, r3.1, r4.1, r5.1)
        column(2, r0.2, r1.2, r2.2, r3.2, r4.2, r5.2)
        column(3, r0.3, r1.3, r2.3, r3.3, r4.3, r5.3)
        column(4, r0.4, r1.4, r2.4, r3.4, r4.4, r5.4)
        column(5, r0.5, r1.5, r2.5, r3.5, r4.5, r5.5)
    }

    @inline(__always)
    static func f4Input1(_ p: UnsafePointer<Float>, phasePlane: Int, rowStride: Int,
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

    public static func f4Output(mo: UnsafeMutablePointer<Float>, kStride: Int, tileRowStart: Int, tileRowEnd: Int,
                                tilesX: Int, height: Int, width: Int, bias: Float, plane: UnsafeMutablePointer<Float>,
                                addend: UnsafePointer<Float>?, leaky: Bool, slope: Float, sum: Bool,
                                pooled: UnsafeMutablePointer<Float>?) {
        // Tiles start at multiples of 4, so every pooling window lies inside one tile: tile
        // (ty, tx)'s pooled values start at row 2 ty, column 2 tx of the pooled plane.
        let pooledWidth = width / 2
        var t = 0
        for ty in tileRowStart..<tileRowEnd {
            let y = 4 * ty
            let rows = min(4, height - y)
            let pooledRow = pooled.map { $0 + 2 * ty * pooledWidth }
            var tx = 0
            #if SEGSIMD_AVX512
            // 512-bit vectors: sixteen tiles (64 output columns) at a time.
            while tx + 16 <= tilesX && 4 * tx + 64 <= width {
                f4OutputLanes(SIMD16<Float>.self, mo + t, kStride: kStride, bias: bias, p: plane + y * width + 4 * tx,
                              a: addend.map { $0 + y * width + 4 * tx }, width: width, rows: rows, leaky: leaky,
                              slope: slope, sum: sum, pooled: pooledRow.map { $0 + 2 * tx }, pooledWidth: pooledWidth)
                tx += 16
                t += 16
            }
            #endif
            while tx + 8 <= tilesX && 4 * tx + 32 <= width {
                f4OutputLanes(SIMD8<Float>.self, mo + t, kStride: kStride, bias: bias, p: plane + y * width + 4 * tx,
                              a: addend.map { $0 + y * width + 4 * tx }, width: width, rows: rows, leaky: leaky,
                              slope: slope, sum: sum, pooled: pooledRow.map { $0 + 2 * tx }, pooledWidth: pooledWidth)
                tx += 8
                t += 8
            }
            while tx < tilesX {
                f4Output1(mo + t, kStride: kStride, bias: bias, p: plane + y * width + 4 * tx,
                          a: addend.map { $0 + y * width + 4 * tx }, width: width, rows: rows,
                          columns: min(4, width - 4 * tx), leaky: leaky, slope: slope, sum: sum,
                          pooled: pooledRow.map { $0 + 2 * tx }, pooledWidth: pooledWidth)
                tx += 1
                t += 1
            }
        }
    }

    /// `V.scalarCount` tiles (8 or, in the AVX-512 build, 16) whose 36 transformed values start at
    /// `mo` (planes `kStride` apart); writes `rows` rows of 4 x `V.scalarCount` outputs from `p`,
    /// adding the values from `a` when it is given (the epilogue `sum`, `pooled` as in
    /// `f2Output`, `pooled` pointing at the first tile's pooled values).
    @inline(__always)
    static func f4OutputLanes<V: TransformVector>(_: V.Type, _ mo: UnsafeMutablePointer<Float>, kStride: Int, bias: Float,
                                                  p: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>?, width: Int,
                                                  rows: Int, leaky: Bool, slope: Float, sum: Bool,
                                                  pooled: UnsafeMutablePointer<Float>?, pooledWidth: Int) {
        @inline(__always) func column(_ j: Int) -> (V, V, V, V) {
            @inline(__always) func at(_ i: Int) -> V { V.load(mo + (6 * i + j) * kStride) }
            return Self.at(at(0), at(1), at(2), at(3), at(4), at(5))
        }
        // Aᵀ M: s[r][j] for the four output rows.
        let s0 = column(0), s1 = column(1), s2 = column(2), s3 = column(3), s4 = column(4), s5 = column(5)
        for k in 0..<36 { V().store(mo + k * kStride) }
        let b = V(repeating: bias)
        @inline(__always) func row(_ m0: V, _ m1: V, _ m2: V, _ m3: V, _ m4: V, _ m5: V) -> (V, V, V, V) {
            let y = Self.at(m0, m1, m2, m3, m4, m5)
            return (y.0 + b, y.1 + b, y.2 + b, y.3 + b)
        }
        // Rows in pairs: a pair is one row of pooling windows.
        @inline(__always) func pair(_ r: Int, _ top: (V, V, V, V), _ bottom: (V, V, V, V)?) {
            V.writeRows(top, bottom, p + r * width, width: width, addend: a.map { $0 + r * width }, leaky: leaky,
                        slope: slope, sum: sum, pooled: pooled.map { $0 + (r / 2) * pooledWidth })
        }
        pair(0, row(s0.0, s1.0, s2.0, s3.0, s4.0, s5.0), rows > 1 ? row(s0.1, s1.1, s2.1, s3.1, s4.1, s5.1) : nil)
        if rows > 2 {
            pair(2, row(s0.2, s1.2, s2.2, s3.2, s4.2, s5.2), rows > 3 ? row(s0.3, s1.3, s2.3, s3.3, s4.3, s5.3) : nil)
        }
    }

    /// One output row of eight tiles: the four outputs of each tile (y0..y3, lane = tile)
    /// interleaved into 32 consecutive values (tiles 0-3, then 4-7), plus the 32 floats from
    /// `addend` when it is given, then the LeakyReLU.
    @inline(__always)
    static func rowValues8(_ y: (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>), addend: UnsafePointer<Float>?,
                           leaky: Bool, slope: Float) -> (SIMD16<Float>, SIMD16<Float>) {
        @inline(__always) func values(_ a: SIMD4<Float>, _ b: SIMD4<Float>, _ c: SIMD4<Float>, _ d: SIMD4<Float>,
                                      _ addend: UnsafePointer<Float>?) -> SIMD16<Float> {
            var ac = SIMD8<Float>(), bd = SIMD8<Float>()
            ac.evenHalf = a
            ac.oddHalf = c
            bd.evenHalf = b
            bd.oddHalf = d
            var row = SIMD16<Float>()
            row.evenHalf = ac
            row.oddHalf = bd
            if let addend { row += load16(addend) }
            if leaky { row.replace(with: row * SIMD16(repeating: slope), where: row .< 0) }
            return row
        }
        return (values(y.0.lowHalf, y.1.lowHalf, y.2.lowHalf, y.3.lowHalf, addend),
                values(y.0.highHalf, y.1.highHalf, y.2.highHalf, y.3.highHalf, addend.map { $0 + 16 }))
    }

    /// Rows `q` and (when `bottom` is given) `q + width` of eight tiles (see `rowValues8`),
    /// stored or, with `sum`, added; with both rows and `pooled`, their 16 pooled values too.
    @inline(__always)
    static func writeRows8(_ top: (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>),
                           _ bottom: (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)?,
                           _ q: UnsafeMutablePointer<Float>, width: Int, addend: UnsafePointer<Float>?, leaky: Bool,
                           slope: Float, sum: Bool, pooled: UnsafeMutablePointer<Float>?) {
        let t = rowValues8(top, addend: addend, leaky: leaky, slope: slope)
        emit16(t.0, q, sum: sum)
        emit16(t.1, q + 16, sum: sum)
        guard let bottom else { return }
        let b = rowValues8(bottom, addend: addend.map { $0 + width }, leaky: leaky, slope: slope)
        emit16(b.0, q + width, sum: sum)
        emit16(b.1, q + width + 16, sum: sum)
        if let pooled {
            store8(poolRows(t.0, b.0), pooled)
            store8(poolRows(t.1, b.1), pooled + 8)
        }
    }

    @inline(__always)
    static func f4Output1(_ mo: UnsafeMutablePointer<Float>, kStride: Int, bias: Float, p: UnsafeMutablePointer<Float>,
                          a: UnsafePointer<Float>?, width: Int, rows: Int, columns: Int, leaky: Bool, slope: Float,
                          sum: Bool, pooled: UnsafeMutablePointer<Float>?, pooledWidth: Int) {
        // Rows of M as vectors of its six columns (lanes 6 and 7 unused).
        @inline(__always) func row(_ i: Int) -> SIMD8<Float> {
            let r = mo + 6 * i * kStride
            return SIMD8(r[0], r[kStride], r[2 * kStride], r[3 * kStride], r[4 * kStride], r[5 * kStride], 0, 0)
        }
        let s = at(row(0), row(1), row(2), row(3), row(4), row(5))
        for k in 0..<36 { mo[k * kStride] = 0 }
        var tile = (SIMD4<Float>(), SIMD4<Float>(), SIMD4<Float>(), SIMD4<Float>())
        for r in 0..<rows {
            let v: SIMD8<Float> = r == 0 ? s.0 : r == 1 ? s.1 : r == 2 ? s.2 : s.3
            let y = at(v[0], v[1], v[2], v[3], v[4], v[5])
            var values = SIMD4<Float>(y.0, y.1, y.2, y.3)
            let q = p + r * width
            for c in 0..<columns {
                var value = values[c] + bias
                if let a { value += a[r * width + c] }
                if leaky && value < 0 { value *= slope }
                values[c] = value
                q[c] = sum ? q[c] + value : value
            }
            switch r {
            case 0: tile.0 = values
            case 1: tile.1 = values
            case 2: tile.2 = values
            default: tile.3 = values
            }
        }
        guard let pooled else { return }
        // The windows inside the image: odd trailing rows and columns are dropped.
        for pr in 0..<(rows / 2) {
            let (top, bottom) = pr == 0 ? (tile.0, tile.1) : (tile.2, tile.3)
            for pc in 0..<(columns / 2) {
                pooled[pr * pooledWidth + pc] = max(max(top[2 * pc], top[2 * pc + 1]),
                                                    max(bottom[2 * pc], bottom[2 * pc + 1]))
            }
        }
    }

    // MARK: Resampling

    public static func maxPool2x2(input: UnsafePointer<Float>, height: Int, width: Int, output: UnsafeMutablePointer<Float>) {
        let oh = height / 2, ow = width / 2
        for y in 0..<oh {
            let r0 = input + (2 * y) * width
            let r1 = r0 + width
            let d = output + y * ow
            for x in 0..<ow {
                let a = max(r0[2 * x], r0[2 * x + 1])
                let b = max(r1[2 * x], r1[2 * x + 1])
                d[x] = max(a, b)
            }
        }
    }

    public static func bilinearRow(r0: UnsafePointer<Float>, r1: UnsafePointer<Float>, wy: Float, i0: UnsafePointer<Int32>,
                                   i1: UnsafePointer<Int32>, f: UnsafePointer<Float>, count: Int,
                                   out: UnsafeMutablePointer<Float>) {
        let wy0 = 1 - wy
        for x in 0..<count {
            let a = Int(i0[x]), b = Int(i1[x]), fx = f[x]
            let top = r0[a] * (1 - fx) + r0[b] * fx
            let bottom = r1[a] * (1 - fx) + r1[b] * fx
            out[x] = top * wy0 + bottom * wy
        }
    }

    // MARK: Loads and stores

    @inline(__always)
    static func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
    }

    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    static func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
    }

    @inline(__always)
    static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    @inline(__always)
    static func store4(_ v: SIMD4<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Float>.self)
    }
}

/// What the F(4x4, 3x3) transforms need of a value: one float (edge tiles) or a vector of tiles.
protocol TransformLanes {
    static func + (lhs: Self, rhs: Self) -> Self
    static func - (lhs: Self, rhs: Self) -> Self
    static func * (lhs: Float, rhs: Self) -> Self
}

extension Float: TransformLanes {}
extension SIMD8: TransformLanes where Scalar == Float {}
extension SIMD16: TransformLanes where Scalar == Float {}

/// A vector of tiles for the wide transforms (one lane per tile).
protocol TransformVector: TransformLanes, SIMD where Scalar == Float {
    /// One output row of F(4x4, 3x3): the four outputs of each tile (y0..y3) interleaved into
    /// 4 x `scalarCount` consecutive floats from `q`, and the row below from `bottom` (see
    /// `Kernels.writeRows8`).
    static func writeRows(_ top: (Self, Self, Self, Self), _ bottom: (Self, Self, Self, Self)?,
                          _ q: UnsafeMutablePointer<Float>, width: Int, addend: UnsafePointer<Float>?, leaky: Bool,
                          slope: Float, sum: Bool, pooled: UnsafeMutablePointer<Float>?)
}

extension TransformVector {
    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Self { UnsafeRawPointer(p).loadUnaligned(as: Self.self) }

    @inline(__always)
    func store(_ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: self, as: Self.self) }
}

extension SIMD8: TransformVector where Scalar == Float {
    @inline(__always)
    static func writeRows(_ top: (Self, Self, Self, Self), _ bottom: (Self, Self, Self, Self)?,
                          _ q: UnsafeMutablePointer<Float>, width: Int, addend: UnsafePointer<Float>?, leaky: Bool,
                          slope: Float, sum: Bool, pooled: UnsafeMutablePointer<Float>?) {
        Kernels.writeRows8(top, bottom, q, width: width, addend: addend, leaky: leaky, slope: slope, sum: sum,
                           pooled: pooled)
    }
}

extension SIMD16: TransformVector where Scalar == Float {
    /// Two rows of eight tiles, side by side.
    @inline(__always)
    static func writeRows(_ top: (Self, Self, Self, Self), _ bottom: (Self, Self, Self, Self)?,
                          _ q: UnsafeMutablePointer<Float>, width: Int, addend: UnsafePointer<Float>?, leaky: Bool,
                          slope: Float, sum: Bool, pooled: UnsafeMutablePointer<Float>?) {
        Kernels.writeRows8((top.0.lowHalf, top.1.lowHalf, top.2.lowHalf, top.3.lowHalf),
                           bottom.map { ($0.0.lowHalf, $0.1.lowHalf, $0.2.lowHalf, $0.3.lowHalf) }, q, width: width,
                           addend: addend, leaky: leaky, slope: slope, sum: sum, pooled: pooled)
        Kernels.writeRows8((top.0.highHalf, top.1.highHalf, top.2.highHalf, top.3.highHalf),
                           bottom.map { ($0.0.highHalf, $0.1.highHalf, $0.2.highHalf, $0.3.highHalf) }, q + 32,
                           width: width, addend: addend.map { $0 + 32 }, leaky: leaky, slope: slope, sum: sum,
                           pooled: pooled.map { $0 + 16 })
    }
}

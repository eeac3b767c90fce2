import Foundation
import SegKernels
import SegSIMDInterface
import SegTesting
import Synchronization
import Testing

@Suite struct ParallelTests {
    /// Every item runs exactly once, and each call's worker index is below the worker count.
    @Test(arguments: [(0, 2), (1, 2), (7, 2), (100, 2), (100, 1), (33, 8)])
    func forEachItemRunsEveryItemOnce(count: Int, maxWorkers: Int) {
        let runs = Mutex([Int](repeating: 0, count: count))
        let badWorker = Atomic<Bool>(false)
        Parallel.forEachItem(count, maxWorkers: maxWorkers) { worker, item in
            if worker < 0 || worker >= maxWorkers { badWorker.store(true, ordering: .relaxed) }
            runs.withLock { $0[item] += 1 }
        }
        #expect(runs.withLock { $0 } == [Int](repeating: 1, count: count))
        let anyBadWorker = badWorker.load(ordering: .relaxed)
        #expect(!anyBadWorker)
    }
}

@Suite struct ConvolutionTests {
    @Test(arguments: [(1, 1, 1, 1), (2, 3, 5, 7), (3, 8, 13, 9), (16, 5, 1, 17), (7, 33, 32, 31), (64, 64, 16, 16)])
    func conv3x3MatchesNaiveLoops(shape: (Int, Int, Int, Int)) {
        let (cin, cout, h, w) = shape
        var rng = TestRandom(UInt64(cin * 1000 + cout * 100 + h * 10 + w))
        let x = rng.floats(cin * h * w)
        let weight = rng.floats(cout * cin * 9, scale: 0.5)
        let bias = rng.floats(cout)
        let expected = Naive.conv3x3(x, cin: cin, h: h, w: w, weight: weight, cout: cout, bias: bias)
        // Small bands force several im2col bands, including a ragged last one.
        for band in [1, w * 2 + 1, 4096] {
            let scratchCount = Conv2D.scratchCount(inChannels: cin, height: h, width: w, bandColumns: band)
            var scratch = [Float](repeating: .nan, count: scratchCount)
            var out = [Float](repeating: .nan, count: cout * h * w)
            x.withUnsafeBufferPointer { xp in
                weight.withUnsafeBufferPointer { wp in
                    bias.withUnsafeBufferPointer { bp in
                        Conv2D.conv3x3(input: xp.baseAddress!, inChannels: cin, height: h, width: w,
                                       weight: wp.baseAddress!, outChannels: cout, bias: bp.baseAddress!,
                                       output: &out, scratch: &scratch, scratchCapacity: scratchCount,
                                       bandColumns: band)
                    }
                }
            }
            #expect(relativeError(out, expected) < 1e-5, "band \(band)")
        }
    }

    @Test func conv3x3AccumulatesWithWeightSliceAndActivation() {
        // A weight with 5 input channels; convolve 2 of them (a channel slice, as the model's
        // query/support halves do) and add to an existing output, then LeakyReLU.
        let c = SliceAccumulateCase(cin: 2, totalChannels: 5, firstChannel: 3, cout: 4, h: 6, w: 9, seed: 42)
        let (cin, total, cout, h, w, x, full, start, offset, expected) =
            (c.cin, c.total, c.cout, c.h, c.w, c.x, c.full, c.start, c.offset, c.expected)
        var out = start
        let scratchCount = Conv2D.scratchCount(inChannels: cin, height: h, width: w)
        var scratch = [Float](repeating: 0, count: scratchCount)
        full.withUnsafeBufferPointer { wp in
            Conv2D.conv3x3(input: x, inChannels: cin, height: h, width: w, weight: wp.baseAddress! + offset,
                           weightRowStride: total * 9, outChannels: cout, bias: nil, output: &out,
                           accumulate: true, activation: .leakyReLU(0.01), scratch: &scratch,
                           scratchCapacity: scratchCount)
        }
        #expect(relativeError(out, expected) < 1e-5)
    }

    /// output = addend + convolution through im2col, the addend copied in band by band: the
    /// output's old contents (NaN) are never read; bands of 2 rows, on one thread and on several.
    @Test func conv3x3AddsASeparatePlaneBandByBand() {
        let c = SliceAccumulateCase(cin: 2, totalChannels: 5, firstChannel: 3, cout: 4, h: 9, w: 11, seed: 43)
        let scratchCount = 3 * Conv2D.scratchCount(inChannels: c.cin, height: c.h, width: c.w, bandColumns: 22)
        for threads in [1, 3] {
            var out = [Float](repeating: .nan, count: c.start.count)
            var scratch = [Float](repeating: 0, count: scratchCount)
            c.full.withUnsafeBufferPointer { wp in
                c.start.withUnsafeBufferPointer { addend in
                    Conv2D.conv3x3(input: c.x, inChannels: c.cin, height: c.h, width: c.w, weight: wp.baseAddress! + c.offset,
                                   weightRowStride: c.total * 9, outChannels: c.cout, bias: nil, output: &out,
                                   addend: addend.baseAddress!, activation: .leakyReLU(0.01), scratch: &scratch,
                                   scratchCapacity: scratchCount, bandColumns: 22, threads: threads)
                }
            }
            #expect(relativeError(out, c.expected) < 1e-5, "\(threads) threads")
        }
    }

    @Test(arguments: [(1, 1, 1), (3, 5, 7), (64, 1, 33), (9, 2, 100)])
    func conv1x1MatchesNaiveLoops(shape: (Int, Int, Int)) {
        let (cin, cout, pixels) = shape
        var rng = TestRandom(UInt64(cin + cout + pixels))
        let x = rng.floats(cin * pixels), weight = rng.floats(cout * cin), bias = rng.floats(cout)
        var expected = [Float](repeating: 0, count: cout * pixels)
        for o in 0..<cout {
            for p in 0..<pixels {
                var acc = Double(bias[o])
                for c in 0..<cin { acc += Double(weight[o * cin + c]) * Double(x[c * pixels + p]) }
                expected[o * pixels + p] = Float(acc)
            }
        }
        var out = [Float](repeating: .nan, count: cout * pixels)
        Conv2D.conv1x1(input: x, inChannels: cin, pixels: pixels, weight: weight, outChannels: cout,
                       bias: bias, output: &out)
        #expect(relativeError(out, expected) < 1e-5)
    }
}

@Suite struct ResampleTests {
    @Test(arguments: [(1, 2, 2), (3, 4, 6), (2, 7, 5), (5, 16, 16), (1, 1, 3)])
    func maxPoolMatchesNaiveLoops(shape: (Int, Int, Int)) {
        let (c, h, w) = shape
        var rng = TestRandom(UInt64(c * 31 + h * 7 + w))
        let x = rng.floats(c * h * w)
        for isa in KernelISA.supportedHere {
            var out = [Float](repeating: .nan, count: c * (h / 2) * (w / 2))
            Resample.maxPool2x2(input: x, channels: c, height: h, width: w, output: &out, isa: isa)
            #expect(out == Naive.maxPool(x, c: c, h: h, w: w), "\(isa)")
        }
    }

    @Test func maxPoolTiesAndNegativeValues() {
        let x: [Float] = [-3, -3, -1, -2,
                          -3, -3, -4, -1]
        var out = [Float](repeating: 0, count: 2)
        Resample.maxPool2x2(input: x, channels: 1, height: 2, width: 4, output: &out)
        #expect(out == [-3, -1])
    }

    @Test(arguments: [(1, 1, 1), (2, 3, 5), (3, 8, 8), (1, 16, 7), (4, 2, 2)])
    func bilinearUpsampleMatchesAlignCornersDefinition(shape: (Int, Int, Int)) {
        let (c, h, w) = shape
        var rng = TestRandom(UInt64(c * 13 + h * 5 + w))
        let x = rng.floats(c * h * w)
        for isa in KernelISA.supportedHere {
            var out = [Float](repeating: .nan, count: c * 4 * h * w)
            Resample.upsampleBilinear2x(input: x, channels: c, height: h, width: w, output: &out, isa: isa)
            #expect(relativeError(out, Naive.upsample(x, c: c, h: h, w: w)) < 1e-6, "\(isa)")
        }
    }

    @Test func bilinearUpsampleKeepsCornersExactly() {
        // align_corners=True maps the corner pixels onto themselves.
        let x: [Float] = [1, 2, 3, 4, 5, 6]  // 2 x 3
        var out = [Float](repeating: 0, count: 24)  // 4 x 6
        Resample.upsampleBilinear2x(input: x, channels: 1, height: 2, width: 3, output: &out)
        #expect(out[0] == 1 && out[5] == 3 && out[18] == 4 && out[23] == 6)
        // Second output column samples x = 1 * (3 - 1) / (6 - 1) = 0.4.
        #expect(abs(out[1] - 1.4) < 1e-6)
    }
}

@Suite struct ElementwiseTests {
    @Test func meanOverEntries() {
        let x: [Float] = [1, 2, 3, /* gap */ 9, 3, 4, 5, 9, 5, 6, 7, 9]
        var out = [Float](repeating: 0, count: 3)
        Elementwise.mean(x, entries: 3, entryStride: 4, count: 3, into: &out)
        #expect(out == [3, 4, 5])
    }

    @Test func leakyReLUAndSigmoid() {
        var x: [Float] = [-2, -0.0, 0, 3]
        Elementwise.leakyReLU(&x, count: 4, slope: 0.01)
        #expect(x == [-0.02, 0, 0, 3])
        #expect(Elementwise.sigmoid(0) == 0.5)
        #expect(Elementwise.sigmoid(-100) >= 0 && Elementwise.sigmoid(-100) < 1e-40)
        #expect(Elementwise.sigmoid(100) == 1)
        #expect(abs(Elementwise.sigmoid(2) - 0.880797) < 1e-6)
    }

    @Test func sgemmTransposesAndAccumulates() {
        // C = A^T B + C with A stored [k, m] and B [k, n].
        let a: [Float] = [1, 2, 3, 4, 5, 6]      // k=2, m=3
        let b: [Float] = [1, 0, 0, 1]            // k=2, n=2
        var c: [Float] = [1, 1, 1, 1, 1, 1]      // m=3, n=2
        BLAS.sgemm(transposeA: true, m: 3, n: 2, k: 2, a: a, lda: 3, b: b, ldb: 2, beta: 1, c: &c, ldc: 2)
        #expect(c == [2, 5, 3, 6, 4, 7])
    }
}

@Suite struct WinogradTests {
    // (8, 6, 9, 133): rows of 34 F(4x4) tiles, so the AVX-512 build's 16-tile path runs twice per row,
    // then the 8-tile path is skipped and two single tiles follow.
    @Test(arguments: [(1, 1, 1, 1), (3, 4, 2, 2), (8, 5, 7, 9), (16, 16, 16, 16), (5, 9, 13, 3), (64, 64, 12, 20), (8, 6, 9, 133)])
    func winogradMatchesNaiveConvolution(shape: (Int, Int, Int, Int)) {
        let (cin, cout, h, w) = shape
        for isa in KernelISA.supportedHere {
            for variant in Winograd.Variant.allCases {
                for band in [1, 3, 1024] {
                    var scratch = [Float](repeating: .nan, count: Winograd.scratchCount(
                        inChannels: cin, outChannels: cout, height: h, width: w, bandTiles: band, variant: variant))
                    expectMatchesNaive(cin: cin, cout: cout, h: h, w: w, band: band, seed: UInt64(cin * 7 + cout * 5 + h * 3 + w),
                                       variant: variant, isa: isa, scratch: &scratch, "\(isa) \(variant) band \(band)")
                }
            }
        }
    }

    /// The products accumulate into a transform buffer that each call clears once and the output
    /// transform clears as it reads: one scratch buffer, reused by calls of different shapes and
    /// band sizes (the last band of each smaller than the others), must give exact results every time.
    @Test func winogradScratchIsReusedAcrossShapesAndBands() {
        let shapes = [(16, 24, 13, 18, 3), (8, 8, 9, 7, 5), (16, 24, 13, 18, 7), (24, 16, 6, 31, 2), (8, 8, 37, 70, 16)]
        for isa in KernelISA.supportedHere {
            for variant in Winograd.Variant.allCases {
                let count = shapes.map { Winograd.scratchCount(inChannels: $0.0, outChannels: $0.1, height: $0.2, width: $0.3,
                                                                bandTiles: $0.4, variant: variant) }.max()!
                var scratch = [Float](repeating: .nan, count: count)
                for (index, (cin, cout, h, w, band)) in shapes.enumerated() {
                    expectMatchesNaive(cin: cin, cout: cout, h: h, w: w, band: band, seed: UInt64(100 + index),
                                       variant: variant, isa: isa, scratch: &scratch, "\(isa) \(variant) call \(index)")
                }
            }
        }
    }

    /// Seeded random input, weights and bias of one shape through `Winograd.conv3x3` (bias, no
    /// activation) with the given scratch, compared with the naive convolution.
    private func expectMatchesNaive(cin: Int, cout: Int, h: Int, w: Int, band: Int, seed: UInt64,
                                    variant: Winograd.Variant, isa: KernelISA, scratch: inout [Float], _ comment: Comment) {
        var rng = TestRandom(seed)
        let x = rng.floats(cin * h * w)
        let weight = rng.floats(cout * cin * 9, scale: 0.5)
        let bias = rng.floats(cout)
        let expected = Naive.conv3x3(x, cin: cin, h: h, w: w, weight: weight, cout: cout, bias: bias)
        let filter = weight.withUnsafeBufferPointer {
            Winograd.Filter(weight: $0.baseAddress!, rowStride: cin * 9, inChannels: cin, outChannels: cout, variant: variant)
        }
        var out = [Float](repeating: .nan, count: cout * h * w)
        let capacity = scratch.count
        bias.withUnsafeBufferPointer { bp in
            Winograd.conv3x3(input: x, height: h, width: w, filter: filter, bias: bp.baseAddress!, output: &out,
                             scratch: &scratch, scratchCapacity: capacity, bandTiles: band, isa: isa)
        }
        #expect(relativeError(out, expected) < Self.tolerance(variant), comment)
    }

    /// The F(4x4) input split reads each input row in place: a zero column on the left, zeros
    /// past the row's end, every padded column in its phase plane, and nothing written between
    /// the planes. Widths below, at and past the 16-column vector runs, unaligned rows.
    @Test func f4SplitPaddedRowMatchesTheNaiveSplit() {
        let sentinel: Float = -7777
        for isa in KernelISA.supportedHere {
            for width in [1, 3, 4, 15, 16, 17, 20, 31, 32, 33, 64, 70, 128, 133] {
                let tw = (width + 3) / 4 + 1, phasePlane = tw + 3
                var rng = TestRandom(UInt64(width))
                let storage = [sentinel] + rng.floats(width)  // the row starts one float in: unaligned
                var row = [Float](repeating: sentinel, count: 4 * phasePlane)
                storage.withUnsafeBufferPointer { s in
                    row.withUnsafeMutableBufferPointer { r in
                        isa.kernels.f4SplitPaddedRow(input: s.baseAddress! + 1, width: width, row: r.baseAddress!,
                                                     phasePlane: phasePlane, phaseWidth: tw)
                    }
                }
                var expected = [Float](repeating: sentinel, count: 4 * phasePlane)
                for t in 0..<tw {
                    for phase in 0..<4 {
                        let x = 4 * t + phase
                        expected[phase * phasePlane + t] = x >= 1 && x <= width ? storage[x] : 0
                    }
                }
                #expect(row == expected, "\(isa) width \(width)")
            }
        }
    }

    /// The F(4x4) filter transform G g Gᵀ, against the textbook G written out here: channel
    /// counts that take the eight-lane path, the one-by-one path and both, in one block of 16
    /// and across blocks.
    @Test(arguments: [1, 7, 8, 13, 16, 20, 33])
    func f4FilterTransformMatchesTheTextbookG(inChannels cin: Int) {
        let cout = 3
        let G: [[Double]] = [[0.25, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                             [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
        var rng = TestRandom(UInt64(500 + cin))
        let rowStride = cin * 9 + 5  // rows further apart than their channels, as slices are
        let weight = rng.floats(cout * rowStride)
        let filter = weight.withUnsafeBufferPointer {
            Winograd.Filter(weight: $0.baseAddress!, rowStride: rowStride, inChannels: cin, outChannels: cout, variant: .f4x4)
        }
        var worst = 0.0
        for o in 0..<cout {
            for c in 0..<cin {
                let g = (0..<9).map { Double(weight[o * rowStride + c * 9 + $0]) }
                for i in 0..<6 {
                    for j in 0..<6 {
                        var sum = 0.0
                        for a in 0..<3 { for b in 0..<3 { sum += G[i][a] * g[a * 3 + b] * G[j][b] } }
                        let got = Double(filter.u[(6 * i + j) * cout * cin + o * cin + c])
                        worst = max(worst, abs(got - sum) / max(1e-3, abs(sum)))
                    }
                }
            }
        }
        #expect(worst < 1e-6, "worst relative difference \(worst)")
    }

    /// A concatenation [a; b] along the channels, given as two stacks (`upperInput` from channel
    /// `upperFrom`), convolves exactly as the same channels in one stack: Winograd of both
    /// variants on every build, and im2col on one and three threads. Splits at the first
    /// channel, inside, and at the end (no upper channels).
    @Test func twoStacksConvolveExactlyAsOne() {
        let (cin, cout, h, w) = (12, 5, 9, 70)
        var rng = TestRandom(404)
        let x = rng.floats(cin * h * w)
        let weight = rng.floats(cout * cin * 9, scale: 0.5)
        let bias = rng.floats(cout)
        for split in [0, 5, cin] {
            let lower = Array(x[0..<(split * h * w)]) + [.nan]  // never read past the split
            let upper = Array(x[(split * h * w)...]) + [.nan]
            for variant in Winograd.Variant.allCases {
                let filter = weight.withUnsafeBufferPointer {
                    Winograd.Filter(weight: $0.baseAddress!, rowStride: cin * 9, inChannels: cin, outChannels: cout,
                                    variant: variant)
                }
                let count = Winograd.scratchCount(inChannels: cin, outChannels: cout, height: h, width: w, variant: variant)
                for isa in KernelISA.supportedHere {
                    var scratch = [Float](repeating: .nan, count: count)
                    var one = [Float](repeating: .nan, count: cout * h * w), two = one
                    bias.withUnsafeBufferPointer { bp in
                        Winograd.conv3x3(input: x, height: h, width: w, filter: filter, bias: bp.baseAddress!, output: &one,
                                         activation: .leakyReLU(0.01), scratch: &scratch, scratchCapacity: count, isa: isa)
                        Winograd.conv3x3(input: lower, upperInput: upper, upperFrom: split, height: h, width: w,
                                         filter: filter, bias: bp.baseAddress!, output: &two, activation: .leakyReLU(0.01),
                                         scratch: &scratch, scratchCapacity: count, isa: isa)
                    }
                    #expect(two == one, "\(isa) \(variant) split \(split)")
                    #expect(relativeError(one, Naive.conv3x3(x, cin: cin, h: h, w: w, weight: weight, cout: cout, bias: bias)
                        .map { $0 < 0 ? 0.01 * $0 : $0 }) < Self.tolerance(variant), "\(isa) \(variant)")
                }
            }
            let count = Conv2D.scratchCount(inChannels: cin, height: h, width: w, bandColumns: 2 * w) * 3
            for threads in [1, 3] {
                var scratch = [Float](repeating: .nan, count: count)
                var one = [Float](repeating: .nan, count: cout * h * w), two = one
                weight.withUnsafeBufferPointer { wp in
                    bias.withUnsafeBufferPointer { bp in
                        Conv2D.conv3x3(input: x, inChannels: cin, height: h, width: w, weight: wp.baseAddress!,
                                       outChannels: cout, bias: bp.baseAddress!, output: &one, scratch: &scratch,
                                       scratchCapacity: count, bandColumns: 2 * w, threads: threads)
                        Conv2D.conv3x3(input: lower, upperInput: upper, upperFrom: split, inChannels: cin, height: h, width: w,
                                       weight: wp.baseAddress!, outChannels: cout, bias: bp.baseAddress!, output: &two,
                                       scratch: &scratch, scratchCapacity: count, bandColumns: 2 * w, threads: threads)
                    }
                }
                #expect(two == one, "im2col, \(threads) threads, split \(split)")
            }
        }
    }

    /// F(4x4, 3x3)'s larger transform coefficients round about ten times more than F(2x2, 3x3)'s.
    static func tolerance(_ variant: Winograd.Variant) -> Float { variant == .f2x2 ? 1e-5 : 1e-4 }

    @Test(arguments: Winograd.Variant.allCases)
    func winogradAccumulatesOnAWeightSliceWithActivation(variant: Winograd.Variant) {
        let c = SliceAccumulateCase(cin: 6, totalChannels: 10, firstChannel: 4, cout: 5, h: 7, w: 8, seed: 77)
        let (cin, total, cout, h, w, x, full, start, offset, expected) =
            (c.cin, c.total, c.cout, c.h, c.w, c.x, c.full, c.start, c.offset, c.expected)
        let filter = full.withUnsafeBufferPointer {
            Winograd.Filter(weight: $0.baseAddress! + offset, rowStride: total * 9, inChannels: cin, outChannels: cout,
                            variant: variant)
        }
        let count = Winograd.scratchCount(inChannels: cin, outChannels: cout, height: h, width: w, variant: variant)
        for isa in KernelISA.supportedHere {
            var scratch = [Float](repeating: 0, count: count)
            var out = start
            Winograd.conv3x3(input: x, height: h, width: w, filter: filter, bias: nil, output: &out, accumulate: true,
                             activation: .leakyReLU(0.01), scratch: &scratch, scratchCapacity: count, isa: isa)
            #expect(relativeError(out, expected) < Self.tolerance(variant), "\(isa)")
        }
    }

    /// Filters made side by side in one shared storage (as a network's are) hold exactly the
    /// values of filters with storage of their own, and neither overwrites the other.
    @Test(arguments: Winograd.Variant.allCases)
    func filtersShareOneStorageWithoutOverlap(variant: Winograd.Variant) {
        var rng = TestRandom(91)
        let a = rng.floats(7 * 12 * 9), b = rng.floats(5 * 9 * 9)
        let countA = Winograd.Filter.floatCount(inChannels: 12, outChannels: 7, variant: variant)
        let countB = Winograd.Filter.floatCount(inChannels: 9, outChannels: 5, variant: variant)
        #expect(countA == (variant == .f4x4 ? 36 : 16) * 7 * 12)
        let storage = Winograd.FilterStorage(count: countA + countB)
        func make(_ w: [Float], cin: Int, cout: Int, shared: Bool, offset: Int) -> Winograd.Filter {
            w.withUnsafeBufferPointer {
                Winograd.Filter(weight: $0.baseAddress!, rowStride: cin * 9, inChannels: cin, outChannels: cout,
                                variant: variant, storage: shared ? storage : nil, offset: shared ? offset : 0)
            }
        }
        let sharedA = make(a, cin: 12, cout: 7, shared: true, offset: 0)
        let sharedB = make(b, cin: 9, cout: 5, shared: true, offset: countA)
        let ownA = make(a, cin: 12, cout: 7, shared: false, offset: 0)
        let ownB = make(b, cin: 9, cout: 5, shared: false, offset: 0)
        #expect(Array(UnsafeBufferPointer(start: sharedA.u, count: countA)) == Array(UnsafeBufferPointer(start: ownA.u, count: countA)))
        #expect(Array(UnsafeBufferPointer(start: sharedB.u, count: countB)) == Array(UnsafeBufferPointer(start: ownB.u, count: countB)))
        #expect(sharedB.u == sharedA.u + countA)
    }

    /// output = addend + convolution, with the addend in its own buffer: the output's old
    /// contents (NaN here) are never read. 70 columns: the 16- and 8-tile paths and the edge tiles.
    @Test(arguments: Winograd.Variant.allCases)
    func winogradAddsASeparatePlaneWithoutReadingTheOutput(variant: Winograd.Variant) {
        let c = SliceAccumulateCase(cin: 6, totalChannels: 10, firstChannel: 4, cout: 5, h: 9, w: 70, seed: 78)
        let filter = c.full.withUnsafeBufferPointer {
            Winograd.Filter(weight: $0.baseAddress! + c.offset, rowStride: c.total * 9, inChannels: c.cin,
                            outChannels: c.cout, variant: variant)
        }
        let count = Winograd.scratchCount(inChannels: c.cin, outChannels: c.cout, height: c.h, width: c.w, variant: variant)
        for isa in KernelISA.supportedHere {
            var scratch = [Float](repeating: 0, count: count)
            var out = [Float](repeating: .nan, count: c.start.count)
            c.start.withUnsafeBufferPointer { addend in
                Winograd.conv3x3(input: c.x, height: c.h, width: c.w, filter: filter, bias: nil, output: &out,
                                 addend: addend.baseAddress!, activation: .leakyReLU(0.01), scratch: &scratch,
                                 scratchCapacity: count, isa: isa)
            }
            let finite = out.allSatisfy { $0.isFinite }
            #expect(finite, "\(isa)")
            #expect(relativeError(out, c.expected) < Self.tolerance(variant), "\(isa)")
        }
    }
}

extension WinogradTests {
    /// The fused epilogue: `accumulateActivated` adds the activated values to the output and
    /// `pooled` writes their 2x2 max-pooling, in the output transform. Both must equal, bit for
    /// bit, the convolution into a plane of its own followed by `Elementwise.add` and
    /// `Resample.maxPool2x2` (what the network did before, and what its logits depend on), and
    /// must match the naive loops. Shapes: 70 and 136 columns run the 16- and 8-tile paths and
    /// the edge tiles; odd heights and widths drop a trailing pooling row or column; height 1
    /// has no pooling window at all.
    @Test(arguments: [(6, 5, 9, 70), (4, 3, 12, 136), (3, 2, 7, 7), (5, 4, 1, 9), (4, 3, 16, 64), (2, 3, 10, 11)])
    func fusedSumAndPoolingEqualTheSeparatePasses(shape: (Int, Int, Int, Int)) {
        let (cin, cout, h, w) = shape
        var rng = TestRandom(UInt64(cin * 31 + cout * 7 + h * 3 + w))
        let x = rng.floats(cin * h * w)
        let weight = rng.floats(cout * cin * 9, scale: 0.5)
        let bias = rng.floats(cout)
        let start = rng.floats(cout * h * w)
        let ph = h / 2, pw = w / 2, pooledCount = cout * ph * pw
        let sentinel: Float = 12345
        // The naive expectation: activated values, their sum with `start`, their pooling.
        let conv = Naive.conv3x3(x, cin: cin, h: h, w: w, weight: weight, cout: cout, bias: bias)
        let activated = conv.map { $0 >= 0 ? $0 : 0.01 * $0 }
        let naiveSum = zip(start, activated).map { $0 + $1 }
        var naivePooled = [Float](repeating: 0, count: pooledCount)
        for o in 0..<cout {
            for py in 0..<ph {
                for px in 0..<pw {
                    let p = activated.withUnsafeBufferPointer { $0.baseAddress! + o * h * w + 2 * py * w + 2 * px }
                    naivePooled[(o * ph + py) * pw + px] = max(max(p[0], p[1]), max(p[w], p[w + 1]))
                }
            }
        }
        for variant in Winograd.Variant.allCases {
            let filter = weight.withUnsafeBufferPointer {
                Winograd.Filter(weight: $0.baseAddress!, rowStride: cin * 9, inChannels: cin, outChannels: cout,
                                variant: variant)
            }
            for isa in KernelISA.supportedHere {
                for band in [1, 1024] {
                    let count = Winograd.scratchCount(inChannels: cin, outChannels: cout, height: h, width: w,
                                                      bandTiles: band, variant: variant)
                    var scratch = [Float](repeating: 0, count: count)
                    func run(output: inout [Float], sum: Bool, pooled: UnsafeMutablePointer<Float>?) {
                        bias.withUnsafeBufferPointer { b in
                            Winograd.conv3x3(input: x, height: h, width: w, filter: filter, bias: b.baseAddress!,
                                             output: &output, activation: .leakyReLU(0.01), accumulateActivated: sum,
                                             pooled: pooled, scratch: &scratch, scratchCapacity: count, bandTiles: band,
                                             isa: isa)
                        }
                    }
                    // The separate passes.
                    var plane = [Float](repeating: .nan, count: cout * h * w)
                    run(output: &plane, sum: false, pooled: nil)
                    var separateSum = start
                    Elementwise.add(plane, to: &separateSum, count: plane.count)
                    var separatePooled = [Float](repeating: .nan, count: pooledCount)
                    Resample.maxPool2x2(input: plane, channels: cout, height: h, width: w, output: &separatePooled, isa: isa)
                    // Fused: the sum and the pooling (a sentinel past the end must stay).
                    var fusedSum = start
                    var fusedPooled = [Float](repeating: .nan, count: pooledCount) + [sentinel]
                    fusedPooled.withUnsafeMutableBufferPointer { run(output: &fusedSum, sum: true, pooled: $0.baseAddress!) }
                    // Fused pooling beside a plain store (the output's old contents never read).
                    var stored = [Float](repeating: .nan, count: cout * h * w)
                    var storedPooled = [Float](repeating: .nan, count: pooledCount)
                    storedPooled.withUnsafeMutableBufferPointer { run(output: &stored, sum: false, pooled: $0.baseAddress!) }
                    let label = "\(isa) \(variant) band \(band)"
                    #expect(fusedSum == separateSum, "\(label)")
                    #expect(Array(fusedPooled.prefix(pooledCount)) == separatePooled, "\(label)")
                    #expect(fusedPooled[pooledCount] == sentinel, "\(label)")
                    #expect(stored == plane, "\(label)")
                    #expect(storedPooled == separatePooled, "\(label)")
                    #expect(relativeError(fusedSum, naiveSum) < Self.tolerance(variant), "\(label)")
                    #expect(relativeError(separatePooled, naivePooled) < Self.tolerance(variant), "\(label)")
                }
            }
        }
    }

    /// `lowerUpsampled`: input channels stored at half resolution enter as their x2 upsampling,
    /// made row by row inside the transform. The result must equal, bit for bit, upsampling
    /// with `Resample.upsampleBilinear2x` into a plane and convolving that (what the network did
    /// before), with and without an upper stack read in place; and match the naive convolution
    /// of the upsampled input. 72 columns: the 16- and 8-tile paths and an edge tile.
    @Test(arguments: [(3, 2, 4, 6, 10), (5, 4, 3, 12, 72), (2, 3, 0, 8, 8), (4, 5, 4, 2, 2)])
    func upsampledInputEqualsUpsamplingFirst(shape: (Int, Int, Int, Int, Int)) {
        // `lower` channels at half resolution, `cin - lower` upper channels (none: no upper stack).
        let (lower, cout, upperCount, h, w) = shape
        let cin = lower + upperCount
        var rng = TestRandom(UInt64(lower * 13 + cout * 5 + upperCount * 3 + h + w))
        let half = rng.floats(lower * (h / 2) * (w / 2))
        let upperPlanes = rng.floats(upperCount * h * w)
        let weight = rng.floats(cout * cin * 9, scale: 0.5)
        let bias = rng.floats(cout)
        var upsampled = [Float](repeating: .nan, count: lower * h * w)
        Resample.upsampleBilinear2x(input: half, channels: lower, height: h / 2, width: w / 2, output: &upsampled)
        let naive = Naive.conv3x3(upsampled + upperPlanes, cin: cin, h: h, w: w, weight: weight, cout: cout, bias: bias)
        for variant in Winograd.Variant.allCases {
            let filter = Winograd.Filter(weight: weight, rowStride: cin * 9, inChannels: cin, outChannels: cout,
                                         variant: variant)
            for isa in KernelISA.supportedHere {
                for band in [1, 1024] {
                    let count = Winograd.scratchCount(inChannels: cin, outChannels: cout, height: h, width: w,
                                                      bandTiles: band, variant: variant)
                    var scratch = [Float](repeating: .nan, count: count)
                    func run(_ input: [Float], upsampled: Bool) -> [Float] {
                        var out = [Float](repeating: .nan, count: cout * h * w)
                        upperPlanes.withUnsafeBufferPointer { up in
                            Winograd.conv3x3(input: input, upperInput: upperCount > 0 ? up.baseAddress : nil,
                                             upperFrom: lower, height: h, width: w, filter: filter, bias: bias,
                                             output: &out, lowerUpsampled: upsampled, scratch: &scratch,
                                             scratchCapacity: count, bandTiles: band, isa: isa)
                        }
                        return out
                    }
                    let fused = run(half, upsampled: true)
                    let separate = run(upsampled, upsampled: false)
                    let label = "\(isa) \(variant) band \(band)"
                    #expect(fused == separate, "\(label)")
                    #expect(relativeError(fused, naive) < Self.tolerance(variant), "\(label)")
                }
            }
        }
    }

    /// Pooling picks between equal values as `Swift.max` does (`y >= x ? y : x`), so windows of
    /// +0 and -0 pool exactly as `Resample.maxPool2x2` pools them. With zero weights the output
    /// is the addend through the LeakyReLU: the least negative float becomes -0 there.
    @Test func fusedPoolingChoosesBetweenSignedZerosAsMaxPoolDoes() {
        let h = 4, w = 40
        let tiny = -Float.leastNonzeroMagnitude
        let addend = (0..<(h * w)).map { i -> Float in [0, tiny, 0, tiny, tiny, 0, 1, tiny][(i * 5 + i / w) % 8] }
        let x = [Float](repeating: 1, count: h * w)
        let weight = [Float](repeating: 0, count: 9)
        for variant in Winograd.Variant.allCases {
            let filter = Winograd.Filter(weight: weight, rowStride: 9, inChannels: 1, outChannels: 1, variant: variant)
            let count = Winograd.scratchCount(inChannels: 1, outChannels: 1, height: h, width: w, variant: variant)
            for isa in KernelISA.supportedHere {
                var scratch = [Float](repeating: 0, count: count)
                var out = [Float](repeating: .nan, count: h * w)
                var pooled = [Float](repeating: .nan, count: (h / 2) * (w / 2))
                pooled.withUnsafeMutableBufferPointer { p in
                    addend.withUnsafeBufferPointer { a in
                        Winograd.conv3x3(input: x, height: h, width: w, filter: filter, bias: nil, output: &out,
                                         addend: a.baseAddress!, activation: .leakyReLU(0.01), pooled: p.baseAddress!,
                                         scratch: &scratch, scratchCapacity: count, isa: isa)
                    }
                }
                let zeros = Set(out.filter { $0 == 0 }.map(\.sign))
                #expect(zeros == [.plus, .minus], "\(isa) \(variant): the output has zeros of both signs")
                var separate = [Float](repeating: .nan, count: pooled.count)
                Resample.maxPool2x2(input: out, channels: 1, height: h, width: w, output: &separate, isa: isa)
                #expect(pooled.map(\.bitPattern) == separate.map(\.bitPattern), "\(isa) \(variant)")
            }
        }
    }
}

/// Convolve a slice of the input channels of a wider weight (as the model's query/support halves
/// do), add to an existing output, then LeakyReLU(0.01): inputs and the naive expectation.
struct SliceAccumulateCase {
    let cin: Int, total: Int, cout: Int, h: Int, w: Int
    let x: [Float], full: [Float], start: [Float], expected: [Float]
    /// Offset of the slice's first channel in a weight row (floats).
    let offset: Int

    init(cin: Int, totalChannels: Int, firstChannel: Int, cout: Int, h: Int, w: Int, seed: UInt64) {
        (self.cin, self.total, self.cout, self.h, self.w) = (cin, totalChannels, cout, h, w)
        var rng = TestRandom(seed)
        x = rng.floats(cin * h * w)
        full = rng.floats(cout * totalChannels * 9)
        start = rng.floats(cout * h * w)
        offset = firstChannel * 9
        var slice = [Float]()
        for o in 0..<cout {
            let begin: Int = o * totalChannels * 9 + offset
            slice.append(contentsOf: full[begin..<(begin + cin * 9)])
        }
        let conv = Naive.conv3x3(x, cin: cin, h: h, w: w, weight: slice, cout: cout, bias: nil)
        var expected = [Float](repeating: 0, count: conv.count)
        for i in expected.indices {
            let v = conv[i] + start[i]
            expected[i] = v >= 0 ? v : 0.01 * v
        }
        self.expected = expected
    }
}

/// The builds of the vector kernels (x86-64, AVX2, AVX-512) and how one is chosen.
@Suite struct KernelISATests {
    @Test func theBuildsFollowTheFlagsLine() {
        let avx2 = "flags\t: fpu sse2 avx avx2 fma bmi1 bmi2 f16c movbe\n"
        let avx512 = "flags\t: fpu sse2 avx avx2 fma bmi1 bmi2 f16c movbe avx512f avx512cd avx512bw avx512dq avx512vl\n"
        #if arch(x86_64)
        #expect(KernelISA.supported(cpuinfo: "flags\t: fpu sse sse2 sse4_2 avx\n") == [.portable])
        #expect(KernelISA.supported(cpuinfo: avx2) == [.portable, .avx2])
        #expect(KernelISA.supported(cpuinfo: avx512) == [.portable, .avx2, .avx512])
        // AVX-512F alone (Knights Landing, some VMs) is not enough; nor is AVX2 without FMA.
        #expect(KernelISA.supported(cpuinfo: avx2.replacingOccurrences(of: "movbe", with: "movbe avx512f")) == [.portable, .avx2])
        #expect(KernelISA.supported(cpuinfo: avx2.replacingOccurrences(of: " fma", with: "")) == [.portable])
        // Whole words: "avx512fma"-like flags do not count as "fma".
        #expect(KernelISA.supported(cpuinfo: avx2.replacingOccurrences(of: " fma", with: " avx512fma")) == [.portable])
        #endif
        #expect(KernelISA.supported(cpuinfo: "model name\t: no flags line\n") == [.portable])
    }

    @Test func theBestBuildIsChosenUnlessTheVariableNamesARunnableOne() {
        let all: [KernelISA] = [.portable, .avx2, .avx512]
        #expect(KernelISA.choose(environment: nil, supported: all) == (.avx512, nil))
        #expect(KernelISA.choose(environment: "", supported: [.portable, .avx2]) == (.avx2, nil))
        #expect(KernelISA.choose(environment: "portable", supported: all) == (.portable, nil))
        #expect(KernelISA.choose(environment: "AVX2", supported: all) == (.avx2, nil))
        let refused = KernelISA.choose(environment: "avx512", supported: [.portable, .avx2])
        #expect(refused.isa == .avx2 && refused.note?.contains("cannot run") == true)
        let unknown = KernelISA.choose(environment: "sse9", supported: [.portable])
        #expect(unknown.isa == .portable && unknown.note?.contains("not one of") == true)
    }

    /// Each build in the binary is compiled for its own instruction set (the names come from the
    /// build itself, through its compile-time condition), and this machine runs at least the
    /// portable one.
    @Test func eachBuildThisMachineRunsNamesItsInstructionSet() {
        #expect(KernelISA.supportedHere.first == .portable)
        #expect(KernelISA.supportedHere.contains(KernelISA.active))
        for isa in KernelISA.supportedHere {
            #expect(isa.kernels.instructionSet == isa.name)
        }
    }
}

/// The passes between the convolutions split between threads (means, pooling, upsampling, as
/// the query path runs them): large enough inputs that they do split, the same values as the
/// naive loops on one thread and on two. Serialized: it sets the process-wide thread count.
@Suite(.serialized) struct ThreadedPassTests {
    @Test func meanAddAndScaleSplitBetweenThreadsGiveTheSequentialValues() {
        let previous = Parallel.threadCount
        defer { Parallel.threadCount = previous }
        Parallel.threadCount = 2
        let entries = 5, count = 100_003, stride = count + 7
        var rng = TestRandom(5)
        let x = rng.floats(entries * stride)
        var expected = [Float](repeating: 0, count: count)
        for i in 0..<count {
            var acc = x[i]
            for e in 1..<entries { acc += x[e * stride + i] }
            expected[i] = acc * (1 / Float(entries))
        }
        for threads in [1, 2] {
            var out = [Float](repeating: .nan, count: count)
            Elementwise.mean(x, entries: entries, entryStride: stride, count: count, into: &out, threads: threads)
            #expect(out == expected, "mean, \(threads) threads")
            var sum = Array(x[0..<count])
            Elementwise.add(Array(x[stride..<(stride + count)]), to: &sum, count: count, threads: threads)
            Elementwise.scale(&sum, by: 0.5, count: count, threads: threads)
            #expect(sum == (0..<count).map { (x[$0] + x[stride + $0]) * 0.5 }, "add and scale, \(threads) threads")
        }
    }

    @Test func poolingAndUpsamplingSplitBetweenThreadsGiveTheNaiveValues() {
        let previous = Parallel.threadCount
        defer { Parallel.threadCount = previous }
        Parallel.threadCount = 2
        let (c, h, w) = (9, 64, 62)
        var rng = TestRandom(6)
        let x = rng.floats(c * h * w)
        var upsampled: [[Float]] = []
        for threads in [1, 2] {
            var pooled = [Float](repeating: .nan, count: c * (h / 2) * (w / 2))
            Resample.maxPool2x2(input: x, channels: c, height: h, width: w, output: &pooled, threads: threads)
            #expect(pooled == Naive.maxPool(x, c: c, h: h, w: w), "\(threads) threads")
            var up = [Float](repeating: .nan, count: c * 4 * h * w)
            Resample.upsampleBilinear2x(input: x, channels: c, height: h, width: w, output: &up, threads: threads)
            // Float interpolation weights at this size: a few ulp from the double-precision loops.
            #expect(relativeError(up, Naive.upsample(x, c: c, h: h, w: w)) < 1e-5, "\(threads) threads")
            upsampled.append(up)
        }
        #expect(upsampled[0] == upsampled[1], "bit-identical on 1 and 2 threads")
    }

    /// F(4x4, 3x3) with two threads and scratch for two: the threads take whole bands, each in
    /// its own slice of the scratch. Every output (stored, summed, with an addend, pooled, from an
    /// upsampled input) must equal the one-thread values bit for bit and nothing past the pooled
    /// planes is written; with scratch for one thread only it falls back to sharing each band.
    /// Shapes: more bands than threads with a short last one, two bands, one band (no split).
    @Test(arguments: [(4, 3, 22, 30, 8), (3, 5, 16, 16, 16), (2, 3, 8, 8, 64)])
    func f4BandsSplitBetweenThreadsGiveTheOneThreadValues(shape: (Int, Int, Int, Int, Int)) {
        let previous = Parallel.threadCount
        defer { BLAS.setThreadCount(previous) }
        BLAS.setThreadCount(2, mode: .independentCalls)
        let (cin, cout, h, w, bandTiles) = shape
        var rng = TestRandom(UInt64(cin * 7 + cout * 11 + h * 13 + w + bandTiles))
        let x = rng.floats(cin * h * w), half = rng.floats(cin * (h / 2) * (w / 2))
        let weight = rng.floats(cout * cin * 9, scale: 0.5)
        let bias = rng.floats(cout), addend = rng.floats(cout * h * w), start = rng.floats(cout * h * w)
        let pooledCount = cout * (h / 2) * (w / 2), sentinel: Float = 12345
        let filter = weight.withUnsafeBufferPointer {
            Winograd.Filter(weight: $0.baseAddress!, rowStride: cin * 9, inChannels: cin, outChannels: cout, variant: .f4x4)
        }
        let one = Winograd.scratchCount(inChannels: cin, outChannels: cout, height: h, width: w,
                                        bandTiles: bandTiles, variant: .f4x4)
        enum Form: CaseIterable { case stored, summed, addend, upsampled }
        for isa in KernelISA.supportedHere {
            for form in Form.allCases {
                func run(threads: Int, capacity: Int) -> ([Float], [Float]) {
                    var output = form == .summed ? start : [Float](repeating: .nan, count: cout * h * w)
                    var pooled = [Float](repeating: .nan, count: pooledCount) + [sentinel]
                    var scratch = [Float](repeating: .nan, count: capacity)
                    let input = form == .upsampled ? half : x
                    input.withUnsafeBufferPointer { i in
                        addend.withUnsafeBufferPointer { a in
                            bias.withUnsafeBufferPointer { b in
                                pooled.withUnsafeMutableBufferPointer { p in
                                    Winograd.conv3x3(input: i.baseAddress!, height: h, width: w, filter: filter,
                                                     bias: form == .addend ? nil : b.baseAddress!, output: &output,
                                                     addend: form == .addend ? a.baseAddress! : nil,
                                                     activation: .leakyReLU(0.01), accumulateActivated: form == .summed,
                                                     pooled: p.baseAddress!, lowerUpsampled: form == .upsampled,
                                                     scratch: &scratch, scratchCapacity: capacity, bandTiles: bandTiles,
                                                     threads: threads, isa: isa)
                                }
                            }
                        }
                    }
                    return (output, pooled)
                }
                let (expected, expectedPooled) = run(threads: 1, capacity: one)
                for capacity in [2 * one, one] {
                    let (output, pooled) = run(threads: 2, capacity: capacity)
                    let label = "\(isa) \(form) scratch \(capacity / one)x"
                    #expect(output == expected, "\(label)")
                    #expect(pooled == expectedPooled, "\(label)")
                    #expect(pooled[pooledCount] == sentinel, "\(label)")
                }
                if form == .stored {
                    let naive = Naive.conv3x3(x, cin: cin, h: h, w: w, weight: weight, cout: cout, bias: bias)
                        .map { $0 >= 0 ? $0 : 0.01 * $0 }
                    #expect(relativeError(expected, naive) < WinogradTests.tolerance(.f4x4), "\(isa)")
                }
            }
        }
    }
}

extension WinogradTests {
    /// `Winograd.F4Bands`: every band computed from a buffer holding only the input rows it reads
    /// must equal, bit for bit, the whole-plane F(4x4, 3x3) convolution with the same band size,
    /// for a first input stored and a second one summed on top (as the network sums its support
    /// entries), with the pooling written on the way; and match the naive loops. Shapes: one
    /// band, several bands with a short last one, one tile row per band, a single row.
    @Test(arguments: [(3, 4, 16, 16, 64), (5, 3, 13, 9, 4), (2, 6, 22, 30, 8), (4, 2, 1, 7, 64), (3, 3, 11, 70, 16)])
    func bandsFromTheirOwnRowsEqualTheWholeConvolution(shape: (Int, Int, Int, Int, Int)) {
        let (cin, cout, h, w, bandTiles) = shape
        var rng = TestRandom(UInt64(cin * 131 + cout * 17 + h * 5 + w + bandTiles))
        let inputs = [rng.floats(cin * h * w), rng.floats(cin * h * w)]
        let weight = rng.floats(cout * cin * 9, scale: 0.5)
        let bias = rng.floats(cout)
        let ph = h / 2, pw = w / 2, pooledCount = cout * ph * pw
        let slope: Float = 0.01
        let naive = inputs.map { x in
            Naive.conv3x3(x, cin: cin, h: h, w: w, weight: weight, cout: cout, bias: bias).map { $0 >= 0 ? $0 : slope * $0 }
        }
        let naiveSum = zip(naive[0], naive[1]).map { $0 + $1 }
        let filter = weight.withUnsafeBufferPointer {
            Winograd.Filter(weight: $0.baseAddress!, rowStride: cin * 9, inChannels: cin, outChannels: cout, variant: .f4x4)
        }
        let wholeCount = Winograd.scratchCount(inChannels: cin, outChannels: cout, height: h, width: w,
                                               bandTiles: bandTiles, variant: .f4x4)
        let bandCount = Winograd.F4Bands.scratchCount(inChannels: cin, outChannels: cout, height: h, width: w,
                                                      bandTiles: bandTiles)
        let maxRows = Winograd.F4Bands.maxInputRows(height: h, width: w, bandTiles: bandTiles)
        for isa in KernelISA.supportedHere {
            for threads in [1, 2] {
                let label = "\(isa) \(threads) threads"
                // The whole planes: the first input stored, the second summed on top.
                var whole = [Float](repeating: .nan, count: cout * h * w)
                var wholePooled = [[Float]](repeating: [Float](repeating: .nan, count: pooledCount), count: 2)
                var scratch = [Float](repeating: 0, count: wholeCount)
                for (i, x) in inputs.enumerated() {
                    bias.withUnsafeBufferPointer { b in
                        wholePooled[i].withUnsafeMutableBufferPointer { p in
                            Winograd.conv3x3(input: x, height: h, width: w, filter: filter, bias: b.baseAddress!,
                                             output: &whole, activation: .leakyReLU(slope), accumulateActivated: i > 0,
                                             pooled: p.baseAddress!, scratch: &scratch, scratchCapacity: wholeCount,
                                             bandTiles: bandTiles, threads: threads, isa: isa)
                        }
                    }
                }
                // Band by band, each from its own rows; the scratch starts dirty (the constructor clears what must be clear).
                let bandScratch = UnsafeMutablePointer<Float>.allocate(capacity: bandCount)
                defer { bandScratch.deallocate() }
                bandScratch.initialize(repeating: .nan, count: bandCount)
                let runner = Winograd.F4Bands(filter: filter, height: h, width: w, scratch: bandScratch,
                                              scratchCapacity: bandCount, bandTiles: bandTiles)
                var banded = [Float](repeating: .nan, count: cout * h * w)
                var bandedPooled = [[Float]](repeating: [Float](repeating: .nan, count: pooledCount), count: 2)
                var covered: [Int] = []
                for band in 0..<runner.count {
                    let rows = runner.inputRows(band), out = runner.outputRows(band)
                    covered += Array(out)
                    #expect(rows.lowerBound == max(0, out.lowerBound - 1) && rows.upperBound == min(h, out.upperBound + 1))
                    #expect(rows.count <= maxRows, "\(label)")
                    for (i, x) in inputs.enumerated() {
                        var slice: [Float] = []
                        for c in 0..<cin {
                            let start: Int = c * h * w + rows.lowerBound * w
                            slice += x[start..<(start + rows.count * w)]
                        }
                        slice.withUnsafeBufferPointer { s in
                            bias.withUnsafeBufferPointer { b in
                                bandedPooled[i].withUnsafeMutableBufferPointer { p in
                                    runner.run(band, input: s.baseAddress!, bias: b.baseAddress!, output: &banded,
                                               activation: .leakyReLU(slope), accumulateActivated: i > 0,
                                               pooled: p.baseAddress!, threads: threads, isa: isa)
                                }
                            }
                        }
                    }
                }
                #expect(covered == Array(0..<h), "\(label): the bands cover every output row once, in order")
                #expect(banded == whole, "\(label)")
                #expect(bandedPooled == wholePooled, "\(label)")
                #expect(relativeError(banded, naiveSum) < Self.tolerance(.f4x4), "\(label)")
            }
        }
    }
}

extension ConvolutionTests {
    /// `Conv2D.rows3x3` into a band of its own (plane stride = the band's rows), with a
    /// whole-plane addend read at the band's rows: every band of rows, the first, middle, last and
    /// all of them, matches the naive convolution plus the addend, and nothing past the band is written.
    @Test func rowsIntoABandOfTheirOwnMatchTheNaiveConvolution() {
        let (cin, cout, h, w) = (3, 4, 10, 7)
        var rng = TestRandom(97)
        let x = rng.floats(cin * h * w)
        let weight = rng.floats(cout * cin * 9, scale: 0.5)
        let addend = rng.floats(cout * h * w)
        let zero = [Float](repeating: 0, count: cout)
        let naive = zip(Naive.conv3x3(x, cin: cin, h: h, w: w, weight: weight, cout: cout, bias: zero), addend)
            .map { $0 + $1 }.map { $0 >= 0 ? $0 : 0.01 * $0 }
        let sentinel: Float = 12345
        for (y0, y1) in [(0, 3), (3, 8), (8, 10), (0, 10), (5, 6)] {
            let n = y1 - y0
            var band = [Float](repeating: .nan, count: cout * n * w) + [sentinel]
            var scratch = [Float](repeating: .nan, count: cin * 9 * n * w)
            weight.withUnsafeBufferPointer { wp in
                addend.withUnsafeBufferPointer { ap in
                    Conv2D.rows3x3(input: x, inChannels: cin, height: h, width: w, rowStart: y0, rowEnd: y1,
                                   weight: wp.baseAddress!, weightRowStride: cin * 9, outChannels: cout, bias: nil,
                                   output: &band, outputPlaneStride: n * w, addend: ap.baseAddress!,
                                   activation: .leakyReLU(0.01), scratch: &scratch)
                }
            }
            var expected: [Float] = []
            for o in 0..<cout {
                let start: Int = o * h * w + y0 * w
                expected += naive[start..<(start + n * w)]
            }
            #expect(relativeError(Array(band.prefix(cout * n * w)), expected) < 1e-5, "rows \(y0)..<\(y1)")
            #expect(band.last == sentinel, "rows \(y0)..<\(y1)")
        }
    }
}

internal import SegKernels

/// Runs a `UniverSeg` network with planned memory.
///
/// The session owns every scratch buffer of the forward pass. Buffers are sized for the
/// largest support set seen so far and reused by later calls, so steady-state inference
/// allocates nothing but its result. A session is not thread-safe: give each worker thread
/// its own session (they can share the `UniverSeg` value).
///
/// The forward pass implements the exact reductions of the CrossConv (which has no
/// activation, so it is linear in its input):
/// 1. `W_u * u + b` (the query half of every cross convolution) is computed once per block,
///    not once per support entry;
/// 2. the query path convolves the channel-mean of the support inputs once:
///    `mean_i z_i = W_u * u + b + W_v * mean_i v_i`;
/// 3. the support outputs of the last decoder block are never used, so that path is skipped;
///    the level-0 skips of the support entries and the support outputs of the decoder block
///    before the last are only needed as their means, so they are kept as partial sums.
public final class InferenceSession {
    public let model: UniverSeg
    /// Use Winograd F(2x2, 3x3) for convolutions with enough input channels (default); when
    /// false, every 3x3 convolution goes through im2col + sgemm. Both are exact to float32 rounding.
    public var useWinograd = true
    private let plan: Plan
    private var plannedEntries = 0
    /// Lanes that work on support entries side by side in the current pass.
    private var passWorkers = 1
    private let slope: Float = 0.01

    /// Scratch of one thread working on support entries; lane 0 also serves the query path.
    final class Lane {
        let col = FloatBuffer()
        let z = FloatBuffer()
        let entryOut = FloatBuffer()
        let vin = FloatBuffer()
        var buffers: [FloatBuffer] { [col, z, entryOut, vin] }
    }

    // Scratch buffers (see `Plan` for their sizes).
    private var lanes: [Lane] = []
    private let q = FloatBuffer()
    private let meanIn = FloatBuffer()
    private let meanPrev = FloatBuffer()
    private let uA = FloatBuffer()
    private let uB = FloatBuffer()
    private let vA = FloatBuffer()
    private let vB = FloatBuffer()
    private let gathered = FloatBuffer()
    /// Partial sums of the level-0 support skips, which are only needed as their mean, one per
    /// block of entries (see `partialSumBlocks`). The first one ends up holding the mean.
    private var skipPartials: [FloatBuffer] = []
    private let skipU: [FloatBuffer]
    private let skipV: [FloatBuffer]

    public init(model: UniverSeg) {
        self.model = model
        self.plan = Plan(model.configuration)
        self.skipU = (0..<model.configuration.levels).map { _ in FloatBuffer() }
        self.skipV = (0..<model.configuration.levels).map { _ in FloatBuffer() }
        reserveFixed()
    }

    /// Bytes of scratch memory currently held by the session.
    public var workspaceBytes: Int {
        ([q, meanIn, meanPrev, uA, uB, vA, vB, gathered] + skipU + skipV
            + skipPartials + lanes.flatMap(\.buffers)).reduce(0) { $0 + $1.byteCount }
    }

    /// Grows the per-entry buffers for support sets of up to `entries` entries.
    public func reserve(supportEntries entries: Int) {
        guard entries > plannedEntries else { return }
        plannedEntries = entries
        vA.reserve(entries * plan.supportPerEntry)
        vB.reserve(entries * plan.supportPerEntry)
        gathered.reserve(entries * 2 * plan.pixels)
        let cfg = model.configuration
        for l in 1..<max(1, cfg.levels - 1) {
            let s = cfg.size(atLevel: l)
            skipV[l].reserve(entries * cfg.encoderWidths[l] * s * s)
        }
    }

    /// Makes sure there are `count` lanes; lane 0's convolution scratch serves `threads` threads.
    private func reserveLanes(_ count: Int, threads: Int) {
        while lanes.count < count {
            let lane = Lane()
            lane.col.reserve(plan.col(threads: 1))
            lane.z.reserve(plan.blockOutput)
            lane.entryOut.reserve(plan.blockOutput)
            lane.vin.reserve(plan.blockInput)
            lanes.append(lane)
        }
        lanes[0].col.reserve(plan.col(threads: threads))
    }

    /// Makes sure there are `count` level-0 partial sums.
    private func reservePartialSums(_ count: Int) {
        while skipPartials.count < count {
            let partial = FloatBuffer()
            partial.reserve(plan.partialSum)
            skipPartials.append(partial)
        }
    }

    /// The level-0 support convolution's filter when level 0's support path runs band by band
    /// (`bandedLevel0SupportPath`): with F(4x4, 3x3) Winograd and a cross convolution whose
    /// support half goes through im2col (two input channels). Nil otherwise.
    private var bandedLevel0Filter: Winograd.Filter? {
        let block = model.encoder[0]
        guard useWinograd, model.configuration.levels > 1, block.crossSupportFilter == nil,
              let filter = block.supportFilter, filter.variant == .f4x4 else { return nil }
        return filter
    }

    private func reserveFixed() {
        reserveLanes(1, threads: Parallel.threadCount)
        reservePartialSums(1)
        q.reserve(plan.blockOutput)
        meanIn.reserve(plan.blockInput)
        meanPrev.reserve(plan.blockInput)
        uA.reserve(plan.blockOutput)
        uB.reserve(plan.blockOutput)
        let cfg = model.configuration
        for l in 0..<(cfg.levels - 1) {
            let s = cfg.size(atLevel: l)
            skipU[l].reserve(cfg.encoderWidths[l] * s * s)
        }
    }

    /// Logits [size * size] for one query using the support entries `entries` (all, in
    /// order, when nil).
    ///
    /// - query: size*size floats (the preprocessed query image).
    public func logits(query: [Float], support: SupportTensors, entries: [Int]? = nil) throws -> [Float] {
        let cfg = model.configuration
        guard support.size == cfg.inputSize else {
            throw ModelError(.invalidInput,
                             "support tensors are \(support.size)x\(support.size), the model needs \(cfg.inputSize)x\(cfg.inputSize)")
        }
        guard query.count == plan.pixels else {
            throw ModelError(.invalidInput, "query has \(query.count) values, expected \(plan.pixels)")
        }
        let selected = entries ?? Array(0..<support.count)
        guard !selected.isEmpty else { throw ModelError(.invalidInput, "no support entries selected") }
        guard selected.allSatisfy({ $0 >= 0 && $0 < support.count }) else {
            throw ModelError(.invalidInput, "support entry index out of range")
        }
        reserve(supportEntries: selected.count)
        // Fixed for the whole pass (the thread count is process-wide and may change meanwhile).
        passWorkers = entryWorkers(selected.count)
        reserveLanes(passWorkers, threads: Parallel.threadCount)
        reservePartialSums(bandedLevel0Filter == nil ? partialSumBlocks(.max, workers: passWorkers) : 1)
        var result = [Float](repeating: 0, count: plan.pixels)
        let pairPlane = 2 * plan.pixels
        support.pairs.withUnsafeBufferPointer { pairs in
            guard let base = pairs.baseAddress else { return }
            // Consecutive entries in order (all of them, a prefix, any run) are read in place.
            let first = selected[0]
            let isRun = selected.indices.allSatisfy { selected[$0] == first + $0 }
            let input: UnsafePointer<Float>
            if isRun {
                input = base + first * pairPlane
            } else {
                for (slot, e) in selected.enumerated() {
                    (gathered.pointer + slot * pairPlane).update(from: base + e * pairPlane, count: pairPlane)
                }
                input = UnsafePointer(gathered.pointer)
            }
            query.withUnsafeBufferPointer { qp in
                result.withUnsafeMutableBufferPointer { out in
                    forward(query: qp.baseAddress!, pairs: input, entries: selected.count, logits: out.baseAddress!)
                }
            }
        }
        return result
    }

    /// Mean probability map [size * size] over the subsets chosen by `options`.
    public func probabilities(query: [Float], support: SupportTensors, options: EnsembleOptions) throws -> [Float] {
        let subsets = try options.subsets(poolSize: support.count)
        var sum = [Float](repeating: 0, count: plan.pixels)
        for subset in subsets {
            let l = try logits(query: query, support: support, entries: subset)
            for i in sum.indices { sum[i] += Elementwise.sigmoid(l[i]) }
        }
        let scale = 1 / Float(subsets.count)
        return sum.map { $0 * scale }
    }

    // MARK: - Forward pass

    /// With `upper`, the input's channels from `upperFrom` on are read from `upper` (a
    /// concatenation read in place); with `upsampled`, the channels read from `input` are stored
    /// at half resolution and enter as their x2 bilinear upsampling. The epilogue: with `sum`, the
    /// activated values are added to `output` instead of stored; with `pooled`, their 2x2
    /// max-pooling is also written there.
    private func conv(
        _ input: UnsafePointer<Float>, upper: UnsafePointer<Float>? = nil, upperFrom: Int = 0, upsampled: Bool = false,
        _ channels: Int, _ side: Int,
        weight: UnsafePointer<Float>, rowStride: Int, outChannels: Int, bias: UnsafePointer<Float>?,
        into output: UnsafeMutablePointer<Float>, plus addend: UnsafePointer<Float>? = nil,
        activation: Activation = .none, sum: Bool = false, pooled: UnsafeMutablePointer<Float>? = nil,
        filter: Winograd.Filter?, lane: Lane? = nil, threads: Int = Parallel.threadCount
    ) {
        let lane = lane ?? lanes[0]
        if let filter, useWinograd {
            // The Winograd transforms upsample rows as they read them, and add the addend, sum
            // and pool as they write (im2col copies the addend in band by band, just before each
            // band's product): no passes over planes before or after.
            Winograd.conv3x3(input: input, upperInput: upper, upperFrom: upperFrom, height: side, width: side,
                             filter: filter, bias: bias, output: output,
                             addend: addend, activation: activation, accumulateActivated: sum, pooled: pooled,
                             lowerUpsampled: upsampled,
                             scratch: lane.col.pointer, scratchCapacity: lane.col.capacity, threads: threads)
            return
        }
        // im2col: an upsampled input is made whole in the lane's input plane first, a sum goes
        // through the lane's scratch plane, the pooling is a pass of its own.
        var input = input
        if upsampled {
            Resample.upsampleBilinear2x(input: input, channels: upper == nil ? channels : upperFrom, height: side / 2,
                                        width: side / 2, output: lane.vin.pointer, threads: threads)
            input = UnsafePointer(lane.vin.pointer)
        }
        let target = sum ? lane.entryOut.pointer : output
        Conv2D.conv3x3(
            input: input, upperInput: upper, upperFrom: upperFrom, inChannels: channels, height: side, width: side,
            weight: weight, weightRowStride: rowStride, outChannels: outChannels, bias: bias,
            output: target, addend: addend, activation: activation,
            scratch: lane.col.pointer, scratchCapacity: lane.col.capacity, threads: threads)
        if sum { Elementwise.add(target, to: output, count: outChannels * side * side, threads: threads) }
        if let pooled {
            Resample.maxPool2x2(input: target, channels: outChannels, height: side, width: side, output: pooled,
                                threads: threads)
        }
    }

    /// Threads that work on support entries side by side (each with one-thread kernels), when
    /// the BLAS runs independent calls; otherwise 1 (the kernels then use every thread).
    private func entryWorkers(_ entries: Int) -> Int {
        BLAS.runsIndependentCalls ? max(1, min(Parallel.threadCount, entries)) : 1
    }

    /// Blocks of entries for the partial sums (at most 2 per worker, at most 16). Each block sums its
    /// entries' outputs into its own partial sum and the partial sums are added in block order,
    /// so the mean does not depend on which thread took which block (results are bit-identical
    /// from run to run); more blocks balance the threads better but cost a full-resolution
    /// partial sum each, memory that a short-lived process pays for in page faults (4 per worker
    /// was 8% slower for a whole `segment` process at N=16 on 2 cores).
    private func partialSumBlocks(_ n: Int, workers: Int) -> Int {
        workers <= 1 ? 1 : max(1, min(n, 2 * workers, 16))
    }

    /// Runs `body(lane, threadsPerEntry, block, entries)` over the support entries split into
    /// `blocks` contiguous blocks (one per entry when nil). With several lanes the blocks are
    /// handed out from a shared counter, so a lane held up by another process on its core
    /// takes fewer blocks instead of holding up the whole pass.
    private func forEachEntry(_ n: Int, blocks: Int? = nil, _ body: (Lane, Int, Int, Range<Int>) -> Void) {
        let workers = passWorkers
        let threads = workers == 1 ? Parallel.threadCount : 1
        let count = workers == 1 ? 1 : max(1, min(blocks ?? n, n))
        Parallel.forEachItem(count, maxWorkers: workers) { worker, block in
            body(lanes[worker], threads, block, (n * block / count)..<(n * (block + 1) / count))
        }
    }

    /// One CrossBlock with the reductions, shared by the encoder and the decoder:
    /// `q = W_u * u + b` once; the query path `u' = TargetConvOp(q + W_v * mean_i v_i)` into
    /// `queryOutput`; then, unless `supportPath` is false, the support path entry by entry.
    ///
    /// `entry(lane, part, range, supportConv)` handles the entries `range` (block `part` of
    /// `blocks`) on `lane`: for each entry it prepares the input `v_i` and calls
    /// `supportConv(v_i, upper, dest, sum, pooled)`, which writes `v'_i = SupportConvOp(q + W_v * v_i)`
    /// to `dest` (adds it with `sum`; also writes its 2x2 max-pooling to `pooled` when given).
    /// Entries are independent; lanes work on them side by side.
    ///
    /// The decoder's inputs are concatenations [up(u); skip]: each input given with an upper
    /// stack (`queryUpper`, `meanSupportUpper`, the `upper` of `supportConv`) holds its
    /// channels from `upperFrom` on there, and is read in place; with `upsampled`, the channels
    /// before `upperFrom` are given at half resolution and upsampled as they are read.
    private func crossBlock(
        _ block: CrossBlockWeights, side: Int, query u: UnsafePointer<Float>, queryUpper: UnsafePointer<Float>? = nil,
        queryChannels cu: Int, meanSupport: UnsafePointer<Float>, meanSupportUpper: UnsafePointer<Float>? = nil,
        supportChannels cv: Int, upperFrom: Int = 0, upsampled: Bool = false, queryOutput: UnsafeMutablePointer<Float>,
        entries n: Int, blocks: Int? = nil, supportPath: Bool = true,
        entry: (_ lane: Lane, _ part: Int, _ range: Range<Int>,
                _ supportConv: (UnsafePointer<Float>, UnsafePointer<Float>?, UnsafeMutablePointer<Float>, Bool,
                                UnsafeMutablePointer<Float>?) -> Void) -> Void
    ) {
        precondition(cu == block.queryChannels && cv == block.supportChannels, "cross block channel mismatch")
        let w = block.width
        let ldw = (cu + cv) * 9
        let leaky = Activation.leakyReLU(slope)
        let wu = block.cross.pointer, wv = block.cross.pointer + cu * 9
        // Query half of the cross conv, once: q = W_u * u + b.
        conv(u, upper: queryUpper, upperFrom: upperFrom, upsampled: upsampled, cu, side, weight: wu, rowStride: ldw,
             outChannels: w, bias: block.crossBias.pointer, into: q.pointer, filter: block.crossQueryFilter)
        // Query path: mean_i z_i = q + W_v * mean_i v_i.
        let zq = lanes[0].z.pointer
        conv(meanSupport, upper: meanSupportUpper, upperFrom: upperFrom, upsampled: upsampled, cv, side, weight: wv,
             rowStride: ldw, outChannels: w, bias: nil, into: zq, plus: q.pointer, filter: block.crossSupportFilter)
        conv(zq, w, side, weight: block.target.pointer, rowStride: w * 9, outChannels: w,
             bias: block.targetBias.pointer, into: queryOutput, activation: leaky, filter: block.targetFilter)
        guard supportPath else { return }
        // Support path: z_i = q + W_v * v_i, v'_i = SupportConvOp(z_i).
        let qp = UnsafePointer(q.pointer)
        forEachEntry(n, blocks: blocks) { lane, threads, part, range in
            let z = lane.z.pointer
            entry(lane, part, range) { input, upper, dest, sum, pooled in
                conv(input, upper: upper, upperFrom: upperFrom, upsampled: upsampled, cv, side, weight: wv, rowStride: ldw,
                     outChannels: w, bias: nil, into: z, plus: qp, filter: block.crossSupportFilter, lane: lane,
                     threads: threads)
                conv(z, w, side, weight: block.support.pointer, rowStride: w * 9, outChannels: w,
                     bias: block.supportBias.pointer, into: dest, activation: leaky, sum: sum, pooled: pooled,
                     filter: block.supportFilter, lane: lane, threads: threads)
            }
        }
    }

    /// The mean over `entries` entries from the partial sums `partials` (one per block), added in
    /// block order (so the result does not depend on which thread took which block). `mean` may
    /// be the first partial sum itself.
    private func meanOfPartialSums(_ partials: [UnsafeMutablePointer<Float>], count: Int, entries n: Int,
                                   into mean: UnsafeMutablePointer<Float>, threads: Int) {
        if mean != partials[0] { mean.update(from: partials[0], count: count) }
        for p in partials.dropFirst() { Elementwise.add(p, to: mean, count: count, threads: threads) }
        Elementwise.scale(mean, by: 1 / Float(n), count: count, threads: threads)
    }

    /// Level 0's support path band by band (memory traffic, not arithmetic, limits it: its planes
    /// are the network's largest). For each band of output rows and each entry in turn: the
    /// entry's `z_i = q + W_v * v_i` at the rows the band reads (im2col and one sgemm) into the
    /// lane's output buffer, a few hundred KB that stay in cache, then the support convolution's
    /// band from them, its activated rows stored (first entry) or added into `sum` and pooled into
    /// the entry's slot of `pooled`. Whole planes of z are never written and read back, and the
    /// band of `sum` (and of q) stays in cache across the entries. Lanes take whole bands, so the
    /// entries are summed in their order whatever the thread count: one sum, no partial sums.
    private func bandedLevel0SupportPath(_ block: CrossBlockWeights, filter: Winograd.Filter, pairs v: UnsafePointer<Float>,
                                         entries n: Int, sum: UnsafeMutablePointer<Float>,
                                         pooled: UnsafeMutablePointer<Float>) {
        let side = model.configuration.inputSize
        let hw = side * side
        let cu = block.queryChannels, cv = block.supportChannels, w = block.width
        let pooledPerEntry = w * (side / 2) * (side / 2)
        let wv = block.cross.pointer + cu * 9
        let qp = UnsafePointer(q.pointer)
        let leaky = Activation.leakyReLU(slope)
        let workers = passWorkers
        let threads = workers == 1 ? Parallel.threadCount : 1
        let runners = lanes.prefix(workers).map { lane in
            Winograd.F4Bands(filter: filter, height: side, width: side, scratch: lane.col.pointer,
                             scratchCapacity: plan.bandedScratch)
        }
        precondition(lanes[0].col.capacity >= plan.bandedScratch + plan.bandedIm2col
                     && lanes[0].z.capacity >= w * plan.bandedRows * side, "banded level 0: lane scratch too small")
        Parallel.forEachItem(runners[0].count, maxWorkers: workers) { worker, band in
            let lane = lanes[worker], runner = runners[worker]
            let rows = runner.inputRows(band)
            let z = lane.z.pointer, col = lane.col.pointer + plan.bandedScratch
            for i in 0..<n {
                Conv2D.rows3x3(input: v + i * cv * hw, inChannels: cv, height: side, width: side,
                               rowStart: rows.lowerBound, rowEnd: rows.upperBound, weight: wv, weightRowStride: (cu + cv) * 9,
                               outChannels: w, bias: nil, output: z, outputPlaneStride: rows.count * side,
                               addend: qp, scratch: col, threads: threads)
                runner.run(band, input: z, bias: block.supportBias.pointer, output: sum, activation: leaky,
                           accumulateActivated: i > 0, pooled: pooled + i * pooledPerEntry, threads: threads)
            }
        }
    }

    private func forward(query: UnsafePointer<Float>, pairs: UnsafePointer<Float>, entries n: Int,
                         logits: UnsafeMutablePointer<Float>) {
        let cfg = model.configuration
        let levels = cfg.levels
        // Threads for the query path's passes between the convolutions (means, pooling,
        // upsampling); they sum in the same order whatever the count.
        let threads = Parallel.threadCount
        var u = query
        var cu = 1
        var v = pairs
        var cv = 2
        var side = cfg.inputSize
        var uNext = uA, vNext = vA

        // Encoder.
        for l in 0..<levels {
            let block = model.encoder[l]
            let w = block.width
            let hw = side * side
            let isLast = l == levels - 1
            Elementwise.mean(v, entries: n, entryStride: cv * hw, count: cv * hw, into: meanIn.pointer, threads: threads)
            let uOut = isLast ? uNext.pointer : skipU[l].pointer
            let pooledPerEntry = w * (side / 2) * (side / 2)
            let banded = l == 0 && !isLast ? bandedLevel0Filter : nil
            let blocks = l == 0 ? (banded == nil ? partialSumBlocks(n, workers: passWorkers) : 1) : n
            let partials = skipPartials.prefix(blocks).map(\.pointer)
            let vp = v, inStride = cv * hw, vNextP = vNext.pointer, skipVP = skipV[l].pointer
            crossBlock(block, side: side, query: u, queryChannels: cu, meanSupport: meanIn.pointer, supportChannels: cv,
                       queryOutput: uOut, entries: n, blocks: blocks, supportPath: banded == nil) { _, part, range, supportConv in
                for i in range {
                    if isLast {
                        supportConv(vp + i * inStride, nil, vNextP + i * w * hw, false, nil)
                    } else if l == 0 {
                        // Summed into the block's partial sum as they are written (the block's
                        // first entry stores: no clearing pass), pooled on the way.
                        supportConv(vp + i * inStride, nil, partials[part], i != range.lowerBound,
                                    vNextP + i * pooledPerEntry)
                    } else {
                        supportConv(vp + i * inStride, nil, skipVP + i * w * hw, false, vNextP + i * pooledPerEntry)
                    }
                }
            }
            if let banded {
                bandedLevel0SupportPath(block, filter: banded, pairs: v, entries: n, sum: partials[0], pooled: vNextP)
            }
            if l == 0 && !isLast {
                // Level-0 skips are only needed as their mean (the last decoder block has no
                // support path): made in place, in the first partial sum.
                meanOfPartialSums(partials, count: w * hw, entries: n, into: partials[0], threads: threads)
            }
            if !isLast {
                Resample.maxPool2x2(input: uOut, channels: w, height: side, width: side, output: uNext.pointer,
                                    threads: threads)
            }
            u = UnsafePointer(uNext.pointer)
            v = UnsafePointer(vNext.pointer)
            cu = w
            cv = w
            (uNext, vNext) = (uNext === uA ? uB : uA, vNext === vA ? vB : vA)
            if !isLast { side /= 2 }
        }

        // Decoder.
        var supportMeanReady = false
        let skipMean0 = UnsafePointer(skipPartials[0].pointer)
        for j in 0..<(levels - 1) {
            let block = model.decoder[j]
            let l = levels - 2 - j
            let isLast = j == levels - 2
            // The support outputs of the block before the last are only needed as their mean
            // (the last block has no support path): kept as partial sums, like the level-0 skips,
            // in the per-entry buffer this block would otherwise write (at most one per entry).
            let feedsOnlyAMean = j == levels - 3
            let prevSide = side
            side *= 2
            let hw = side * side
            let cPrev = cu
            let cSkip = cfg.encoderWidths[l]
            let cin = cPrev + cSkip
            let w = block.width
            // Every input is [up(x); skip]: x is read at half resolution and upsampled row by row
            // as the convolution reads it, the skip is read in place. The query's x is u.
            // The mean support input is [up(mean_i v_i); mean_i skip_i] (upsampling is linear); at
            // level 0 the skips' mean is their partial sums' mean.
            let prevHW = prevSide * prevSide
            if !supportMeanReady {
                Elementwise.mean(v, entries: n, entryStride: cPrev * prevHW, count: cPrev * prevHW, into: meanPrev.pointer,
                                 threads: threads)
            }
            if l != 0 {
                Elementwise.mean(skipV[l].pointer, entries: n, entryStride: cSkip * hw, count: cSkip * hw,
                                 into: meanIn.pointer, threads: threads)
            }
            // The support path is skipped in the last block: its outputs are never used.
            let vp = v, vNextP = vNext.pointer, skipVP = skipV[l].pointer
            let blocks = feedsOnlyAMean ? partialSumBlocks(n, workers: passWorkers) : n
            let partials = feedsOnlyAMean ? (0..<blocks).map { vNextP + $0 * w * hw } : []
            precondition(partials.count * w * hw <= vNext.capacity, "partial sums exceed the per-entry buffer")
            // The last block's query output goes to a per-entry buffer where it fits: those are
            // dead by then and already in memory, where the query buffer's full-resolution part
            // would be touched for the first time.
            let queryOutput = isLast && vNext.capacity >= w * hw ? vNextP : uNext.pointer
            crossBlock(block, side: side, query: u, queryUpper: skipU[l].pointer, queryChannels: cin,
                       meanSupport: meanPrev.pointer, meanSupportUpper: l == 0 ? skipMean0 : UnsafePointer(meanIn.pointer),
                       supportChannels: cin, upperFrom: cPrev, upsampled: true, queryOutput: queryOutput, entries: n,
                       blocks: blocks, supportPath: !isLast) { _, part, range, supportConv in
                for i in range {
                    let input = vp + i * cPrev * prevHW, skip = skipVP + i * cSkip * hw
                    if feedsOnlyAMean {
                        supportConv(input, skip, partials[part], i != range.lowerBound, nil)
                    } else {
                        supportConv(input, skip, vNextP + i * w * hw, false, nil)
                    }
                }
            }
            if feedsOnlyAMean {
                // meanPrev has been consumed above (read by the query path): it now takes the mean
                // the last block needs.
                meanOfPartialSums(partials, count: w * hw, entries: n, into: meanPrev.pointer, threads: threads)
                supportMeanReady = true
            }
            u = UnsafePointer(queryOutput)
            v = UnsafePointer(vNext.pointer)
            cu = w
            (uNext, vNext) = (uNext === uA ? uB : uA, vNext === vA ? vB : vA)
        }

        // Output: 1x1 conv to one channel of logits.
        Conv2D.conv1x1(input: u, inChannels: cu, pixels: side * side, weight: model.outWeight.pointer,
                       outChannels: 1, bias: model.outBias.pointer, output: logits)
    }
}

public import SegKernels

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
/// 3. the support outputs of the last decoder block are never used, so that path is skipped,
///    and the level-0 skips of the support entries are only needed as their mean.
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
    private let uin = FloatBuffer()
    private let uA = FloatBuffer()
    private let uB = FloatBuffer()
    private let vA = FloatBuffer()
    private let vB = FloatBuffer()
    private let gathered = FloatBuffer()
    private let skipMean0 = FloatBuffer()
    /// Partial sums of the level-0 support outputs, one per block of entries (see `level0Blocks`).
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
        ([q, meanIn, meanPrev, uin, uA, uB, vA, vB, gathered, skipMean0] + skipU + skipV
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
        while skipPartials.count < level0Blocks(.max, workers: count) {
            let partial = FloatBuffer()
            partial.reserve(model.configuration.encoderWidths[0] * plan.pixels)
            skipPartials.append(partial)
        }
    }

    private func reserveFixed() {
        reserveLanes(1, threads: Parallel.threadCount)
        q.reserve(plan.blockOutput)
        meanIn.reserve(plan.blockInput)
        meanPrev.reserve(plan.blockInput)
        uin.reserve(plan.blockInput)
        uA.reserve(plan.blockOutput)
        uB.reserve(plan.blockOutput)
        let cfg = model.configuration
        skipMean0.reserve(cfg.encoderWidths[0] * plan.pixels)
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
        var result = [Float](repeating: 0, count: plan.pixels)
        let pairPlane = 2 * plan.pixels
        support.pairs.withUnsafeBufferPointer { pairs in
            guard let base = pairs.baseAddress else { return }
            let isIdentity = selected == Array(0..<support.count)
            let input: UnsafePointer<Float>
            if isIdentity {
                input = base
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

    private func conv(
        _ input: UnsafePointer<Float>, _ channels: Int, _ side: Int,
        weight: UnsafePointer<Float>, rowStride: Int, outChannels: Int, bias: UnsafePointer<Float>?,
        into output: UnsafeMutablePointer<Float>, accumulate: Bool = false, activation: Activation = .none,
        filter: Winograd.Filter?, lane: Lane? = nil, threads: Int = Parallel.threadCount
    ) {
        let col = (lane ?? lanes[0]).col
        if let filter, useWinograd {
            Winograd.conv3x3(input: input, height: side, width: side, filter: filter, bias: bias, output: output,
                             accumulate: accumulate, activation: activation,
                             scratch: col.pointer, scratchCapacity: col.capacity, threads: threads)
            return
        }
        Conv2D.conv3x3(
            input: input, inChannels: channels, height: side, width: side,
            weight: weight, weightRowStride: rowStride, outChannels: outChannels, bias: bias,
            output: output, accumulate: accumulate, activation: activation,
            scratch: col.pointer, scratchCapacity: col.capacity, threads: threads)
    }

    /// Threads that work on support entries side by side (each with one-thread kernels), when
    /// the BLAS runs independent calls; otherwise 1 (the kernels then use every thread).
    private func entryWorkers(_ entries: Int) -> Int {
        BLAS.runsIndependentCalls ? max(1, min(Parallel.threadCount, entries)) : 1
    }

    /// Blocks of entries at level 0 (at most 4 per worker, at most 16). Each block sums its
    /// entries' outputs into its own partial sum and the partial sums are added in block order,
    /// so the mean does not depend on which thread took which block (results are bit-identical
    /// from run to run); more blocks balance the threads better but cost a full-resolution
    /// partial sum each.
    private func level0Blocks(_ n: Int, workers: Int) -> Int {
        workers <= 1 ? 1 : max(1, min(n, 4 * workers, 16))
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

    private func forward(query: UnsafePointer<Float>, pairs: UnsafePointer<Float>, entries n: Int,
                         logits: UnsafeMutablePointer<Float>) {
        let cfg = model.configuration
        let levels = cfg.levels
        let leaky = Activation.leakyReLU(slope)
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
            let ldw = (cu + cv) * 9
            block.cross.withUnsafeBufferPointer { crossW in
            block.crossBias.withUnsafeBufferPointer { crossB in
            block.target.withUnsafeBufferPointer { targetW in
            block.targetBias.withUnsafeBufferPointer { targetB in
            block.support.withUnsafeBufferPointer { supportW in
            block.supportBias.withUnsafeBufferPointer { supportB in
                let wu = crossW.baseAddress!, wv = crossW.baseAddress! + cu * 9
                // Query half of the cross conv, once: q = W_u * u + b.
                conv(u, cu, side, weight: wu, rowStride: ldw, outChannels: w, bias: crossB.baseAddress, into: q.pointer,
                     filter: block.crossQueryFilter)
                // Query path: mean_i z_i = q + W_v * mean_i v_i.
                Elementwise.mean(v, entries: n, entryStride: cv * hw, count: cv * hw, into: meanIn.pointer)
                let zq = lanes[0].z.pointer
                zq.update(from: q.pointer, count: w * hw)
                conv(meanIn.pointer, cv, side, weight: wv, rowStride: ldw, outChannels: w, bias: nil,
                     into: zq, accumulate: true, filter: block.crossSupportFilter)
                let uOut = isLast ? uNext.pointer : skipU[l].pointer
                conv(zq, w, side, weight: targetW.baseAddress!, rowStride: w * 9, outChannels: w,
                     bias: targetB.baseAddress, into: uOut, activation: leaky, filter: block.targetFilter)
                // Support path, entry by entry: z_i = q + W_v * v_i, v'_i = SupportConvOp(z_i).
                // Entries are independent; lanes work on them side by side.
                let pooledPerEntry = w * (side / 2) * (side / 2)
                let blocks = l == 0 ? level0Blocks(n, workers: passWorkers) : n
                let partials = skipPartials
                let qp = UnsafePointer(q.pointer), vp = v, vNextP = vNext.pointer, skipVP = skipV[l].pointer
                forEachEntry(n, blocks: blocks) { lane, threads, part, range in
                    let z = lane.z.pointer
                    if l == 0 { partials[part].pointer.update(repeating: 0, count: w * hw) }
                    for i in range {
                        z.update(from: qp, count: w * hw)
                        conv(vp + i * cv * hw, cv, side, weight: wv, rowStride: ldw, outChannels: w, bias: nil,
                             into: z, accumulate: true, filter: block.crossSupportFilter, lane: lane, threads: threads)
                        let dest: UnsafeMutablePointer<Float>
                        if isLast {
                            dest = vNextP + i * w * hw
                        } else if l == 0 {
                            dest = lane.entryOut.pointer
                        } else {
                            dest = skipVP + i * w * hw
                        }
                        conv(z, w, side, weight: supportW.baseAddress!, rowStride: w * 9, outChannels: w,
                             bias: supportB.baseAddress, into: dest, activation: leaky, filter: block.supportFilter,
                             lane: lane, threads: threads)
                        if l == 0 {
                            let acc = partials[part].pointer
                            for p in 0..<(w * hw) { acc[p] += dest[p] }
                        }
                        if !isLast {
                            Resample.maxPool2x2(input: dest, channels: w, height: side, width: side,
                                                output: vNextP + i * pooledPerEntry)
                        }
                    }
                }
                if l == 0 {
                    // Level-0 skips are only needed as their mean (the last decoder block has no support path).
                    let mean = skipMean0.pointer
                    mean.update(from: partials[0].pointer, count: w * hw)
                    for k in 1..<blocks {
                        let part = partials[k].pointer
                        for p in 0..<(w * hw) { mean[p] += part[p] }
                    }
                    let scale = 1 / Float(n)
                    for p in 0..<(w * hw) { mean[p] *= scale }
                }
                if !isLast {
                    Resample.maxPool2x2(input: uOut, channels: w, height: side, width: side, output: uNext.pointer)
                }
            }}}}}}
            u = UnsafePointer(uNext.pointer)
            v = UnsafePointer(vNext.pointer)
            cu = w
            cv = w
            (uNext, vNext) = (uNext === uA ? uB : uA, vNext === vA ? vB : vA)
            if !isLast { side /= 2 }
        }

        // Decoder.
        for j in 0..<(levels - 1) {
            let block = model.decoder[j]
            let l = levels - 2 - j
            let isLast = j == levels - 2
            let prevSide = side
            side *= 2
            let hw = side * side
            let cPrev = cu
            let cSkip = cfg.encoderWidths[l]
            let cin = cPrev + cSkip
            precondition(cin == block.queryChannels && cin == block.supportChannels, "decoder channel mismatch")
            let w = block.width
            let ldw = 2 * cin * 9
            block.cross.withUnsafeBufferPointer { crossW in
            block.crossBias.withUnsafeBufferPointer { crossB in
            block.target.withUnsafeBufferPointer { targetW in
            block.targetBias.withUnsafeBufferPointer { targetB in
            block.support.withUnsafeBufferPointer { supportW in
            block.supportBias.withUnsafeBufferPointer { supportB in
                let wu = crossW.baseAddress!, wv = crossW.baseAddress! + cin * 9
                // Query input [up(u); skip], then q = W_u * uin + b.
                Resample.upsampleBilinear2x(input: u, channels: cPrev, height: prevSide, width: prevSide, output: uin.pointer)
                (uin.pointer + cPrev * hw).update(from: skipU[l].pointer, count: cSkip * hw)
                conv(uin.pointer, cin, side, weight: wu, rowStride: ldw, outChannels: w, bias: crossB.baseAddress, into: q.pointer,
                     filter: block.crossQueryFilter)
                // Mean support input [up(mean_i v_i); mean_i skip_i] (upsampling is linear).
                let prevHW = prevSide * prevSide
                Elementwise.mean(v, entries: n, entryStride: cPrev * prevHW, count: cPrev * prevHW, into: meanPrev.pointer)
                Resample.upsampleBilinear2x(input: meanPrev.pointer, channels: cPrev, height: prevSide, width: prevSide,
                                            output: meanIn.pointer)
                if l == 0 {
                    (meanIn.pointer + cPrev * hw).update(from: skipMean0.pointer, count: cSkip * hw)
                } else {
                    Elementwise.mean(skipV[l].pointer, entries: n, entryStride: cSkip * hw, count: cSkip * hw,
                                     into: meanIn.pointer + cPrev * hw)
                }
                let zq = lanes[0].z.pointer
                zq.update(from: q.pointer, count: w * hw)
                conv(meanIn.pointer, cin, side, weight: wv, rowStride: ldw, outChannels: w, bias: nil,
                     into: zq, accumulate: true, filter: block.crossSupportFilter)
                conv(zq, w, side, weight: targetW.baseAddress!, rowStride: w * 9, outChannels: w,
                     bias: targetB.baseAddress, into: uNext.pointer, activation: leaky, filter: block.targetFilter)
                // Support path (skipped in the last block: its outputs are never used).
                if !isLast {
                    let qp = UnsafePointer(q.pointer), vp = v, vNextP = vNext.pointer, skipVP = skipV[l].pointer
                    forEachEntry(n) { lane, threads, _, range in
                        let z = lane.z.pointer, vin = lane.vin.pointer
                        for i in range {
                            Resample.upsampleBilinear2x(input: vp + i * cPrev * prevHW, channels: cPrev, height: prevSide,
                                                        width: prevSide, output: vin)
                            (vin + cPrev * hw).update(from: skipVP + i * cSkip * hw, count: cSkip * hw)
                            z.update(from: qp, count: w * hw)
                            conv(vin, cin, side, weight: wv, rowStride: ldw, outChannels: w, bias: nil,
                                 into: z, accumulate: true, filter: block.crossSupportFilter, lane: lane, threads: threads)
                            conv(z, w, side, weight: supportW.baseAddress!, rowStride: w * 9, outChannels: w,
                                 bias: supportB.baseAddress, into: vNextP + i * w * hw, activation: leaky,
                                 filter: block.supportFilter, lane: lane, threads: threads)
                        }
                    }
                }
            }}}}}}
            u = UnsafePointer(uNext.pointer)
            v = UnsafePointer(vNext.pointer)
            cu = w
            (uNext, vNext) = (uNext === uA ? uB : uA, vNext === vA ? vB : vA)
        }

        // Output: 1x1 conv to one channel of logits.
        model.outWeight.withUnsafeBufferPointer { ow in
            model.outBias.withUnsafeBufferPointer { ob in
                Conv2D.conv1x1(input: u, inChannels: cu, pixels: side * side, weight: ow.baseAddress!,
                               outChannels: 1, bias: ob.baseAddress, output: logits)
            }
        }
    }
}

/// Buffer sizes (in floats) of the forward pass for one configuration.
struct Plan {
    let pixels: Int
    /// Largest im2col scratch (one band) over all convolutions.
    let im2col: Int
    /// Largest Winograd scratch over all convolutions.
    let winograd: Int
    /// Largest block output (channels x side^2) over all blocks.
    let blockOutput: Int
    /// Largest block input (channels x side^2), for the concatenated decoder inputs and means.
    let blockInput: Int
    /// Largest per-entry support tensor kept between blocks.
    let supportPerEntry: Int

    init(_ cfg: UniverSegConfiguration) {
        pixels = cfg.inputSize * cfg.inputSize
        var im2col = 0, winograd = 0, out = 0, input = 0, perEntry = 2 * pixels
        let inputs = cfg.blockInputChannels
        for l in 0..<cfg.levels {
            let s = cfg.size(atLevel: l)
            let w = cfg.encoderWidths[l]
            let cin = max(inputs[l].query, inputs[l].support, w)
            im2col = max(im2col, Conv2D.scratchCount(inChannels: cin, height: s, width: s))
            winograd = max(winograd, Winograd.scratchCount(inChannels: cin, outChannels: w, height: s, width: s))
            out = max(out, w * s * s)
            input = max(input, inputs[l].support * s * s)
            perEntry = max(perEntry, l == cfg.levels - 1 ? w * s * s : w * (s / 2) * (s / 2))
        }
        for j in 0..<(cfg.levels - 1) {
            let l = cfg.levels - 2 - j
            let s = cfg.size(atLevel: l)
            let w = cfg.decoderWidths[j]
            let cin = inputs[cfg.levels + j].support
            im2col = max(im2col, Conv2D.scratchCount(inChannels: max(cin, w), height: s, width: s))
            winograd = max(winograd, Winograd.scratchCount(inChannels: max(cin, w), outChannels: w, height: s, width: s))
            out = max(out, w * s * s)
            input = max(input, cin * s * s)
            perEntry = max(perEntry, w * s * s)
        }
        self.im2col = im2col
        self.winograd = winograd
        self.blockOutput = out
        self.blockInput = input
        self.supportPerEntry = perEntry
    }

    /// Convolution scratch for `threads` threads (im2col bands run side by side).
    func col(threads: Int) -> Int { max(im2col * max(1, threads), winograd) }
}

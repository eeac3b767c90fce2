internal import SegKernels

/// Buffer sizes (in floats) of the forward pass for one configuration.
struct Plan {
    let pixels: Int
    /// Largest im2col scratch (one band) over all convolutions.
    let im2col: Int
    /// Largest Winograd scratch over all convolutions.
    let winograd: Int
    /// Largest block output (channels x side^2) over all blocks.
    let blockOutput: Int
    /// Largest block input (channels x side^2) held in a buffer: the mean support inputs of the
    /// encoder, the mean skips of the decoder, the upsampled part of a decoder input when im2col
    /// needs it whole.
    let blockInput: Int
    /// Largest per-entry support tensor kept between blocks, or summed there: the decoder block
    /// before the last keeps its outputs (only needed as their mean) as partial sums, at most
    /// one per entry, in the per-entry buffer it would otherwise write.
    let supportPerEntry: Int
    /// A partial sum of the level-0 support outputs (only needed as their mean).
    let partialSum: Int
    /// Level 0's support path done band by band (`InferenceSession`): per lane, the band runner's
    /// scratch, then one band of the cross convolution's im2col; the band of its output (rows of
    /// every channel) goes into the lane's block-output buffer.
    let bandedScratch: Int
    let bandedIm2col: Int
    let bandedRows: Int

    init(_ cfg: UniverSegConfiguration) {
        pixels = cfg.inputSize * cfg.inputSize
        var im2col = 0, winograd = 0, out = 0, input = 0, perEntry = 2 * pixels
        let inputs = cfg.blockInputChannels
        for l in 0..<cfg.levels {
            let s = cfg.size(atLevel: l)
            let w = cfg.encoderWidths[l]
            let cin = max(inputs[l].query, inputs[l].support, w)
            im2col = max(im2col, Conv2D.scratchCount(inChannels: cin, height: s, width: s))
            winograd = max(winograd, Plan.winogradScratch(inChannels: cin, outChannels: w, side: s))
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
            winograd = max(winograd, Plan.winogradScratch(inChannels: max(cin, w), outChannels: w, side: s))
            out = max(out, w * s * s)
            // The decoder's inputs [up(prev); skip] read prev at half resolution (Winograd
            // upsamples it row by row; im2col needs it whole in a buffer) and the skip in place
            // (an upper stack), except the mean of the support skips above level 0, which is
            // made in a buffer.
            let skip = cfg.encoderWidths[l]
            input = max(input, max(cin - skip, skip) * s * s)
            // Every block but the last (which has no support outputs).
            if j < cfg.levels - 2 { perEntry = max(perEntry, w * s * s) }
        }
        self.im2col = im2col
        self.winograd = winograd
        self.blockOutput = out
        self.blockInput = input
        self.supportPerEntry = perEntry
        self.partialSum = cfg.encoderWidths[0] * pixels
        let side = cfg.inputSize, w0 = cfg.encoderWidths[0]
        bandedRows = Winograd.F4Bands.maxInputRows(height: side, width: side)
        bandedScratch = Winograd.F4Bands.scratchCount(inChannels: w0, outChannels: w0, height: side, width: side)
        bandedIm2col = inputs[0].support * 9 * bandedRows * side
    }

    /// Enough for either Winograd variant: the filters carry the variant they were made with.
    static func winogradScratch(inChannels: Int, outChannels: Int, side: Int) -> Int {
        Winograd.Variant.allCases.map {
            Winograd.scratchCount(inChannels: inChannels, outChannels: outChannels, height: side, width: side, variant: $0)
        }.max() ?? 0
    }

    /// Convolution scratch for `threads` threads (im2col bands and Winograd bands run side by side).
    func col(threads: Int) -> Int { max(max(im2col, winograd) * max(1, threads), bandedScratch + bandedIm2col) }
}

internal import SegSIMDInterface

/// Pooling and upsampling on [channels, height, width] planes.
public enum Resample {
    /// 2x2 max-pooling with stride 2 (PyTorch `MaxPool2d(2)`): output [channels, height/2, width/2],
    /// odd trailing rows/columns dropped. Channels are split between up to `threads` threads.
    public static func maxPool2x2(
        input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
        output: UnsafeMutablePointer<Float>, threads: Int = 1, isa: KernelISA = .active
    ) {
        let kernels = isa.kernels
        let oh = height / 2, ow = width / 2
        Parallel.forEachChunk(channels, maxChunks: threads, minimumPerChunk: max(1, (1 << 15) / max(1, height * width))) { _, range in
            for c in range {
                kernels.maxPool2x2(input: input + c * height * width, height: height, width: width,
                                   output: output + c * oh * ow)
            }
        }
    }

    /// x2 bilinear upsampling with align_corners=True (PyTorch `UpsamplingBilinear2d(scale_factor=2)`):
    /// output [channels, 2*height, 2*width]; output pixel i samples input coordinate
    /// i * (n - 1) / (2n - 1). Channels are split between up to `threads` threads.
    public static func upsampleBilinear2x(
        input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
        output: UnsafeMutablePointer<Float>, threads: Int = 1, isa: KernelISA = .active
    ) {
        let kernels = isa.kernels
        let oh = 2 * height, ow = 2 * width
        guard oh > 0, ow > 0 else { return }
        let upsampler = Upsampler2x(inHeight: height, inWidth: width)
        let perChunk = max(1, (1 << 15) / (oh * ow))
        Parallel.forEachChunk(channels, maxChunks: threads, minimumPerChunk: perChunk) { _, range in
            for c in range {
                let src = input + c * height * width
                let dst = output + c * oh * ow
                for oy in 0..<oh { upsampler.row(oy, of: src, into: dst + oy * ow, kernels: kernels) }
            }
        }
    }

    /// The taps of a x2 bilinear upsampling with align_corners=True from `inHeight` x `inWidth`,
    /// for making output rows one at a time (`upsampleBilinear2x`, and convolutions that read an
    /// upsampled input without storing it). Every output row is computed the same way either way.
    struct Upsampler2x: Sendable {
        let inHeight: Int, inWidth: Int
        private let rows: [Tap]
        private let i0: [Int32], i1: [Int32], f: [Float]

        init(inHeight: Int, inWidth: Int) {
            (self.inHeight, self.inWidth) = (inHeight, inWidth)
            let xs = Resample.alignCornersTaps(inSize: inWidth, outSize: 2 * inWidth)
            rows = Resample.alignCornersTaps(inSize: inHeight, outSize: 2 * inHeight)
            i0 = xs.map { Int32($0.i0) }
            i1 = xs.map { Int32($0.i1) }
            f = xs.map(\.f)
        }

        /// Output row `y` (2 * inWidth floats) of the upsampling of `plane` into `out`.
        @inline(__always)
        func row(_ y: Int, of plane: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                 kernels: any SIMDKernelSet.Type) {
            let t = rows[y]
            i0.withUnsafeBufferPointer { i0 in
                i1.withUnsafeBufferPointer { i1 in
                    f.withUnsafeBufferPointer { f in
                        guard let i0 = i0.baseAddress, let i1 = i1.baseAddress, let f = f.baseAddress else { return }
                        kernels.bilinearRow(r0: plane + t.i0 * inWidth, r1: plane + t.i1 * inWidth, wy: t.f,
                                            i0: i0, i1: i1, f: f, count: 2 * inWidth, out: out)
                    }
                }
            }
        }
    }

    struct Tap: Sendable { var i0: Int; var i1: Int; var f: Float }

    static func alignCornersTaps(inSize: Int, outSize: Int) -> [Tap] {
        let scale = outSize > 1 ? Float(inSize - 1) / Float(outSize - 1) : 0
        return (0..<outSize).map { o in
            let src = Float(o) * scale
            let i0 = min(Int(src), inSize - 1)
            let i1 = min(i0 + 1, inSize - 1)
            return Tap(i0: i0, i1: i1, f: src - Float(i0))
        }
    }
}

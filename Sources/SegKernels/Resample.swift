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
        let xs = alignCornersTaps(inSize: width, outSize: ow)
        let ys = alignCornersTaps(inSize: height, outSize: oh)
        let i0 = xs.map { Int32($0.i0) }, i1 = xs.map { Int32($0.i1) }, f = xs.map(\.f)
        i0.withUnsafeBufferPointer { i0 in
            i1.withUnsafeBufferPointer { i1 in
                f.withUnsafeBufferPointer { f in
                    let perChunk = max(1, (1 << 15) / (oh * ow))
                    Parallel.forEachChunk(channels, maxChunks: threads, minimumPerChunk: perChunk) { _, range in
                        for c in range {
                            let src = input + c * height * width
                            let dst = output + c * oh * ow
                            for oy in 0..<oh {
                                let ty = ys[oy]
                                kernels.bilinearRow(r0: src + ty.i0 * width, r1: src + ty.i1 * width, wy: ty.f,
                                                    i0: i0.baseAddress!, i1: i1.baseAddress!, f: f.baseAddress!,
                                                    count: ow, out: dst + oy * ow)
                            }
                        }
                    }
                }
            }
        }
    }

    struct Tap { var i0: Int; var i1: Int; var f: Float }

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

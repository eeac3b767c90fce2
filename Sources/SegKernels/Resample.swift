/// Pooling and upsampling on [channels, height, width] planes.
public enum Resample {
    /// 2x2 max-pooling with stride 2 (PyTorch `MaxPool2d(2)`): output [channels, height/2, width/2],
    /// odd trailing rows/columns dropped.
    public static func maxPool2x2(
        input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
        output: UnsafeMutablePointer<Float>
    ) {
        let oh = height / 2, ow = width / 2
        for c in 0..<channels {
            let src = input + c * height * width
            let dst = output + c * oh * ow
            for y in 0..<oh {
                let r0 = src + (2 * y) * width
                let r1 = r0 + width
                let d = dst + y * ow
                for x in 0..<ow {
                    let a = max(r0[2 * x], r0[2 * x + 1])
                    let b = max(r1[2 * x], r1[2 * x + 1])
                    d[x] = max(a, b)
                }
            }
        }
    }

    /// x2 bilinear upsampling with align_corners=True (PyTorch `UpsamplingBilinear2d(scale_factor=2)`):
    /// output [channels, 2*height, 2*width]; output pixel i samples input coordinate
    /// i * (n - 1) / (2n - 1).
    public static func upsampleBilinear2x(
        input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
        output: UnsafeMutablePointer<Float>
    ) {
        let oh = 2 * height, ow = 2 * width
        let xs = alignCornersTaps(inSize: width, outSize: ow)
        let ys = alignCornersTaps(inSize: height, outSize: oh)
        for c in 0..<channels {
            let src = input + c * height * width
            let dst = output + c * oh * ow
            for oy in 0..<oh {
                let ty = ys[oy]
                let r0 = src + ty.i0 * width
                let r1 = src + ty.i1 * width
                let d = dst + oy * ow
                let wy1 = ty.f, wy0 = 1 - ty.f
                for ox in 0..<ow {
                    let tx = xs[ox]
                    let top = r0[tx.i0] * (1 - tx.f) + r0[tx.i1] * tx.f
                    let bottom = r1[tx.i0] * (1 - tx.f) + r1[tx.i1] * tx.f
                    d[ox] = top * wy0 + bottom * wy1
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

public import SegModel

/// Naive loop implementations the kernels are checked against.
public enum Naive {
    /// 3x3 conv, pad 1, stride 1, OIHW weights.
    public static func conv3x3(_ x: [Float], cin: Int, h: Int, w: Int, weight: [Float], cout: Int, bias: [Float]?) -> [Float] {
        var out = [Float](repeating: 0, count: cout * h * w)
        for o in 0..<cout {
            for y in 0..<h {
                for xx in 0..<w {
                    var acc = Double(bias?[o] ?? 0)
                    for c in 0..<cin {
                        for ky in 0..<3 {
                            for kx in 0..<3 {
                                let iy = y + ky - 1, ix = xx + kx - 1
                                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                acc += Double(weight[((o * cin + c) * 3 + ky) * 3 + kx]) * Double(x[(c * h + iy) * w + ix])
                            }
                        }
                    }
                    out[(o * h + y) * w + xx] = Float(acc)
                }
            }
        }
        return out
    }

    public static func maxPool(_ x: [Float], c: Int, h: Int, w: Int) -> [Float] {
        var out: [Float] = []
        for ch in 0..<c {
            for y in 0..<(h / 2) {
                for xx in 0..<(w / 2) {
                    var m = -Float.infinity
                    for dy in 0..<2 { for dx in 0..<2 { m = max(m, x[(ch * h + 2 * y + dy) * w + 2 * xx + dx]) } }
                    out.append(m)
                }
            }
        }
        return out
    }

    /// Bilinear x2, align_corners=True, written from the definition (PyTorch semantics).
    public static func upsample(_ input: [Float], c: Int, h: Int, w: Int) -> [Float] {
        let oh = 2 * h, ow = 2 * w
        var out: [Float] = []
        for ch in 0..<c {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    let sy = oh > 1 ? Double(oy) * Double(h - 1) / Double(oh - 1) : 0
                    let sx = ow > 1 ? Double(ox) * Double(w - 1) / Double(ow - 1) : 0
                    let y0 = Int(sy.rounded(.down)), x0 = Int(sx.rounded(.down))
                    let y1 = min(y0 + 1, h - 1), x1 = min(x0 + 1, w - 1)
                    let fy = sy - Double(y0), fx = sx - Double(x0)
                    func at(_ y: Int, _ x: Int) -> Double { Double(input[(ch * h + y) * w + x]) }
                    let v = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1))
                    out.append(Float(v))
                }
            }
        }
        return out
    }
}

public struct TestRandom {
    public var generator: SeededGenerator
    public init(_ seed: UInt64) { generator = SeededGenerator(seed: seed) }
    public mutating func floats(_ n: Int, scale: Float = 1) -> [Float] {
        (0..<n).map { _ in Float(generator.nextUniform() * 2 - 1) * scale }
    }
    public mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + generator.nextIndex(below: range.count) }
}

/// max |a - b| / (1 + max |b|)
public func relativeError(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var diff: Float = 0, scale: Float = 0
    for i in a.indices {
        diff = max(diff, abs(a[i] - b[i]))
        scale = max(scale, abs(b[i]))
    }
    return diff / (1 + scale)
}

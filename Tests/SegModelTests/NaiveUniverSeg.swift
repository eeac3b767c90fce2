import SegModel

/// The authors' formulation written directly from its definition with naive loops: every
/// (query, support) pair concatenated and convolved, no reductions. Slow; for small configs.
import SegTesting

struct NaiveUniverSeg {
    let cfg: UniverSegConfiguration
    let t: [String: NamedTensor]

    init(_ model: UniverSeg) {
        cfg = model.configuration
        t = model.namedTensors
    }

    func conv(_ x: [Float], cin: Int, side: Int, _ name: String) -> [Float] {
        let w = t[name + ".weight"]!, b = t[name + ".bias"]!
        return Naive.conv3x3(x, cin: cin, h: side, w: side, weight: w.values, cout: w.shape[0], bias: b.values)
    }

    func leaky(_ x: [Float]) -> [Float] { x.map { $0 >= 0 ? $0 : 0.01 * $0 } }

    /// (u, [v_i]) -> (u', [v'_i])
    func crossBlock(_ prefix: String, u: [Float], cu: Int, vs: [[Float]], cv: Int, side: Int) -> ([Float], [[Float]]) {
        let zs = vs.map { conv(u + $0, cin: cu + cv, side: side, prefix + ".cross.cross_conv") }
        var mean = [Float](repeating: 0, count: zs[0].count)
        for z in zs { for i in mean.indices { mean[i] += z[i] } }
        mean = mean.map { $0 / Float(zs.count) }
        let width = t[prefix + ".target.vmapped.conv.weight"]!.shape[0]
        let uOut = leaky(conv(mean, cin: width, side: side, prefix + ".target.vmapped.conv"))
        let vOut = zs.map { leaky(conv($0, cin: width, side: side, prefix + ".support.vmapped.conv")) }
        return (uOut, vOut)
    }

    func logits(query: [Float], images: [[Float]], labels: [[Float]]) -> [Float] {
        var side = cfg.inputSize
        var u = query, cu = 1
        var vs = zip(images, labels).map { $0 + $1 }, cv = 2
        var skips: [([Float], [[Float]], Int)] = []
        for l in 0..<cfg.levels {
            (u, vs) = crossBlock("enc_blocks.\(l)", u: u, cu: cu, vs: vs, cv: cv, side: side)
            cu = cfg.encoderWidths[l]; cv = cu
            if l < cfg.levels - 1 {
                skips.append((u, vs, cu))
                u = Naive.maxPool(u, c: cu, h: side, w: side)
                vs = vs.map { Naive.maxPool($0, c: cu, h: side, w: side) }
                side /= 2
            }
        }
        for j in 0..<(cfg.levels - 1) {
            let (su, svs, cs) = skips.removeLast()
            u = Naive.upsample(u, c: cu, h: side, w: side) + su
            vs = zip(vs, svs).map { Naive.upsample($0, c: cu, h: side, w: side) + $1 }
            side *= 2
            (u, vs) = crossBlock("dec_blocks.\(j)", u: u, cu: cu + cs, vs: vs, cv: cu + cs, side: side)
            cu = cfg.decoderWidths[j]
        }
        let w = t["out_conv.conv.weight"]!.values, b = t["out_conv.conv.bias"]!.values[0]
        let hw = side * side
        return (0..<hw).map { p in
            var acc = Double(b)
            for c in 0..<cu { acc += Double(w[c]) * Double(u[c * hw + p]) }
            return Float(acc)
        }
    }
}

/// The named tensors of a UniverSeg network, with the authors' state_dict names
/// (`enc_blocks.{i}.cross.cross_conv.weight`, ...), in OIHW layout.
public struct ParameterSpec: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public var count: Int { shape.reduce(1, *) }
}

extension UniverSegConfiguration {
    /// Every tensor the network needs, in a fixed order.
    public var parameterSpecs: [ParameterSpec] {
        var specs: [ParameterSpec] = []
        let inputs = blockInputChannels
        func block(_ prefix: String, _ index: Int, _ width: Int) {
            let (cu, cv) = inputs[index]
            specs.append(ParameterSpec(name: "\(prefix).cross.cross_conv.weight", shape: [width, cu + cv, 3, 3]))
            specs.append(ParameterSpec(name: "\(prefix).cross.cross_conv.bias", shape: [width]))
            for part in ["target", "support"] {
                specs.append(ParameterSpec(name: "\(prefix).\(part).vmapped.conv.weight", shape: [width, width, 3, 3]))
                specs.append(ParameterSpec(name: "\(prefix).\(part).vmapped.conv.bias", shape: [width]))
            }
        }
        for (i, w) in encoderWidths.enumerated() { block("enc_blocks.\(i)", i, w) }
        for (j, w) in decoderWidths.enumerated() { block("dec_blocks.\(j)", encoderWidths.count + j, w) }
        let last = decoderWidths.last ?? encoderWidths.last ?? 1
        specs.append(ParameterSpec(name: "out_conv.conv.weight", shape: [1, last, 1, 1]))
        specs.append(ParameterSpec(name: "out_conv.conv.bias", shape: [1]))
        return specs
    }

    /// Total number of parameters (1,182,785 for v1).
    public var parameterCount: Int { parameterSpecs.reduce(0) { $0 + $1.count } }
}

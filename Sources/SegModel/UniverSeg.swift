internal import SegKernels

/// A named float32 tensor as read from a weights file.
public struct NamedTensor: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        self.shape = shape
        self.values = values
    }
}

/// One weight tensor in an owned, 64-byte aligned allocation that is written once, at init, and
/// only read afterwards, so kernels take it as a plain pointer. `@unchecked Sendable`: the memory
/// is never written after init and is freed only when the last reference goes.
final class WeightTensor: @unchecked Sendable {
    let pointer: UnsafePointer<Float>
    let count: Int

    init(_ values: [Float]) {
        count = values.count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<Float>.stride, alignment: 64)
        let p = raw.bindMemory(to: Float.self, capacity: max(1, count))
        _ = UnsafeMutableBufferPointer(start: p, count: count).initialize(from: values)
        pointer = UnsafePointer(p)
    }

    deinit {
        UnsafeMutableRawPointer(mutating: pointer).deallocate()
    }

    /// A copy of the values.
    var values: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// The weights of one CrossBlock, flattened (OIHW), with their Winograd transforms.
struct CrossBlockWeights: Sendable {
    let queryChannels: Int
    let supportChannels: Int
    let width: Int
    /// [width, queryChannels + supportChannels, 3, 3]; the query channels come first.
    let cross: WeightTensor
    let crossBias: WeightTensor
    let target: WeightTensor
    let targetBias: WeightTensor
    let support: WeightTensor
    let supportBias: WeightTensor
    /// Winograd filters of the query half, the support half, the target and the support
    /// convolutions; nil where the input has too few channels for Winograd to pay off.
    let crossQueryFilter: Winograd.Filter?
    let crossSupportFilter: Winograd.Filter?
    let targetFilter: Winograd.Filter?
    let supportFilter: Winograd.Filter?

    /// Below this many input channels a convolution uses im2col + sgemm.
    static let winogradMinChannels = 8

    /// Floats the Winograd filters of a block with these sizes take (the cross convolution's
    /// query and support halves, the target and the support convolutions, where Winograd is used).
    static func filterFloats(queryChannels: Int, supportChannels: Int, width: Int, variant: Winograd.Variant) -> Int {
        [queryChannels, supportChannels, width, width].filter { $0 >= winogradMinChannels }.reduce(0) {
            $0 + Winograd.Filter.floatCount(inChannels: $1, outChannels: width, variant: variant)
        }
    }

    /// - filterStorage, filterOffset: where the Winograd filters go (`filterFloats` floats from
    ///   `filterOffset`, which is advanced past them).
    init(queryChannels: Int, supportChannels: Int, width: Int, cross: [Float], crossBias: [Float],
         target: [Float], targetBias: [Float], support: [Float], supportBias: [Float],
         variant: Winograd.Variant, filterStorage: Winograd.FilterStorage, filterOffset: inout Int) {
        self.queryChannels = queryChannels
        self.supportChannels = supportChannels
        self.width = width
        self.cross = WeightTensor(cross)
        self.crossBias = WeightTensor(crossBias)
        self.target = WeightTensor(target)
        self.targetBias = WeightTensor(targetBias)
        self.support = WeightTensor(support)
        self.supportBias = WeightTensor(supportBias)
        var next = filterOffset
        func filter(_ w: WeightTensor, offset: Int, rowStride: Int, cin: Int) -> Winograd.Filter? {
            guard cin >= Self.winogradMinChannels else { return nil }
            precondition(w.count == width * rowStride, "cross block: weight size does not match its shape")
            let made = Winograd.Filter(weight: w.pointer + offset, rowStride: rowStride, inChannels: cin,
                                       outChannels: width, variant: variant, storage: filterStorage, offset: next)
            next += Winograd.Filter.floatCount(inChannels: cin, outChannels: width, variant: variant)
            return made
        }
        let crossStride = (queryChannels + supportChannels) * 9
        crossQueryFilter = filter(self.cross, offset: 0, rowStride: crossStride, cin: queryChannels)
        crossSupportFilter = filter(self.cross, offset: queryChannels * 9, rowStride: crossStride, cin: supportChannels)
        targetFilter = filter(self.target, offset: 0, rowStride: width * 9, cin: width)
        supportFilter = filter(self.support, offset: 0, rowStride: width * 9, cin: width)
        filterOffset = next
    }
}

/// An immutable UniverSeg network: architecture plus validated weights. Cheap to copy and
/// safe to share between threads; each thread runs it through its own `InferenceSession`.
public struct UniverSeg: Sendable {
    public let configuration: UniverSegConfiguration
    let encoder: [CrossBlockWeights]
    let decoder: [CrossBlockWeights]
    let outWeight: WeightTensor
    let outBias: WeightTensor

    /// Builds the network from named tensors, strictly: every expected tensor present with
    /// its exact shape, no unknown tensors, every value finite.
    public init(configuration: UniverSegConfiguration, tensors: [String: NamedTensor]) throws {
        try configuration.validate()
        let specs = configuration.parameterSpecs
        let expected = Set(specs.map(\.name))
        if let unknown = tensors.keys.sorted().first(where: { !expected.contains($0) }) {
            throw ModelError(.unexpectedTensor,
                             "unexpected tensor '\(unknown)' for a network with \(configuration)")
        }
        var values: [String: [Float]] = [:]
        for spec in specs {
            guard let tensor = tensors[spec.name] else {
                throw ModelError(.missingTensor, "missing tensor '\(spec.name)' (expected shape \(spec.shape))")
            }
            guard tensor.shape == spec.shape else {
                throw ModelError(.shapeMismatch,
                                 "tensor '\(spec.name)' has shape \(tensor.shape), expected \(spec.shape)")
            }
            guard tensor.values.count == spec.count else {
                throw ModelError(.shapeMismatch,
                                 "tensor '\(spec.name)' holds \(tensor.values.count) values, expected \(spec.count)")
            }
            if let bad = tensor.values.firstIndex(where: { !$0.isFinite }) {
                throw ModelError(.invalidValue, "tensor '\(spec.name)' has a non-finite value at index \(bad)")
            }
            values[spec.name] = tensor.values
        }
        let inputs = configuration.blockInputChannels
        let widths = configuration.encoderWidths + configuration.decoderWidths
        // Every Winograd filter of the network in one allocation (huge pages when it is large).
        let variant = Winograd.defaultVariant
        let storage = Winograd.FilterStorage(count: widths.indices.reduce(0) {
            $0 + CrossBlockWeights.filterFloats(queryChannels: inputs[$1].query, supportChannels: inputs[$1].support,
                                                width: widths[$1], variant: variant)
        })
        var offset = 0
        func block(_ prefix: String, _ index: Int, _ width: Int) -> CrossBlockWeights {
            CrossBlockWeights(
                queryChannels: inputs[index].query, supportChannels: inputs[index].support, width: width,
                cross: values["\(prefix).cross.cross_conv.weight"] ?? [],
                crossBias: values["\(prefix).cross.cross_conv.bias"] ?? [],
                target: values["\(prefix).target.vmapped.conv.weight"] ?? [],
                targetBias: values["\(prefix).target.vmapped.conv.bias"] ?? [],
                support: values["\(prefix).support.vmapped.conv.weight"] ?? [],
                supportBias: values["\(prefix).support.vmapped.conv.bias"] ?? [],
                variant: variant, filterStorage: storage, filterOffset: &offset)
        }
        self.configuration = configuration
        self.encoder = configuration.encoderWidths.enumerated().map { block("enc_blocks.\($0)", $0, $1) }
        self.decoder = configuration.decoderWidths.enumerated().map {
            block("dec_blocks.\($0)", configuration.encoderWidths.count + $0, $1)
        }
        self.outWeight = WeightTensor(values["out_conv.conv.weight"] ?? [])
        self.outBias = WeightTensor(values["out_conv.conv.bias"] ?? [])
    }

    /// A network with the authors' initialisation (kaiming-normal weights: LeakyReLU(0.01) gain
    /// for the target/support convolutions, linear gain for the cross and output convolutions;
    /// zero biases), drawn from a seeded generator. For benchmarks and tests.
    public static func randomlyInitialized(_ configuration: UniverSegConfiguration, seed: UInt64) throws -> UniverSeg {
        try configuration.validate()
        var rng = SeededGenerator(seed: seed)
        var tensors: [String: NamedTensor] = [:]
        for spec in configuration.parameterSpecs {
            var values = [Float](repeating: 0, count: spec.count)
            if spec.shape.count == 4 {
                let fanIn = spec.shape[1] * spec.shape[2] * spec.shape[3]
                let leaky = spec.name.contains(".target.") || spec.name.contains(".support.")
                let gain: Double = leaky ? (2.0 / (1 + 0.01 * 0.01)).squareRoot() : 1
                let std = gain / Double(fanIn).squareRoot()
                for i in values.indices { values[i] = Float(rng.nextGaussian() * std) }
            }
            tensors[spec.name] = NamedTensor(shape: spec.shape, values: values)
        }
        return try UniverSeg(configuration: configuration, tensors: tensors)
    }

    /// The weights as named tensors (authors' names, OIHW).
    public var namedTensors: [String: NamedTensor] {
        var result: [String: NamedTensor] = [:]
        func add(_ prefix: String, _ b: CrossBlockWeights) {
            result["\(prefix).cross.cross_conv.weight"] = NamedTensor(
                shape: [b.width, b.queryChannels + b.supportChannels, 3, 3], values: b.cross.values)
            result["\(prefix).cross.cross_conv.bias"] = NamedTensor(shape: [b.width], values: b.crossBias.values)
            result["\(prefix).target.vmapped.conv.weight"] = NamedTensor(shape: [b.width, b.width, 3, 3], values: b.target.values)
            result["\(prefix).target.vmapped.conv.bias"] = NamedTensor(shape: [b.width], values: b.targetBias.values)
            result["\(prefix).support.vmapped.conv.weight"] = NamedTensor(shape: [b.width, b.width, 3, 3], values: b.support.values)
            result["\(prefix).support.vmapped.conv.bias"] = NamedTensor(shape: [b.width], values: b.supportBias.values)
        }
        for (i, b) in encoder.enumerated() { add("enc_blocks.\(i)", b) }
        for (j, b) in decoder.enumerated() { add("dec_blocks.\(j)", b) }
        result["out_conv.conv.weight"] = NamedTensor(shape: [1, outWeight.count, 1, 1], values: outWeight.values)
        result["out_conv.conv.bias"] = NamedTensor(shape: [1], values: outBias.values)
        return result
    }
}
